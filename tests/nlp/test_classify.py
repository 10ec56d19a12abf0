"""The intake's first reading of a chat message: what a dispatcher sees on the new ticket."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from bot.nlp.classify import Reading, _load_lexicon, classify
from bot.nlp.text import cn_number, normalize, tokens, warm_up
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


# (message, priority, category): every one of them is a fault report / something to ticket.
REPORTS = [
    # P0: safety
    ("配电柜冒烟了，有焦味！", P0, SAFETY),
    ("配电房有烧焦味，没看到明火", P0, SAFETY),
    ("3号车间有人触电受伤了", P0, SAFETY),
    ("仓库叉车漏电", P0, SAFETY),
    ("天然气管道漏气，快来人", P0, SAFETY),
    ("二号楼电梯困人了", P0, SAFETY),
    ("Fire in the warehouse!", P0, SAFETY),
    ("Someone got an electric shock at Line 2", P0, SAFETY),
    # P0: a whole line or plant stopped
    ("全线停产了", P0, EQUIP),
    ("二车间整条线都停了", P0, EQUIP),
    ("3号线停了", P0, EQUIP),
    ("B线停线了", P0, EQUIP),
    ("The whole line is down", P0, EQUIP),
    ("Production line down in Building 3", P0, EQUIP),
    # P1: a machine down
    ("3号线的注塑机停了", P1, EQUIP),
    ("冲压车间3#冲床不动了", P1, EQUIP),
    ("三号注塑机不转了", P1, EQUIP),
    ("机械臂死机了，无法启动", P1, EQUIP),
    ("配电柜跳闸，整个注塑机断电", P1, EQUIP),
    ("车间断网了，MES用不了", P1, NET),
    ("服务器宕机", P1, NET),
    ("电梯坏了", P1, FACILITY),
    ("Machine 3 is down, no smoke", P1, EQUIP),
    ("The robot arm in Cell 4 stopped, ALM-21", P1, EQUIP),
    ("The boiler won't start", P1, EQUIP),
    # P2: degraded but working
    ("空压机压力低，偶尔停机", P2, EQUIP),
    ("变频器报警F0001", P2, EQUIP),
    ("冷水机温度高", P2, EQUIP),
    ("1号厂房空调不制冷", P2, FACILITY),
    ("B栋3楼厕所漏水", P2, FACILITY),
    ("屋顶漏水，滴到地上了", P2, FACILITY),
    ("交换机掉线", P2, NET),
    ("今天早上开始网络特别慢，ERP打开要一分钟", P2, NET),
    ("包装线传送带跑偏，不影响生产", P2, EQUIP),
    ("打印机打不出来", P2, NET),
    ("电脑死机了", P2, NET),
    ("ERP系统登录不了，提示密码错误", P2, SOFT),
    ("MES参数配置不对", P2, SOFT),
    ("The air compressor in Building 5 is leaking oil", P2, EQUIP),
    ("Lights in Building 5 are flickering", P2, FACILITY),
    ("The printer on the 2nd floor is not working", P2, NET),
    ("Wifi keeps disconnecting in the office", P2, NET),
    ("I can't log in to the MES", P2, SOFT),
    # P3: requests and questions
    ("请派人来保养2号空压机", P3, EQUIP),
    ("能不能派人来看看3号机", P3, EQUIP),
    ("请帮忙重置一下ERP账号的密码", P3, SOFT),
    ("Please send a technician to service the boiler next week", P3, EQUIP),
    ("请问空压机多久保养一次？", P3, CONSULT),
    ("怎么连公司的VPN？", P3, CONSULT),
    ("How do I reset my ERP password?", P3, CONSULT),
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
    ["", "   ", "你好", "您好！", "谢谢", "好的，收到", "好的，麻烦了", "收到，马上处理", "在吗？",
     "ok", "hello", "Thanks!", "thanks for your help", "ok got it", "修好了，谢谢师傅",
     "3号注塑机", "今天天气不错"],
)  # fmt: skip
def test_greetings_and_acknowledgements_are_not_fault_reports(text: str) -> None:
    reading = classify(text)
    assert not reading.is_fault_report
    assert (reading.priority, reading.category) == (P3, OTHER)


# Negated symptoms must not drive the reading.
NEGATIONS = [
    ("注塑机有异响，没有漏油", True, P2, EQUIP),
    ("没有冒烟，但是3号空压机停机了", True, P1, EQUIP),
    ("不是停机，是报警E-21", True, P2, EQUIP),
    ("并没有发现漏油，就是声音有点大", True, P2, EQUIP),
    ("没人受伤，但是冲床停了", True, P1, EQUIP),
    ("没有冒烟、漏油", False, P3, OTHER),
    ("没漏油，也没冒烟", False, P3, OTHER),
    ("Compressor 2 is noisy but not leaking", True, P2, EQUIP),
    ("Machine 3 isn't down, it's just slow", True, P2, EQUIP),
    ("no one was injured but the boiler is down", True, P1, EQUIP),
    ("There is no smoke and no fire, the chiller just makes a grinding noise", True, P2, EQUIP),
    ("there is no smoke", False, P3, OTHER),
]


@pytest.mark.parametrize(("text", "is_report", "priority", "category"), NEGATIONS)
def test_negated_keywords_do_not_count(
    text: str, is_report: bool, priority: Priority, category: Category
) -> None:
    reading = classify(text)
    assert (reading.is_fault_report, reading.priority, reading.category) == (
        is_report,
        priority,
        category,
    )


@pytest.mark.parametrize(
    ("text", "priority"),
    [
        ("注塑机不转了", P1),  # 不转 is a fault phrase, not "not turning"
        ("3号机不动了", P1),
        ("冷水机不启动", P1),
        ("开不了机", P1),
        ("The conveyor won't start", P1),
        ("The boiler doesn't work", P1),
        ("不知道为什么停机了", P1),  # 不 negates 知道, not the stop
        ("一直不停地报警", P2),  # 不停 = constantly
        ("不锈钢水管漏水", P2),  # 不 inside 不锈钢
    ],
)
def test_fault_phrases_containing_negators_are_faults(text: str, priority: Priority) -> None:
    reading = classify(text)
    assert reading.is_fault_report
    assert reading.priority == priority


@pytest.mark.parametrize(
    ("text", "priority"),
    [
        ("冷水机温度高，急", P1),
        ("急急急！注塑机漏油", P1),
        ("3号注塑机停机，紧急！", P0),
        ("配电柜冒烟，马上来人", P0),  # never above P0
        ("The boiler doesn't work, asap", P0),
        ("注塑机漏油，不急", P3),
        ("CNC-07 spindle overheating, not urgent", P3),
        ("空压机有异响，并不紧急", P3),  # negated urgency lowers
        ("不急，有空来保养一下冷水机", P3),  # never below P3
    ],
)
def test_urgency_moves_priority_one_level(text: str, priority: Priority) -> None:
    assert classify(text).priority == priority


@pytest.mark.parametrize(
    ("text", "device_code", "location", "device", "alarm_code"),
    [
        ("3号注塑机停机了，报警E102", "3号注塑机", None, "注塑机", "E102"),
        ("二车间B线的CNC-07主轴过热", "CNC-07", "二车间B线", "CNC", None),
        ("三号注塑机不转了", "3号注塑机", None, "注塑机", None),
        ("十二号冲床异响", "12号冲床", None, "冲床", None),
        ("2#空压机漏气", "2#空压机", None, "空压机", None),
        ("注塑机3号漏油", "3号注塑机", None, "注塑机", None),
        ("B栋3楼AC-3F-02不制冷", "AC-3F-02", "B栋3楼", None, None),
        ("A区冷水机故障码：E-21", None, "A区", "冷水机", "E-21"),
        ("3号线停了", None, "3号线", None, None),
        ("The robot arm in Cell 4 stopped, ALM-21", None, "Cell 4", "robot arm", "ALM-21"),
        ("Compressor 2 on Line 2 is leaking", "Compressor 2", "Line 2", "compressor", None),
        ("Machine 3 in Building 5 shows error 404", "Machine 3", "Building 5", "machine", "404"),
        ("@李工 5号机台液压站油温过高报警", "5号机台", None, "液压站", None),
        ("注塑二车间的4#注塑机一直报警，屏幕显示E205", "4#注塑机", "二车间", "注塑机", "E205"),
    ],
)
def test_extracts_device_location_and_alarm(
    text: str,
    device_code: str | None,
    location: str | None,
    device: str | None,
    alarm_code: str | None,
) -> None:
    reading = classify(text)
    assert (reading.device_code, reading.location, reading.device, reading.alarm_code) == (
        device_code,
        location,
        device,
        alarm_code,
    )


def test_headline_example_reads_as_a_stopped_machine() -> None:
    reading = classify("3号注塑机停机了，报警E102")
    assert reading == Reading(
        is_fault_report=True,
        priority=P1,
        category=EQUIP,
        device_code="3号注塑机",
        location=None,
        device="注塑机",
        alarm_code="E102",
        title="3号注塑机停机，报警E102",
        language="zh",
    )


def test_cnc_spindle_overheating_is_p2_in_its_workshop() -> None:
    reading = classify("二车间B线的CNC-07主轴过热")
    assert reading.location is not None and "二车间" in reading.location
    assert (reading.device_code, reading.priority, reading.category) == ("CNC-07", P2, EQUIP)


def test_full_width_text_reads_like_half_width() -> None:
    full = classify("３号注塑机停机了，报警Ｅ１０２")
    half = classify("3号注塑机停机了，报警E102")
    assert full == half
    assert full.device_code == "3号注塑机"


def test_alarm_code_alone_is_a_degraded_machine() -> None:
    reading = classify("ALM-21 on CNC-07")
    assert (reading.is_fault_report, reading.priority, reading.category) == (True, P2, EQUIP)
    assert (reading.alarm_code, reading.device_code) == ("ALM-21", "CNC-07")


def test_air_leak_on_a_compressor_is_not_a_gas_leak() -> None:
    assert classify("空压机漏气").category == EQUIP
    assert classify("车间燃气漏气").category == SAFETY


def test_mixed_language_message() -> None:
    reading = classify("Line 2的PLC报警，urgent")
    assert reading.language == "zh"
    assert (reading.priority, reading.category, reading.location) == (P1, EQUIP, "Line 2")


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
        "device", "alarm_code", "title", "language",
    }  # fmt: skip
    assert json.loads(json.dumps(data, ensure_ascii=False)) == {
        "id": 42,
        "is_fault_report": True,
        "priority": "P2",
        "category": "equipment_failure",
        "device_code": "CNC-07",
        "location": "二车间B线",
        "device": "CNC",
        "alarm_code": None,
        "title": "二车间B线的CNC-07主轴过热",
        "language": "zh",
    }


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
        _load_lexicon(bad)
