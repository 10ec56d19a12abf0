"""Voice-note decoding: bytes from any chat platform → float32 mono 16 kHz samples.

The container is sniffed from the first bytes (never from the platform's mime type), then
decoded in-process: PyAV (FFmpeg's libraries, bundled with faster-whisper; no ffmpeg binary)
for AMR-NB/WB (WeCom, DingTalk), Ogg/Opus (Telegram), WebM and MP4/M4A (Slack), MP3, WAV,
FLAC and ADTS AAC; ``silk-python`` (BSD) for WeChat's SILK v3 (``#!SILK_V3``, sometimes after
a ``0x02`` byte).

Refusals are ``AudioRejected``: ``too_large`` (bytes, checked first), ``too_long`` (the
container's declared duration when it has one, else counted while decoding, so a small file
that expands to hours is stopped early) and ``not_audio`` (unknown magic, no audio stream,
undecodable). Everything here is CPU work: call it from a worker thread, not the event loop.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.errors import AudioRejected

__all__ = ["SAMPLE_RATE", "DecodedAudio", "check_size", "decode_audio", "sniff_format"]

#: What Whisper wants.
SAMPLE_RATE = 16_000

#: (magic at offset 0, container name). Longer prefixes first where they overlap.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"#!AMR-WB\n", "amr"),
    (b"#!AMR\n", "amr"),
    (b"\x02#!SILK_V3", "silk"),
    (b"#!SILK_V3", "silk"),
    (b"OggS", "ogg"),
    (b"\x1a\x45\xdf\xa3", "matroska"),
    (b"fLaC", "flac"),
    (b"ID3", "mp3"),
)
#: Which FFmpeg demuxer opens each sniffed container.
_DEMUXER = {
    "amr": "amr",
    "ogg": "ogg",
    "matroska": "matroska",
    "mp4": "mov",
    "wav": "wav",
    "mp3": "mp3",
    "flac": "flac",
    "aac": "aac",
}
_SILK_FRAME_S = 0.02  # one SILK frame is 20 ms


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    samples: npt.NDArray[np.float32]
    """Mono, 16 kHz, float32 in [-1, 1]."""
    container: str
    """What the bytes were sniffed as: amr, silk, ogg, matroska, mp4, wav, mp3, flac, aac."""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def sniff_format(data: bytes) -> str | None:
    """The container named by the first bytes, or ``None`` when they name no known one."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[4:8] == b"ftyp":  # ISO BMFF: .m4a, .mp4, .3gp
        return "mp4"
    if len(data) >= 2 and data[0] == 0xFF:
        if data[1] & 0xF6 == 0xF0:  # ADTS sync (12 bits) with layer 00
            return "aac"
        if data[1] & 0xE0 == 0xE0 and data[1] & 0x06:  # MPEG audio frame sync, layer I–III
            return "mp3"
    return None


def check_size(data: bytes, max_bytes: int) -> None:
    """``AudioRejected("too_large", limit in MB)`` when ``data`` is over ``max_bytes``."""
    if len(data) > max_bytes:
        raise AudioRejected("too_large", round(max_bytes / 1_000_000, 1))


def decode_audio(data: bytes, *, max_duration_s: float, max_bytes: int) -> DecodedAudio:
    """Decode a voice note, refusing it when too large, too long or not audio."""
    check_size(data, max_bytes)
    container = sniff_format(data)
    if container is None:
        raise AudioRejected("not_audio")
    if container == "silk":
        samples = _decode_silk(data, max_duration_s)
    else:
        samples = _decode_av(data, _DEMUXER[container], max_duration_s)
    if samples.size == 0:
        raise AudioRejected("not_audio")
    return DecodedAudio(samples, container)


def _too_long(max_duration_s: float) -> AudioRejected:
    return AudioRejected("too_long", round(max_duration_s))


def _decode_av(data: bytes, demuxer: str, max_duration_s: float) -> npt.NDArray[np.float32]:
    import av  # imported here: PyAV loads FFmpeg's libraries (~0.2 s) on first use

    limit = int(max_duration_s * SAMPLE_RATE)
    chunks: list[npt.NDArray[np.float32]] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r", format=demuxer) as container:
            if not container.streams.audio:
                raise AudioRejected("not_audio")
            stream = container.streams.audio[0]
            declared = float(container.duration) / av.time_base if container.duration else 0.0
            if declared > max_duration_s + 0.5:  # containers round; decoding checks exactly
                raise _too_long(max_duration_s)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            frames: Any = container.decode(stream)
            for frame in [*frames, None]:  # None flushes the resampler
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    chunks.append(chunk)
                    total += chunk.size
                if total > limit:
                    raise _too_long(max_duration_s)
    except AudioRejected:
        raise
    except (av.FFmpegError, ValueError, IndexError, EOFError, OSError) as exc:
        raise AudioRejected("not_audio") from exc
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def _silk_frames(data: bytes) -> tuple[int, int]:
    """(offset of the first frame, number of 20 ms frames) of a SILK v3 stream."""
    offset = 10 if data[0] == 0x02 else 9
    pos, frames = offset, 0
    while pos + 2 <= len(data):
        (size,) = struct.unpack_from("<h", data, pos)
        if size <= 0:  # Tencent's end marker (0xFFFF) or padding
            break
        pos += 2 + size
        frames += 1
    if pos > len(data):  # the last frame is cut short
        frames -= 1
    return offset, frames


def _decode_silk(data: bytes, max_duration_s: float) -> npt.NDArray[np.float32]:
    import pysilk

    _, frames = _silk_frames(data)
    if frames * _SILK_FRAME_S > max_duration_s:
        raise _too_long(max_duration_s)
    if frames == 0:
        raise AudioRejected("not_audio")
    pcm = io.BytesIO()
    try:
        pysilk.decode(io.BytesIO(data), pcm, SAMPLE_RATE)
    except (pysilk.SilkError, ValueError, TypeError) as exc:
        raise AudioRejected("not_audio") from exc
    raw = pcm.getvalue()
    pcm16 = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")
    return (pcm16.astype(np.float32) / 32768.0).astype(np.float32)
