"""Each routing rule on its own (``bot/routing_rules.py``): who wins, and the reason people read."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import RoutingSettings
from bot.errors import ConfigError
from bot.routing_rules import Candidate, Job, haversine_km, rank, reason_text
from bot.shifts import parse_shift
from tests.conftest import make_settings

RULES = RoutingSettings()
SHANGHAI = ZoneInfo("Asia/Shanghai")
WEDNESDAY_10 = datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)
JOB = Job(category="equipment_failure", title="注塑机停机", device="3号注塑机")
PEOPLE_SQUARE = (31.2304, 121.4737)  # 人民广场
PUDONG_AIRPORT = (31.1443, 121.8083)
JIADING = (31.3747, 121.2650)


def engineer(key: str, person_id: int, **facts: object) -> Candidate:
    values: dict[str, object] = {
        "key": key,
        "person_id": person_id,
        "name": key.title(),
        "skills": (),
        "max_open": 5,
        "load": 0,
        **facts,
    }
    return Candidate(**values)  # type: ignore[arg-type]


def winner(job: Job, *candidates: Candidate, at: datetime = WEDNESDAY_10) -> str | None:
    win = rank(RULES, job, candidates, at).winner
    return win.candidate.key if win else None


def test_skills_match_the_ticket_without_an_asset() -> None:
    ranking = rank(
        RULES,
        JOB,
        [engineer("an", 1, skills=("network_it",)), engineer("li", 2, skills=("注塑机",))],
        WEDNESDAY_10,
    )
    assert ranking.winner is not None and ranking.winner.candidate.key == "li"
    assert reason_text(ranking.winner, "zh").startswith("技能匹配：注塑机")
    assert "no matching skill" in reason_text(ranking.scores[1], "en")


def test_skills_match_the_asset_category_and_model_when_there_is_an_asset() -> None:
    # The title says 注塑机, but the registered asset is an air compressor: the asset decides.
    job = Job(category="equipment_failure", title="注塑机旁边的机器停了", has_asset=True,
              asset_category="空压机", asset_model="GA37")  # fmt: skip
    moulding = engineer("an", 1, skills=("注塑机",))
    compressors = engineer("li", 2, skills=("空压机",))
    by_model = engineer("wu", 3, skills=("GA37",))
    assert winner(job, moulding, compressors) == "li"
    assert winner(job, moulding, by_model) == "wu"


def test_an_engineer_at_max_open_is_never_picked_and_fewer_open_tickets_score_higher() -> None:
    full = engineer("an", 1, skills=("注塑机",), load=5, max_open=5)
    busy = engineer("li", 2, load=3)
    idle = engineer("wu", 3, load=1)
    ranking = rank(RULES, JOB, [full, busy, idle], WEDNESDAY_10)
    assert [s.candidate.key for s in ranking.scores] == ["wu", "li", "an"]
    assert ranking.scores[2].excluded is not None
    assert ranking.scores[2].excluded.said("zh") == "已满 5/5 单"
    assert "当前 1 单" in reason_text(ranking.scores[0], "zh")
    assert winner(JOB, full) is None  # nobody with room: a dispatcher decides


def test_distance_orders_engineers_from_their_base_to_the_site() -> None:
    job = Job(category="equipment_failure", title="停机", site=PEOPLE_SQUARE)
    near = engineer("zz", 1, base=JIADING)
    far = engineer("aa", 2, base=PUDONG_AIRPORT)
    unknown = engineer("mm", 3)
    ranking = rank(RULES, job, [far, near, unknown], WEDNESDAY_10)
    assert [s.candidate.key for s in ranking.scores] == ["zz", "mm", "aa"]
    km = round(haversine_km(JIADING, PEOPLE_SQUARE), 1)
    assert 20 < km < 30  # Jiading to People's Square; Pudong airport is about 33 km
    assert reason_text(ranking.scores[0], "en").endswith(f"{km} km away")
    assert "距离未知（按 30 km 计）" in reason_text(ranking.scores[1], "zh")
    no_site = rank(RULES, JOB, [far, near], WEDNESDAY_10)  # the site's place is unknown
    assert no_site.tie and no_site.scores[0].parts[3].said("zh") == "现场位置未知"


def test_the_last_site_within_hours_wins_over_the_base() -> None:
    job = Job(category="equipment_failure", title="停机", site=PEOPLE_SQUARE)
    based_near = engineer("aa", 1, base=JIADING)
    was_just_there = engineer("bb", 2, base=PUDONG_AIRPORT, last_site=(31.2310, 121.4740))
    ranking = rank(RULES, job, [based_near, was_just_there], WEDNESDAY_10)
    assert ranking.winner is not None and ranking.winner.candidate.key == "bb"
    assert "距离 0.1 km（从上一现场）" in reason_text(ranking.winner, "zh")


def test_fatigue_lowers_an_engineer_after_similar_tickets_in_a_row() -> None:
    tired = engineer("aa", 1, skills=("注塑机",), streak=3)
    fresh = engineer("bb", 2, skills=("注塑机",), streak=2)
    ranking = rank(RULES, JOB, [tired, fresh], WEDNESDAY_10)
    assert ranking.winner is not None and ranking.winner.candidate.key == "bb"
    assert "已连续 3 张equipment_failure单" in reason_text(ranking.scores[1], "zh")
    assert "3 equipment_failure tickets in a row" in reason_text(ranking.scores[1], "en")
    off = RoutingSettings(fatigue_after=0)
    assert rank(off, JOB, [tired, fresh], WEDNESDAY_10).tie  # with the rule off: equal


def test_the_assets_preferred_engineer_gets_a_bonus() -> None:
    job = Job(category="equipment_failure", title="停机", has_asset=True,
              asset_category="注塑机", preferred="bb")  # fmt: skip
    skilled = engineer("aa", 1, skills=("注塑机",))
    preferred = engineer("bb", 2, skills=("注塑机",), load=1)
    ranking = rank(RULES, job, [skilled, preferred], WEDNESDAY_10)
    assert ranking.winner is not None and ranking.winner.candidate.key == "bb"
    assert "设备首选工程师" in reason_text(ranking.winner, "zh")
    assert "the asset's preferred engineer" in reason_text(ranking.winner, "en")


def test_a_tie_goes_to_the_one_longest_without_a_new_ticket_not_the_first_name() -> None:
    an = engineer("an", 1, last_ticket=42)
    zhu = engineer("zhu", 2, last_ticket=17)
    ranking = rank(RULES, JOB, [an, zhu], WEDNESDAY_10)
    assert ranking.tie and ranking.winner is not None and ranking.winner.candidate.key == "zhu"
    assert reason_text(ranking.winner, "zh", tie=True).endswith("同分：最久未接新单者优先")
    never = engineer("yu", 3, last_ticket=None)
    assert winner(JOB, an, zhu, never) == "yu"  # someone who never had one goes first


def test_shifts_cover_their_days_and_run_over_midnight_into_the_next_day() -> None:
    day = parse_shift("mon-fri 08:00-18:00")
    night = parse_shift("fri 22:00-06:00")
    weekend = parse_shift("sat,sun 00:00-24:00")
    friday = datetime(2026, 12, 4, 23, 30, tzinfo=SHANGHAI)
    saturday_early = datetime(2026, 12, 5, 5, 59, tzinfo=SHANGHAI)
    saturday_late = datetime(2026, 12, 5, 22, 30, tzinfo=SHANGHAI)
    assert day.covers(WEDNESDAY_10) and not day.covers(friday)
    assert night.covers(friday) and night.covers(saturday_early)
    assert not night.covers(saturday_late) and not night.covers(WEDNESDAY_10)
    assert weekend.covers(saturday_late) and not weekend.covers(friday)


def test_off_duty_engineers_wait_unless_nobody_is_on_duty() -> None:
    nights = (parse_shift("22:00-06:00"),)
    days = (parse_shift("08:00-18:00"),)
    skilled_night = engineer("aa", 1, skills=("注塑机",), shifts=nights)
    day = engineer("bb", 2, shifts=days)
    ranking = rank(RULES, JOB, [skilled_night, day], WEDNESDAY_10)
    assert ranking.winner is not None and ranking.winner.candidate.key == "bb"
    assert "在班 08:00-18:00" in reason_text(ranking.winner, "zh")
    assert ranking.scores[1].excluded is not None
    assert ranking.scores[1].excluded.said("en") == "off duty"
    # At 03:00 on Thursday (the night shift that began Wednesday), the night engineer works.
    thursday_3 = datetime(2026, 12, 3, 3, 0, tzinfo=SHANGHAI)
    assert winner(JOB, skilled_night, day, at=thursday_3) == "aa"
    # At 19:00 nobody is on duty: everyone is scored, with the off-duty points.
    evening = datetime(2026, 12, 2, 19, 0, tzinfo=SHANGHAI)
    late = rank(RULES, JOB, [skilled_night, day], evening)
    assert late.nobody_on_duty and late.winner is not None
    assert late.winner.candidate.key == "aa"
    assert "不在班（无人在班）" in reason_text(late.winner, "zh")


def test_an_explanation_reads_as_one_line_in_either_language() -> None:
    job = Job(category="equipment_failure", title="停机", has_asset=True,
              asset_category="注塑机", site=PEOPLE_SQUARE)  # fmt: skip
    li = engineer("li", 1, skills=("注塑机",), load=2, base=(31.2500, 121.4500))
    ranking = rank(RULES, job, [li], WEDNESDAY_10)
    assert ranking.winner is not None
    zh = reason_text(ranking.winner, "zh")
    en = reason_text(ranking.winner, "en")
    assert zh == "技能匹配：注塑机 · 当前 2 单 · 距离 3.1 km"
    assert en == "skill match: 注塑机 · 2 open · 3.1 km away"
    kept = ranking.as_json("zh")
    assert (kept["person"], kept["reason"], kept["scores"]) == (
        "li",
        zh,
        {"li": ranking.winner.total},
    )


def test_bad_shifts_and_coordinates_stop_start_up(tmp_path: Path) -> None:
    people = [{"id": "li", "name": "李工", "shifts": ["mon-fri 8-18"], "base": [91, 0]}]
    with pytest.raises(ConfigError) as err:
        make_settings(tmp_path, "sqlite+aiosqlite:///x.db", people=people, teams=[])
    text = str(err.value)
    assert "people.0.shifts" in text and "people.0.base" in text
