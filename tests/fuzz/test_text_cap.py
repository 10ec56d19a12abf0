"""The text cap every platform's events pass through (``bot.inbox.TextCap``)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from bot.events import Address, Message, Sender
from bot.inbox import TextCap
from tests.fuzz.strategies import FUZZ

NOW = datetime(2026, 5, 1, tzinfo=UTC)
MARKS = ("…(已截断)", "…(truncated)")


@FUZZ
@given(
    text=st.text(max_size=400) | st.integers(0, 3000).map(lambda n: "停" * n),
    text_chars=st.integers(100, 300),
    attachment_chars=st.integers(0, 12) | st.integers(0, 2000),
    hint=st.none() | st.sampled_from(["en", "en-US", "zh-hans", "fr", ""]),
)
def test_a_text_is_kept_whole_or_cut_with_a_mark_and_kept_as_an_attachment(
    text: str, text_chars: int, attachment_chars: int, hint: str | None
) -> None:
    cap = TextCap(text_chars=text_chars, attachment_chars=attachment_chars)
    sender = Sender("telegram", "1", "n", hint)
    event = Message("e", Address("telegram", "1"), sender, "direct", NOW, text)
    out = cap.apply(event)
    assert isinstance(out, Message)
    if len(text) <= text_chars:
        assert out == event
        return
    mark = "…(truncated)" if (hint or "").startswith("en") else "…(已截断)"
    assert len(out.text) == text_chars and out.text.endswith(mark)
    assert text.startswith(out.text.removesuffix(mark))
    if attachment_chars == 0:
        assert out.full_text is None
    else:
        assert out.full_text is not None and len(out.full_text) <= attachment_chars
        assert text.startswith(out.full_text.removesuffix(mark))
        assert (
            out.full_text == text or out.full_text.endswith(mark) or attachment_chars <= len(mark)
        )
