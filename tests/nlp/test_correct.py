"""The transcript corrector (bot/nlp/correct.py): a misheard term is replaced in context, correct
text is left alone, a deployment's own names are targets, and it is fast."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bot.nlp.correct import catalog_terms, maintenance_terms
from bot.nlp.normalize import _NOT_COUNTED, cer, load_lexicon

LEXICON = load_lexicon()
VOICESET = Path(__file__).parents[1] / "fixtures" / "voiceset" / "labelled.jsonl"
INTAKE_DEV = Path(__file__).parents[2] / "bot" / "nlp" / "data" / "intake" / "dev.jsonl"


@pytest.mark.parametrize(
    ("heard", "meant"),
    [
        # what Whisper base wrote on the voice set's dev notes (bench/voice_set_heard.json)
        ("油分轻堵了，叫供应商明天送一个油分轻过来", "油分芯堵了，叫供应商明天送一个油分芯过来"),
        ("冷却水进水温度32度，冷却去结垢", "冷却水进水温度32度，冷却器结垢"),  # qu ≈ qi
        ("气压0.4罩怕偏低", "气压0.4兆帕偏低"),  # a unit after a number
        ("排气压力1.6罩叛，过热度8度", "排气压力1.6兆帕，过热度8度"),  # pan ≈ pa, after a number
        ("编码器报过在", "编码器报过载"),
        ("3号机械避第4轴报警", "3号机械臂第4轴报警"),
        ("需要两个油风和一桶齿轮油", "需要两个油封和一桶齿轮油"),
    ],
)
def test_a_misheard_term_is_corrected_in_context(heard: str, meant: str) -> None:
    assert LEXICON.correct(heard) == meant


@pytest.mark.parametrize(
    "text",
    [
        "只是等一下",  # not 指示灯
        "这条语音已经处理过了",  # not 过热
        "调整好以后误差3毫米，符合要求",  # 符合 inside 符合要求 is a common word: not 负荷
        "机械比较好",  # not 机械臂
    ],
)
def test_a_correct_sentence_is_left_alone(text: str) -> None:
    assert LEXICON.correct(text) == text


def _corpus_cer(texts: list[str]) -> float:
    edits = length = 0.0
    for text in texts:
        size = len(_NOT_COUNTED.sub("", text))
        edits += cer(text, LEXICON.correct(text)) * size
        length += size
    return edits / length


def test_correct_text_stays_nearly_untouched() -> None:
    """The voice set's dev references and the intake's dev reports, already right, through the
    corrector: 0.0031 and 0.0025 CER when it was tuned (a few words in 800 texts; some of the
    reports' changes are their own typos put right: 露油 → 漏油, 压缩鸡 → 压缩机)."""
    with VOICESET.open(encoding="utf-8") as f:
        dev = [json.loads(line) for line in f]
    references = [str(n["text"]) for n in dev if n["split"] == "dev"]
    with INTAKE_DEV.open(encoding="utf-8") as f:
        reports = [str(json.loads(line)["text"]) for line in f]
    assert _corpus_cer(references) <= 0.006
    assert _corpus_cer(reports) <= 0.003


def test_a_deployments_names_are_targets() -> None:
    terms = catalog_terms(["3号灌装机", "SKF 6205 轴承", "IM-003 注塑机", "A"])
    assert terms == ("号灌装机", "轴承", "注塑机")
    assert LEXICON.correct("三号罐装机停了") == "三号罐装机停了"
    assert LEXICON.correct("三号罐装机停了", ("灌装机",)) == "三号灌装机停了"


def test_the_maintenance_lexicon_is_large_and_domain() -> None:
    terms = maintenance_terms()
    assert len(terms) >= 2000
    assert {"电磁阀", "减速机", "液压油", "齿轮油", "离合器", "磨损"} <= set(terms)
    assert not {"手机", "飞机", "电视"} & set(terms)


def test_a_note_is_corrected_in_milliseconds() -> None:
    note = "3号空压机排气温度92度，电流65安，油分轻堵了，叫供应商明天送一个油分轻过来，先停机等配件"
    LEXICON.correct(note)  # the models load once
    started = time.perf_counter()
    for _ in range(10):
        LEXICON.correct(note)
    assert (time.perf_counter() - started) / 10 < 0.05  # ~2 ms here; generous for CI


def test_the_voice_sets_dev_notes_as_whisper_heard_them() -> None:
    """Whisper's committed raw text of the dev notes (bench/voice_set_heard.json) through
    ``normalize_transcript``: corrected CER 0.193 when tuned (0.213 with the old homophone
    pass); a floor a little above it. Dev only: the test split is scored by the bench."""
    from bot.nlp.normalize import normalize_transcript

    heard = json.loads((Path(__file__).parents[2] / "bench" / "voice_set_heard.json").read_text())
    with VOICESET.open(encoding="utf-8") as f:
        dev = [n for n in map(json.loads, f) if n["split"] == "dev"]
    edits = length = 0.0
    for n in dev:
        h = heard[f"{n['id']}.amr"]
        size = len(_NOT_COUNTED.sub("", n["text"]))
        got = normalize_transcript(h["raw"], h["language"], LEXICON)
        edits += cer(n["text"], got) * size
        length += size
    assert edits / length <= 0.20
