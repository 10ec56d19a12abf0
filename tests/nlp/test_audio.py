"""Voice-note decoding: every platform's container, sniffed from its bytes, refused when it
should be (fixtures: tests/fixtures/audio/README.md)."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from bot.errors import AudioRejected
from bot.nlp.audio import SAMPLE_RATE, DecodedAudio, decode_audio, sniff_format
from bot.texts import refusal

AUDIO = Path(__file__).parent.parent / "fixtures" / "audio"


def decode(data: bytes) -> DecodedAudio:
    return decode_audio(data, max_duration_s=120.0, max_bytes=20_000_000)


#: The same 3 s of speech as each platform sends it: (fixture, sniffed container).
FORMATS = {
    "note.wav": "wav",  # a plain upload
    "note.amr": "amr",  # WeCom, DingTalk: AMR-NB, 8 kHz
    "note.ogg": "ogg",  # Telegram: Opus in Ogg
    "note.webm": "matroska",  # Slack (browser recording): Opus in WebM
    "note.m4a": "mp4",  # Slack (mobile): AAC in MP4
    "note.mp3": "mp3",
    "note.silk": "silk",  # WeChat: SILK v3 with Tencent's 0x02 byte
    "note_plain.silk": "silk",  # SILK v3 without it
}


def _wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(bytes([128]) * int(seconds * rate))
    return out.getvalue()


@pytest.mark.parametrize(("name", "container"), FORMATS.items())
def test_each_platform_format_decodes_to_16k_mono_float(name: str, container: str) -> None:
    data = (AUDIO / name).read_bytes()
    assert sniff_format(data) == container
    decoded = decode(data)
    assert decoded.container == container
    assert decoded.samples.dtype == np.float32 and decoded.samples.ndim == 1
    assert decoded.duration_s == pytest.approx(3.0, abs=0.06)
    assert len(decoded.samples) == pytest.approx(3.0 * SAMPLE_RATE, abs=0.06 * SAMPLE_RATE)
    peak = float(np.abs(decoded.samples).max())
    rms = float(np.sqrt(np.mean(decoded.samples**2)))
    assert 0.1 < peak <= 1.0 and rms > 0.01  # speech, not silence or clipping garbage


def test_the_formats_carry_the_same_speech() -> None:
    """Decoded with the right codec each, the clips line up with the WAV (no wrong resampling:
    a rate mix-up would stretch the envelope)."""
    reference = decode((AUDIO / "note.wav").read_bytes()).samples

    def envelope(x: np.ndarray) -> np.ndarray:
        frames = x[: len(x) // 800 * 800].reshape(-1, 800)  # 50 ms
        return np.asarray(np.sqrt((frames**2).mean(axis=1)))

    ref = envelope(reference)
    for name in FORMATS:
        other = envelope(decode((AUDIO / name).read_bytes()).samples)
        n = min(len(ref), len(other))
        best = max(np.corrcoef(ref[: n - 4], other[lag : n - 4 + lag])[0, 1] for lag in range(4))
        assert best > 0.9, name


def test_mp3_without_an_id3_tag_is_sniffed_by_its_frame_sync() -> None:
    data = (AUDIO / "note.mp3").read_bytes()
    assert data.startswith(b"ID3")
    size = data[6] << 21 | data[7] << 14 | data[8] << 7 | data[9]  # syncsafe tag size
    bare = data[10 + size :]
    assert sniff_format(bare) == "mp3"
    assert decode(bare).duration_s == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize(
    ("head", "container"),
    [
        (b"#!AMR\n\x3c", "amr"),
        (b"#!AMR-WB\n", "amr"),
        (b"#!SILK_V3\x10\x00", "silk"),
        (b"\x02#!SILK_V3", "silk"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
        (b"\x00\x00\x00\x20ftypM4A ", "mp4"),
        (b"\x00\x00\x00\x18ftyp3gp4", "mp4"),
        (b"\xff\xf1\x50\x80", "aac"),
        (b"\xff\xfb\x90\x64", "mp3"),
        (b"fLaC\x00", "flac"),
        (b"\x89PNG\r\n\x1a\n", None),
        (b"\xff\xd8\xff\xe0", None),  # JPEG: 0xFF but no audio frame sync
        (b"<html>", None),
        (b"", None),
    ],
)
def test_sniffing_reads_magic_bytes(head: bytes, container: str | None) -> None:
    assert sniff_format(head) == container


@pytest.mark.parametrize("name", FORMATS)
def test_longer_than_the_limit_is_refused(name: str) -> None:
    with pytest.raises(AudioRejected) as caught:
        decode_audio((AUDIO / name).read_bytes(), max_duration_s=2.0, max_bytes=20_000_000)
    assert caught.value.kind == "too_long" and caught.value.limit == 2


def test_a_small_file_that_expands_past_the_limit_is_stopped() -> None:
    data = _wav(130.0)  # 1 MB of 8-bit silence, 130 s
    with pytest.raises(AudioRejected) as caught:
        decode(data)
    assert caught.value.kind == "too_long" and caught.value.limit == 120
    assert decode(_wav(119.0)).duration_s == pytest.approx(119.0, abs=0.01)


def test_silk_duration_is_counted_from_its_frames_before_decoding() -> None:
    data = (AUDIO / "note.silk").read_bytes()
    frame = data[10:]
    (size,) = struct.unpack_from("<h", frame)
    one = frame[: 2 + size]
    long_note = data[:10] + one * 6100  # 6100 × 20 ms = 122 s
    with pytest.raises(AudioRejected) as caught:
        decode(long_note)
    assert caught.value.kind == "too_long"


def test_larger_than_the_limit_is_refused_before_decoding() -> None:
    data = (AUDIO / "note.wav").read_bytes()
    with pytest.raises(AudioRejected) as caught:
        decode_audio(data, max_duration_s=120, max_bytes=50_000)
    assert caught.value.kind == "too_large" and caught.value.limit == 0.1  # MB, for the sender
    assert "0.1 MB" in refusal(caught.value, "en")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is not audio at all",
        b"\x89PNG\r\n\x1a\n" + bytes(200),
        bytes(range(256)) * 8,
        (AUDIO / "note.ogg").read_bytes()[:120],  # Ogg magic, then cut off
        b"#!AMR\n" + b"\xff" * 64,  # AMR magic, garbage frames
        b"#!SILK_V3" + b"\x05\x00abcde" * 3,  # SILK magic, garbage frames
        b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk",
        b"\x00\x00\x00\x20ftypisom" + bytes(64),  # MP4 with no audio track
    ],
    ids=["empty", "text", "png", "noise", "cut-ogg", "bad-amr", "bad-silk", "bad-wav", "mp4"],
)
def test_what_is_not_audio_is_refused_as_such(data: bytes) -> None:
    with pytest.raises(AudioRejected) as caught:
        decode(data)
    assert caught.value.kind == "not_audio"
