"""Transcript normalisation: script, punctuation, numerals, the lexicon's homophone pass."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from bot.nlp.normalize import (
    cer,
    load_lexicon,
    normalize_transcript,
    numerals_to_digits,
    to_simplified,
)

REFERENCES = Path(__file__).parent.parent / "fixtures" / "audio" / "references.tsv"
LEXICON = load_lexicon()


def test_traditional_becomes_simplified() -> None:
    assert to_simplified("3號空壓機停機，排氣溫度85度") == "3号空压机停机，排气温度85度"
    assert to_simplified("Compressor 3 tripped") == "Compressor 3 tripped"


@pytest.mark.parametrize(
    ("spoken", "written"),
    [
        ("零点八兆帕", "0.8兆帕"),
        ("排气温度八十五度", "排气温度85度"),
        ("三号空压机", "3号空压机"),
        ("一号冲床", "1号冲床"),
        ("温度一百八十度", "温度180度"),
        ("十二个轴承", "12个轴承"),
        ("第三次", "第3次"),
        ("百分之五十", "50%"),
        ("压力零点五", "压力0.5"),
        ("二十分钟", "20分钟"),
        ("三小时", "3小时"),
        # words and idioms stay words
        ("等一下", "等一下"),
        ("一直报警", "一直报警"),
        ("统一更换", "统一更换"),
        ("万一漏电", "万一漏电"),
        ("十分严重", "十分严重"),
        ("一点点", "一点点"),
        ("一二线城市", "一二线城市"),
        ("星期三", "星期三"),
        ("要订一个风扇", "要订一个风扇"),
        ("观察两个小时", "观察两个小时"),
        ("三个轴承", "三个轴承"),
        ("一样", "一样"),
    ],
)
def test_quantities_become_digits_and_words_stay(spoken: str, written: str) -> None:
    assert numerals_to_digits(spoken) == written


@pytest.mark.parametrize(
    ("heard", "meant"),
    [
        # what Whisper base heard on the 8 kHz fixtures (bench/README.md)
        ("2号住速机便评弃报过刘故障", "2号注塑机变频器报过流故障"),
        ("包装线控制柜段网了", "包装线控制柜断网了"),
        ("估计是周承摩损", "估计是轴承磨损"),
        ("4号机械避伺服报警", "4号机械臂伺服报警"),
        ("6号挤出鸡加热圈烧坏了", "6号挤出机加热圈烧坏了"),
        ("冷却爬风机皮带断了", "冷却塔风机皮带断了"),
        ("已经加了潤华之", "已经加了润滑脂"),
        ("张锦伦也要调整一下", "张紧轮也要调整一下"),
        ("怀疑冷却封上坏了", "怀疑冷却风扇坏了"),  # feng shang ≈ feng shan (-ang/-an)
        ("还有一个门所", "还有一个门锁"),  # a part the diagnosis reader knows (voice set, dev)
        # real words are left alone
        ("只是等一下", "只是等一下"),  # not 指示灯
        ("我意想不到", "我意想不到"),  # not 异响
        ("这条语音已经处理过了", "这条语音已经处理过了"),  # not 过热
        ("二号楼电梯困人了", "2号楼电梯困人了"),  # not 漏电
        ("额定电流九十安", "额定电流90安"),  # not 停电
        ("机械比较好", "机械比较好"),  # not 机械臂
        ("甚至出现交易几乎停滞的情况", "甚至出现交易几乎停滞的情况"),
    ],
)
def test_homophones_of_lexicon_terms_are_corrected(heard: str, meant: str) -> None:
    assert normalize_transcript(heard, "zh", LEXICON) == meant


def test_every_reference_transcript_is_left_as_it_is() -> None:
    """Correct text is a fixed point: normalising a reference changes nothing."""
    with REFERENCES.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) >= 14
    for row in rows:
        language = "en" if row["id"].startswith("english") else "zh"
        assert normalize_transcript(row["reference"], language, LEXICON) == row["reference"]
        if language == "zh":  # and what was spoken normalises to the reference
            assert normalize_transcript(row["spoken"], "zh", LEXICON) == row["reference"]


def test_punctuation_is_made_chinese() -> None:
    assert normalize_transcript("3号机停了,温度85度", "zh") == "3号机停了，温度85度"
    assert normalize_transcript("保险丝\ufffd要订一个", "zh") == "保险丝，要订一个"  # half a "，"
    assert normalize_transcript("需要电工过来看一下,", "zh") == "需要电工过来看一下。"
    assert normalize_transcript("压力0.8兆帕.", "zh") == "压力0.8兆帕。"  # a digit's dot stays
    # a pause Whisper writes as a space between Chinese phrases is a comma; 3 号 stays
    assert normalize_transcript("电流65A 油分芯堵了 先停机", "zh") == "电流65A，油分芯堵了，先停机"
    assert normalize_transcript("温度 85度", "zh") == "温度 85度"


def test_english_is_only_tidied() -> None:
    text = "Compressor three  tripped, replace the fuse."
    tidied = "Compressor three tripped, replace the fuse."
    assert normalize_transcript(text, "en", LEXICON) == tidied


def test_a_deployment_lexicon_comes_first_and_is_corrected_to(tmp_path: Path) -> None:
    own = tmp_path / "lexicon.txt"
    own.write_text("# our line\n灌装机\tequipment\n贴标机\tequipment\n", encoding="utf-8")
    lexicon = load_lexicon(own)
    assert lexicon.terms[:2] == ("灌装机", "贴标机")
    assert lexicon.prompt(3) == "设备维修语音记录：灌装机，贴标机，空压机。"
    assert lexicon.prompt(0) == ""
    assert normalize_transcript("三号罐装机停了", "zh", lexicon) == "3号灌装机停了"
    assert normalize_transcript("三号罐装机停了", "zh", LEXICON) == "3号罐装机停了"


def test_the_homophone_pass_is_fast_on_a_two_minute_note() -> None:
    normalize_transcript("预热", "zh", LEXICON)  # tables load once
    note = "二号助速机便评弃报过刘故障，复位以后还是跳扎，需要电功过来看一下。" * 20  # ~700 chars
    started = time.perf_counter()
    normalize_transcript(note, "zh", LEXICON)
    assert time.perf_counter() - started < 1.0


def test_character_error_rate() -> None:
    assert cer("3号空压机停机", "3号空压机停机") == 0.0
    assert cer("3号空压机停机。", "3 号空压机，停机") == 0.0  # punctuation and spaces ignored
    assert cer("变频器报警", "辩评器报警") == pytest.approx(0.4)
    assert cer("Fan motor", "fan motor") == 0.0
    assert cer("", "") == 0.0
