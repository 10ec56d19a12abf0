"""The intake's first reading of a chat message: what a dispatcher sees on the new ticket."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from bot.nlp.classify import Reading, classify, read_rules
from bot.nlp.lexicon import load_lexicon
from bot.nlp.text import cn_number, normalize, token_spans, tokens, warm_up
from bot.tickets import Category, Priority

P0, P1, P2, P3 = Priority.P0, Priority.P1, Priority.P2, Priority.P3
EQUIP = Category.EQUIPMENT_FAILURE
NET = Category.NETWORK_IT
SOFT = Category.SOFTWARE_CONFIG
SAFETY = Category.SAFETY
FACILITY = Category.FACILITY
CONSULT = Category.CONSULTATION
OTHER = Category.OTHER


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    warm_up()


# (message, priority, category): every one of them is a fault report. Priorities follow the
# product's definitions: P0 production stopped, a hazard, a total outage; P1 impaired, urged or
# chased; P2 a normal fault or a recovered incident; P3 cosmetic or FYI.
REPORTS = [
    # P0: safety
    ("配电柜冒烟了，有焦味！", P0, SAFETY),
    ("3号车间有人触电受伤了", P0, SAFETY),
    ("天然气管道漏气，快来人", P0, SAFETY),
    ("二号楼电梯困人了", P0, SAFETY),
    ("冒烟了，还好没伤到人", P0, SAFETY),
    ("Fire in the warehouse!", P0, SAFETY),
    ("Someone got an electric shock at Line 2", P0, SAFETY),
    # P0: production stopped, with or without the word "line"
    ("产线全停", P0, EQUIP),
    ("全线停产了", P0, EQUIP),
    ("二车间整条产线停了", P0, EQUIP),
    ("3号线停了", P0, EQUIP),
    ("production is down", P0, EQUIP),
    ("The whole line is down", P0, EQUIP),
    ("三号注塑机不转了，生产停了", P0, EQUIP),
    ("冲压车间3#冲床不动了", P0, EQUIP),
    ("灌装机停了，开不起来", P0, EQUIP),
    # P0: a total outage
    ("全厂断网了，MES谁都用不了", P0, NET),
    # P1: impaired, intermittent, a workaround, lost redundancy, urged
    ("空压机压力上不去，偶尔停机", P1, EQUIP),
    ("两台冷却泵坏了一台，现在靠另一台撑着", P1, EQUIP),
    ("传送带时好时坏，速度提不上去，影响产量", P1, EQUIP),
    ("冷水机温度高，急！", P1, EQUIP),
    # P2: a normal fault, production not impaired
    ("B栋3楼厕所漏水", P2, FACILITY),
    ("二楼办公室的打印机打不出来", P2, NET),
    ("The air compressor in Building 5 is leaking oil, still running fine", P2, EQUIP),
    ("昨晚空压机停了半小时，现在已经恢复了，想查一下原因", P2, EQUIP),
    # P3: cosmetic
    ("注塑机外壳掉漆了，不影响使用", P3, EQUIP),
]


@pytest.mark.parametrize(("text", "priority", "category"), REPORTS)
def test_reports_get_priority_and_category(
    text: str, priority: Priority, category: Category
) -> None:
    reading = classify(text)
    assert (reading.is_fault_report, reading.priority, reading.category) == (
        True,
        priority,
        category,
    )


@pytest.mark.parametrize(
    "text",
    ["", "   ", "你好", "您好！", "谢谢", "好的，收到", "好的，麻烦了", "在吗？",
     "ok", "hello", "Thanks!", "thanks for your help", "ok got it", "修好了，谢谢师傅",
     "今天天气不错", "请问发票什么时候能开？", "What does the service contract cost per year?",
     "热线一直打不通，等了二十分钟"],
)  # fmt: skip
def test_greetings_questions_and_complaints_are_not_fault_reports(text: str) -> None:
    reading = classify(text)
    assert not reading.is_fault_report
    assert reading.priority == P3


# Negated symptoms must not drive the reading.
NEGATIONS = [
    ("不是停机，就是声音比平时大", True, P2),
    ("没有冒烟，但是3号空压机停机了，生产停了", True, P0),
    ("没人受伤，但是冲床停了，线停了", True, P0),
    ("Machine 3 isn't down, it's just a bit noisy", True, P2),
    ("没漏油，也没冒烟", False, P3),
    ("there is no smoke", False, P3),
    # a hazard or stop guarded against is not happening
    ("有没有防漏电的插座", False, P3),
    ("为了避免停机，请下周提前检修一下", False, P3),
]


@pytest.mark.parametrize(("text", "is_report", "priority"), NEGATIONS)
def test_negated_keywords_do_not_count(text: str, is_report: bool, priority: Priority) -> None:
    reading = classify(text)
    assert (reading.is_fault_report, reading.priority) == (is_report, priority)


@pytest.mark.parametrize(
    ("text", "denied"),
    [
        ("喷涂线没气停了", False),  # 没 denies the air, not the stop
        ("车间没蒸汽全停了", False),
        ("压缩机 不 不工作 了", False),  # a stutter, not a double negative
        ("没有完全停机", True),  # over an adverb the denial reaches the stop
        ("没有停机", True),
        ("不是停机，就是声音比平时大", True),
    ],
)
def test_what_a_negator_denies(text: str, denied: bool) -> None:
    norm = normalize(text)
    rules = read_rules(norm, token_spans(norm))
    assert rules.stop_denied is denied
    assert ("k:down" in rules.facts or "k:linestop" in rules.facts) is not denied


@pytest.mark.parametrize(
    "text",
    [
        "人呢？怎么还没到",
        "修了一周了还是不行",
        "any update on the chiller?",
        "上午报的那个还没人来",
    ],
)
def test_chasing_an_open_fault_is_a_followup(text: str) -> None:
    reading = classify(text)
    assert reading.is_fault_report and reading.followup
    assert reading.priority in (P0, P1)


def test_a_new_report_is_not_a_followup() -> None:
    assert not classify("冷却塔水泵漏水了").followup


def test_every_field_has_a_confidence() -> None:
    sure = classify("配电柜冒烟了，有焦味！")
    assert sure.confidence.report >= 0.9 and sure.confidence.priority >= 0.9
    for reading in (sure, classify("嗯"), classify("那个机器有点怪")):
        c = reading.confidence
        for value in (c.report, c.priority, c.category, c.device_code, c.followup):
            assert 0.0 <= value <= 1.0


@pytest.mark.parametrize(
    ("text", "device_code", "device_name", "location", "device", "alarm_code"),
    [
        ("3号注塑机停机了，报警E102", None, "3号注塑机", None, "注塑机", "E102"),
        ("二车间B线的CNC-07主轴过热", "CNC-07", None, "二车间B线", "CNC", None),
        ("十二号冲床异响", None, "12号冲床", None, "冲床", None),
        ("2#空压机漏气", None, "2#空压机", None, "空压机", None),
        ("B栋3楼AC-3F-02不制冷", "AC-3F-02", None, "B栋3楼", None, None),
        ("A区冷水机故障码：E-21", None, None, "A区", "冷水机", "E-21"),
        ("3号线停了", None, None, "3号线", None, None),
        ("The robot arm in Cell 4 stopped, ALM-21", None, None, "Cell 4", "robot arm", "ALM-21"),
        ("Compressor 2 on Line 2 is leaking", None, "Compressor 2", "Line 2", "compressor", None),
        # explicit tags and serials, as written (lower case kept)
        ("SN: KX2024-0087 的灌装机不出料", "KX2024-0087", None, None, None, None),
        ("设备编号ZJ-0312异响", "ZJ-0312", None, None, "设备", None),
        ("编号：cnc-07 主轴过热", "cnc-07", None, None, "CNC", None),
        ("asset tag HVAC-2F-07 is leaking", "HVAC-2F-07", None, None, "hvac", None),
        # not tags: alarm codes, orders, tickets, phone numbers, lines, ordinal names
        ("订单号PO-2231的备件什么时候到，电话13812345678", None, None, None, "电话", None),
        ("GD-12 还没修好", None, None, None, None, None),
    ],
)
def test_extracts_tags_names_places_and_alarms(
    text: str,
    device_code: str | None,
    device_name: str | None,
    location: str | None,
    device: str | None,
    alarm_code: str | None,
) -> None:
    r = classify(text)
    got = (r.device_code, r.device_name, r.location, r.device, r.alarm_code)
    assert got == (device_code, device_name, location, device, alarm_code)


def test_full_width_text_reads_like_half_width() -> None:
    full = classify("３号注塑机停机了，报警Ｅ１０２")
    half = classify("3号注塑机停机了，报警E102")
    assert full == half
    assert full.device_name == "3号注塑机"


def test_air_leak_on_a_compressor_is_not_a_gas_leak() -> None:
    assert classify("空压机漏气").category == EQUIP
    assert classify("车间燃气漏气").category == SAFETY


def test_mixed_language_message() -> None:
    reading = classify("Line 2的PLC报警，urgent")
    assert reading.language == "zh"
    assert reading.is_fault_report and reading.urgent
    assert (reading.category, reading.location) == (EQUIP, "Line 2")


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("你好，3号注塑机停机了，报警E102", "3号注塑机停机，报警E102"),
        ("@张工 冷水机温度高啊！！！谢谢", "冷水机温度高"),
        ("3号机停了", "3号机停了"),  # 停了 keeps its 了
        (
            "二车间B线的CNC-07主轴过热，报警E102，温度一直在升高，麻烦尽快派人来看一下谢谢",
            "二车间B线的CNC-07主轴过热，报警E102，温度一直在升高",
        ),
        ("The air compressor in Building 5 is leaking oil", "The air compressor in Building 5 is…"),
    ],
)
def test_title_is_short_and_clean(text: str, title: str) -> None:
    reading = classify(text)
    assert reading.title == title
    assert len(reading.title) <= 40


@pytest.mark.parametrize(
    ("text", "language"),
    [("注塑机停机", "zh"), ("PLC报警", "zh"), ("The chiller is noisy", "en"), ("", "zh")],
)
def test_language(text: str, language: str) -> None:
    assert classify(text).language == language


def test_as_json_has_the_contract_keys_and_serialises() -> None:
    data = classify("二车间B线的CNC-07主轴过热").as_json(42)
    assert list(data)[:6] == [
        "id",
        "is_fault_report",
        "priority",
        "category",
        "device_code",
        "location",
    ]
    assert set(data) == {
        "id", "is_fault_report", "priority", "category", "device_code", "location",
        "device", "device_name", "alarm_code", "title", "language", "followup", "urgent",
        "confidence",
    }  # fmt: skip
    back = json.loads(json.dumps(data, ensure_ascii=False))
    assert (back["id"], back["device_code"], back["location"]) == (42, "CNC-07", "二车间B线")
    assert set(back["confidence"]) == {
        "is_fault_report", "priority", "category", "device_code", "followup"
    }  # fmt: skip


# Written for this check after the P0 threshold went to 0.07 (issue 11), in no split and never
# trained on: short running faults, and stops, outages and hazards. At 0.07, 5 of the 26
# running faults read as P0 (1 at 0.25): the price of P0 recall, kept from growing here.
RUNNING_FAULTS = [  # none is a stop, a hazard or an outage
    "6号机床换刀时有咯噔一声",
    "二号线的传送带边缘磨毛了",
    "注塑机料斗下料有点慢",
    "冷水机有点结霜",
    "7号冲床模具有点松",
    "包装机热封条温度不太稳",
    "A2线贴标偶尔贴反",
    "空压机油分有点漏油",
    "机器人第三轴有点抖",
    "烘箱风机有异味",
    "切割机割出来边上有挂渣",
    "挤出机螺杆有点响",
    "4号线辊筒有一个转得慢",
    "液压缸动作有点顿",
    "分条机张力有点不稳",
    "Press brake 2 hums louder than normal",
    "Line 5 conveyor belt is fraying at the edge",
    "Small oil puddle under the mixer gearbox",
    "CNC 12 spindle sounds gritty",
    "Palletizer wraps are a bit loose",
    "Capper torque drifts a little high",
    "Chiller 1 is short cycling",
    "Bearing on the extruder drive is warm",
    "Screen on the HMI flickers now and then",
    "Line A case erector squeaks",
    "Coolant pump on lathe 9 is noisy",
]
STOPS_AND_HAZARDS = [  # each is P0
    "6号机床开不了机了，活干不了",
    "二号线整个停下来了",
    "注塑机全部停了，冷却水断了",
    "冲床卡住动不了，没法生产",
    "包装线瘫了，货出不去",
    "配电房有焦糊味还冒烟",
    "车间断电了全停",
    "ERP全公司都登不进去",
    "Press brake 2 won't start, line is stopped",
    "Line 5 is completely down",
    "The mixer seized and the whole batch line stopped",
    "Smoke from the extruder panel",
    "No network anywhere on site",
    "Someone's hand got caught in the capper",
]


def test_running_faults_are_seldom_read_as_stops_and_stops_always_are() -> None:
    over = [t for t in RUNNING_FAULTS if classify(t).priority is P0]
    assert len(over) <= 5, over
    assert all(classify(t).priority is P0 for t in STOPS_AND_HAZARDS)
    assert classify("A线输送带有点跑偏").priority is not P0  # a running cue: P0 only from 0.25


def test_tokens_keep_domain_words_whole() -> None:
    assert tokens("３号注塑机没有漏油, isn't down") == [
        "3", "号", "注塑机", "没有", "漏油", ",", "isn't", "down",
    ]  # fmt: skip


def test_concurrent_classification_agrees() -> None:
    texts = [text for text, _, _ in REPORTS]
    expected = [classify(t) for t in texts]
    results: list[list[Reading]] = []

    def work() -> None:
        results.append([classify(t) for t in texts])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 4


@pytest.mark.parametrize(
    ("numeral", "value"),
    [("3", 3), ("三", 3), ("十", 10), ("十二", 12), ("二十", 20), ("一百零五", 105), ("号", None)],
)
def test_chinese_numerals(numeral: str, value: int | None) -> None:
    assert cn_number(numeral) == value


def test_normalize_keeps_chinese_punctuation() -> None:
    assert normalize("  ３号  ＣＮＣ－０７，停了！ ") == "3号 CNC-07，停了！"


def test_lexicon_rejects_a_repeated_term(tmp_path: Path) -> None:
    bad = tmp_path / "lexicon.tsv"
    bad.write_text("down\t-\t停机\ndegraded\t-\t停机\n", encoding="utf-8")
    with pytest.raises(ValueError, match="repeated term"):
        load_lexicon(bad)
