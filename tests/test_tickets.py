"""Every (state, action, role) of the lifecycle, against the rules written out by hand here.

The expectation below is typed from the design's state table, not derived from
``bot.tickets.TRANSITIONS``: a change to the code's table that disagrees with it fails here.
"""

from __future__ import annotations

import itertools

import pytest

from bot.errors import InvalidTransition, NotAllowed, RequirementMissing
from bot.texts import refusal
from bot.tickets import (
    Category,
    Role,
    TicketAction,
    TicketFacts,
    TicketState,
    allowed_actions,
    check,
)

S, A, R = TicketState, TicketAction, Role
C, E, AS, D, M, SYS = R.CUSTOMER, R.ENGINEER, R.ASSIGNEE, R.DISPATCHER, R.MANAGER, R.SYSTEM
WORKING = [
    S.NEW,
    S.ASSIGNED,
    S.ACCEPTED,
    S.EN_ROUTE,
    S.ON_SITE,
    S.DIAGNOSING,
    S.WAITING_PARTS,
    S.THIRD_PARTY,
    S.REPAIRING,
]

# (state, action) → (roles that may, state it leads to)
EXPECTED: dict[tuple[TicketState, TicketAction], tuple[set[Role], TicketState]] = {
    (S.NEW, A.ASSIGN): ({D, M, SYS}, S.ASSIGNED),
    (S.ASSIGNED, A.ASSIGN): ({D, M, SYS}, S.ASSIGNED),
    (S.NEW, A.CLAIM): ({E}, S.ACCEPTED),
    (S.ASSIGNED, A.CLAIM): ({E}, S.ACCEPTED),
    (S.ASSIGNED, A.ACCEPT): ({AS}, S.ACCEPTED),
    (S.ASSIGNED, A.REASSIGN): ({AS, D, M}, S.NEW),
    (S.ACCEPTED, A.REASSIGN): ({AS, D, M}, S.NEW),
    (S.EN_ROUTE, A.REASSIGN): ({AS, D, M}, S.NEW),
    (S.ACCEPTED, A.DEPART): ({AS}, S.EN_ROUTE),
    (S.EN_ROUTE, A.ARRIVE): ({AS}, S.ON_SITE),
    (S.ON_SITE, A.DIAGNOSE): ({AS}, S.DIAGNOSING),
    (S.ACCEPTED, A.DIAGNOSE): ({AS}, S.DIAGNOSING),  # remote tickets only
    (S.DIAGNOSING, A.NEED_PARTS): ({AS}, S.WAITING_PARTS),
    (S.REPAIRING, A.NEED_PARTS): ({AS}, S.WAITING_PARTS),
    (S.WAITING_PARTS, A.PARTS_ARRIVED): ({AS, D, M}, S.REPAIRING),
    (S.DIAGNOSING, A.NEED_THIRD_PARTY): ({AS}, S.THIRD_PARTY),
    (S.THIRD_PARTY, A.THIRD_PARTY_DONE): ({AS, D, M}, S.DIAGNOSING),
    (S.DIAGNOSING, A.REPAIR): ({AS}, S.REPAIRING),
    (S.DIAGNOSING, A.RESOLVE): ({AS}, S.RESOLVED),
    (S.REPAIRING, A.RESOLVE): ({AS}, S.RESOLVED),
    (S.RESOLVED, A.CONFIRM): ({C, M}, S.CLOSED),
    (S.RESOLVED, A.REJECT): ({C}, S.REPAIRING),
    (S.RESOLVED, A.AUTO_CLOSE): ({SYS}, S.CLOSED),
    (S.CLOSED, A.REOPEN): ({C, M, D}, S.ASSIGNED),
    **{(s, A.CANCEL): ({C, D, M}, S.CANCELLED) for s in WORKING},
    **{(s, A.MERGE): ({E, D, M}, S.CLOSED) for s in (S.NEW, S.ASSIGNED)},
}

# Facts under which every requirement holds, so only state and role decide.
ALL_MET = dict(category=Category.NETWORK_IT, has_assignee=True, has_evidence=True)


@pytest.mark.parametrize(
    ("state", "action", "role"), list(itertools.product(TicketState, TicketAction, Role))
)
def test_every_state_action_role(state: TicketState, action: TicketAction, role: Role) -> None:
    facts = TicketFacts(state=state, **ALL_MET)  # type: ignore[arg-type]
    expected = EXPECTED.get((state, action))
    if expected is None:
        with pytest.raises(InvalidTransition):
            check(action, facts, frozenset({role}), target_given=True)
    elif role not in expected[0]:
        with pytest.raises(NotAllowed):
            check(action, facts, frozenset({role}), target_given=True)
    else:
        assert check(action, facts, frozenset({role}), target_given=True).target == expected[1]


def test_resolve_needs_evidence_and_says_so() -> None:
    facts = TicketFacts(state=S.REPAIRING, has_assignee=True, has_evidence=False)
    with pytest.raises(RequirementMissing) as err:
        check(A.RESOLVE, facts, frozenset({AS}))
    assert "证据" in refusal(err.value, "zh")
    assert "evidence" in refusal(err.value, "en")


def test_on_site_ticket_cannot_skip_travel_but_remote_one_can() -> None:
    on_site = TicketFacts(state=S.ACCEPTED, category=Category.EQUIPMENT_FAILURE)
    with pytest.raises(InvalidTransition):
        check(A.DIAGNOSE, on_site, frozenset({AS}))
    remote = TicketFacts(state=S.ACCEPTED, category=Category.SOFTWARE_CONFIG)
    assert check(A.DIAGNOSE, remote, frozenset({AS})).target == S.DIAGNOSING


def test_assign_needs_a_target_engineer() -> None:
    with pytest.raises(RequirementMissing):
        check(A.ASSIGN, TicketFacts(state=S.NEW), frozenset({D}), target_given=False)


def test_reopen_needs_someone_to_reopen_to() -> None:
    with pytest.raises(RequirementMissing):
        check(A.REOPEN, TicketFacts(state=S.CLOSED, has_assignee=False), frozenset({C}))


def test_buttons_follow_the_rules() -> None:
    staff = frozenset({E, AS, D, M})
    assert allowed_actions(TicketFacts(state=S.ASSIGNED, has_assignee=True), staff) == [
        A.CLAIM,
        A.ACCEPT,
        A.REASSIGN,
        A.CANCEL,
    ]
    assert allowed_actions(TicketFacts(state=S.RESOLVED), frozenset({C})) == [A.CONFIRM, A.REJECT]
    # A customer never sees engineers' buttons; nobody sees any on a cancelled ticket.
    assert allowed_actions(TicketFacts(state=S.ON_SITE), frozenset({C})) == [A.CANCEL]
    assert allowed_actions(TicketFacts(state=S.CANCELLED), staff | {C}) == []
    # Resolve stays visible without evidence: the refusal then says what is missing.
    assert A.RESOLVE in allowed_actions(TicketFacts(state=S.REPAIRING), frozenset({AS}))


def test_refusal_reasons_name_the_state_in_both_languages() -> None:
    with pytest.raises(InvalidTransition) as err:
        check(A.DEPART, TicketFacts(state=S.CLOSED), frozenset({AS}))
    assert "已关闭" in refusal(err.value, "zh") and "出发" in refusal(err.value, "zh")
    assert "Closed" in refusal(err.value, "en")
