"""The ticket's words for people: state, action and clock labels in Chinese and English
(the state table itself is ``bot.tickets``)."""

from __future__ import annotations

from collections.abc import Mapping

from bot.tickets import (
    ClockKind,
    ClosureAction,
    CsatAction,
    IntakeAction,
    NoteAction,
    PartsAction,
    Press,
    SlaAction,
    TicketAction,
    TicketState,
)

__all__ = [
    "ACTION_LABELS",
    "CLOCK_LABELS",
    "STATE_LABELS",
    "action_label",
    "action_label_of",
    "clock_label",
    "press_of",
    "state_label",
    "state_label_of",
]

S = TicketState
A = TicketAction

STATE_LABELS: Mapping[TicketState, tuple[str, str]] = {
    S.NEW: ("待受理", "New"),
    S.ASSIGNED: ("已派单", "Assigned"),
    S.ACCEPTED: ("已接单", "Accepted"),
    S.EN_ROUTE: ("已出发", "On the way"),
    S.ON_SITE: ("已到达", "On site"),
    S.DIAGNOSING: ("诊断中", "Diagnosing"),
    S.WAITING_PARTS: ("待备件", "Waiting for parts"),
    S.THIRD_PARTY: ("需第三方检测", "Third-party check"),
    S.REPAIRING: ("维修中", "Repairing"),
    S.RESOLVED: ("已解决·待验收", "Resolved, awaiting confirmation"),
    S.CLOSED: ("已关闭", "Closed"),
    S.CANCELLED: ("已取消", "Cancelled"),
}

ACTION_LABELS: Mapping[Press, tuple[str, str]] = {
    A.ASSIGN: ("派单", "Assign"),
    A.CLAIM: ("我来处理", "Claim"),
    A.ACCEPT: ("接单", "Accept"),
    A.REASSIGN: ("转派", "Reassign"),
    A.DEPART: ("出发", "Depart"),
    A.ARRIVE: ("到达", "Arrived"),
    A.DIAGNOSE: ("开始诊断", "Diagnose"),
    A.NEED_PARTS: ("待备件", "Need parts"),
    A.PARTS_ARRIVED: ("备件已到", "Parts arrived"),
    A.NEED_THIRD_PARTY: ("需第三方", "Need third party"),
    A.THIRD_PARTY_DONE: ("检测结果已回", "Result back"),
    A.REPAIR: ("开始维修", "Start repair"),
    A.RESOLVE: ("已解决", "Resolved"),
    A.CONFIRM: ("确认修好", "Confirm fixed"),
    A.REJECT: ("没修好", "Not fixed"),
    A.REOPEN: ("重新打开", "Reopen"),
    A.CANCEL: ("取消工单", "Cancel ticket"),
    A.AUTO_CLOSE: ("自动关闭", "Auto-close"),
    A.MERGE: ("合并", "Merge"),
    NoteAction.CONFIRM_DIAGNOSIS: ("确认", "Confirm"),
    NoteAction.DISCARD_DIAGNOSIS: ("重录", "Record again"),
    SlaAction.SNOOZE: ("延期", "Snooze"),
    ClosureAction.TICK: ("完成", "Done"),
    IntakeAction.REPORT: ("报修", "Report it"),
    IntakeAction.DISMISS: ("不用", "No need"),
    IntakeAction.IMPACT: ("影响", "Impact"),
    IntakeAction.PRIORITY: ("改优先级", "Set priority"),
    IntakeAction.SAME_FAULT: ("合并", "Merge"),
    IntakeAction.NOT_SAME: ("不是同一问题", "Not the same"),
    CsatAction.RATE: ("评价", "Rate"),
    PartsAction.ETA: ("备件到货时间", "Parts ETA"),
    PartsAction.VISIT: ("维修时间", "Repair visit"),
}

CLOCK_LABELS: Mapping[ClockKind, tuple[str, str]] = {
    ClockKind.RESPOND: ("响应", "Response"),
    ClockKind.ARRIVE: ("到场", "Arrival"),
    ClockKind.RESOLVE: ("解决", "Resolution"),
    ClockKind.STAY: ("停留", "Time in state"),
}


def state_label(state: TicketState, locale: str) -> str:
    zh, en = STATE_LABELS[state]
    return zh if locale == "zh" else en


def action_label(action: Press, locale: str) -> str:
    zh, en = ACTION_LABELS[action]
    return zh if locale == "zh" else en


_ACTIONS_BY_NAME = {str(a): a for a in ACTION_LABELS}


def press_of(name: str) -> Press | None:
    """The press a button's action name stands for (None: not one of ours)."""
    return _ACTIONS_BY_NAME.get(name)


def state_label_of(name: str, locale: str) -> str:
    """``state_label`` for a state's name (what errors carry); unknown names as they are."""
    return state_label(TicketState(name), locale) if name in STATE_LABELS else name


def action_label_of(name: str, locale: str) -> str:
    """``action_label`` for an action's name (what errors carry); unknown names as they are."""
    action = _ACTIONS_BY_NAME.get(name)
    return action_label(action, locale) if action is not None else name


def clock_label(kind: ClockKind, locale: str, state: TicketState | None = None) -> str:
    """ "响应" / "Response"; a stay clock names its state: "停留「待备件」"."""
    zh, en = CLOCK_LABELS[kind]
    if kind == ClockKind.STAY and state is not None:
        s = state_label(state, locale)
        return f"{zh}「{s}」" if locale == "zh" else f"Time in “{s}”"
    return zh if locale == "zh" else en
