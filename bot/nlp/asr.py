"""Voice notes → text, offline on the CPU, never on the event loop.

    transcriber = build_transcriber(settings.asr)    # cheap: nothing is loaded yet
    await transcriber.warm_up()                       # optional: load the model now
    transcript = await transcriber.transcribe(audio_bytes, language=None)

Two backends behind one ``Transcriber``:

* ``faster-whisper`` (default): CTranslate2, int8. ``workers`` notes run at once
  (CTranslate2's ``num_workers``), each on ``cpu_threads``.
* ``openai-whisper``: the reference implementation (PyTorch), given decoded float32 samples so
  that it needs no ffmpeg binary; one note at a time (its KV-cache hooks live on the shared
  model). Optional: ``pip install torch==2.13.0 -e '.[openai-whisper]'``.

Both load their model once per process (``_ENGINES``), lazily, in a worker thread, with progress
in the log. A note is refused as ``too_large`` before anything else, then as ``busy`` when
``workers + max_queue`` notes are already in hand; decoding (``bot.nlp.audio``), recognition and
normalisation (``bot.nlp.normalize``) all run in the worker pool.

Language: a caller's ``language`` wins; otherwise Whisper's detection, restricted to
``asr.languages`` (when it hears another language the most likely allowed one is used). The
detection reuses the encoder pass of the first window, so it costs almost nothing. With
``asr.prompt_terms`` > 0, Chinese notes get the lexicon as Whisper's initial prompt (off by
default: it did not help base; the lexicon corrects homophones after recognition instead).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bot.asr_settings import AsrSettings
from bot.errors import AudioRejected, ConfigError
from bot.nlp import asr_model
from bot.nlp.audio import check_size, decode_audio
from bot.nlp.normalize import Lexicon, load_lexicon, normalize_transcript

__all__ = [
    "Engine",
    "PooledTranscriber",
    "Recognition",
    "Transcriber",
    "Transcript",
    "build_transcriber",
]

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Transcript:
    text: str
    """Normalised: Simplified script, lexicon homophones corrected, quantities as digits."""
    language: str
    duration_s: float
    raw_text: str
    """Whisper's text before normalisation."""


class Transcriber(Protocol):
    async def transcribe(
        self, audio: bytes, *, language: str | None = None, terms: Sequence[str] = ()
    ) -> Transcript:
        """``terms``: a deployment's own names (assets, parts), the corrector's surest targets.
        Raises ``AudioRejected`` ("too_large", "too_long", "not_audio", "busy")."""
        ...


@dataclass(frozen=True)
class Recognition:
    text: str
    language: str


class Engine(Protocol):
    """A loaded-on-demand Whisper. Blocking: only ever called from worker threads."""

    def load(self) -> None: ...

    def recognize(
        self, samples: Samples, *, language: str | None, allowed: tuple[str, ...], prompt: str
    ) -> Recognition: ...


def _choose(detected: str, probabilities: list[tuple[str, float]], allowed: tuple[str, ...]) -> str:
    if not allowed or detected in allowed:
        return detected
    ranked = [lang for lang, _ in sorted(probabilities, key=lambda p: -p[1]) if lang in allowed]
    return ranked[0] if ranked else allowed[0]


def _prompt(language: str | None, prompt: str) -> str | None:
    """The lexicon prompt is Chinese: only for Chinese notes, and never an empty one (both
    Whisper implementations would still encode a space and condition on it)."""
    return prompt if prompt and language == "zh" else None


class _Lazy:
    """Runs ``_load_model`` once, under a lock, logging how long it took."""

    def __init__(self, settings: AsrSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._model: Any = None

    def _load_model(self) -> Any:
        raise NotImplementedError

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                s = self.settings
                log.info("loading Whisper (%s, model %s) …", s.backend, s.model)
                started = time.perf_counter()
                self._model = self._load_model()
                log.info("Whisper loaded in %.1f s", time.perf_counter() - started)


_EOT = 50257  # Whisper's <|endoftext|>; the text tokens are below it
_WINDOW_FRAMES = 3000  # one 30 s window of mel frames


@functools.cache
def _reusing_model_class() -> Any:
    from faster_whisper import WhisperModel

    class EncoderReusingWhisperModel(WhisperModel):  # type: ignore[misc]
        """Remembers each thread's last encoder input and output (exact match only), so that
        language detection and the transcription of the same first 30 s share one encoder
        pass: faster-whisper would otherwise encode that window twice."""

        def encode(self, features: Any) -> Any:
            memo = self.memo
            last = getattr(memo, "features", None)
            if last is not None and last.shape == features.shape and np.array_equal(last, features):
                return memo.output
            output = super().encode(features)
            memo.features, memo.output = np.array(features, copy=True), output
            return output

        def forget(self) -> None:
            self.memo.__dict__.clear()

    return EncoderReusingWhisperModel


class FasterWhisperEngine(_Lazy):
    def _load_model(self) -> Any:
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # INFO per note otherwise
        s = self.settings
        source = asr_model.faster_whisper_source(s)
        try:
            model = _reusing_model_class()(
                source,
                device="cpu",
                compute_type=s.compute_type,
                cpu_threads=s.cpu_threads,
                num_workers=s.workers,
                download_root=str(s.cache_dir.expanduser()),
            )
        except (OSError, RuntimeError, ValueError) as exc:  # hub unreachable, bad directory
            raise ConfigError([f"asr.model: cannot load {source!r}: {exc}"]) from exc
        model.memo = threading.local()
        return model

    def recognize(
        self, samples: Samples, *, language: str | None, allowed: tuple[str, ...], prompt: str
    ) -> Recognition:
        self.load()
        model = self._model
        try:
            chosen = language or self._detect(samples, allowed)
            segments, _ = model.transcribe(
                samples,
                language=chosen,
                initial_prompt=_prompt(chosen, prompt),
                beam_size=self.settings.beam_size,
            )
            # Decoded in one piece: Whisper's byte-level tokens split "，" in three, and a
            # character straddling two segments would come out as U+FFFD if each were decoded
            # alone. In Chinese a space marks where one segment ends (a pause): on noisy notes
            # Whisper often writes no punctuation, and the normaliser makes the space a comma.
            gap = model.hf_tokenizer.encode(" ", add_special_tokens=False).ids
            tokens: list[int] = []
            for segment in segments:
                own = [t for t in segment.tokens if t < _EOT]
                if tokens and own and chosen == "zh":
                    tokens += gap
                tokens += own
        finally:
            model.forget()
        text: str = model.hf_tokenizer.decode(tokens)
        return Recognition(text.strip(), chosen)

    def _detect(self, samples: Samples, allowed: tuple[str, ...]) -> str:
        """The most likely allowed language, from the window that transcription encodes first
        (the same frames, so the encoder output is reused)."""
        features = self._model.feature_extractor(samples)
        first = features[..., : min(features.shape[-1] - 1, _WINDOW_FRAMES)]
        detected, _, probabilities = self._model.detect_language(features=first)
        return _choose(detected, probabilities, allowed)


class OpenAIWhisperEngine(_Lazy):
    def __init__(self, settings: AsrSettings) -> None:
        super().__init__(settings)
        self._one_at_a_time = threading.Lock()
        self._whisper: Any = None

    def _load_model(self) -> Any:
        try:
            torch: Any = importlib.import_module("torch")
            self._whisper = importlib.import_module("whisper")
        except ImportError as exc:
            raise ConfigError(
                ["asr.backend: openai-whisper needs `pip install torch==2.13.0 "
                 "-e '.[openai-whisper]'`"]
            ) from exc  # fmt: skip
        torch.set_num_threads(self.settings.cpu_threads * self.settings.workers)
        checkpoint = asr_model.openai_checkpoint(self.settings)
        root = str(self.settings.cache_dir.expanduser())
        return self._whisper.load_model(checkpoint, device="cpu", download_root=root)

    def recognize(
        self, samples: Samples, *, language: str | None, allowed: tuple[str, ...], prompt: str
    ) -> Recognition:
        self.load()
        whisper, model = self._whisper, self._model
        with self._one_at_a_time:
            chosen = language
            if chosen is None:
                mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(samples))
                _, probs = model.detect_language(mel)
                best = max(probs, key=probs.get)
                chosen = _choose(best, list(probs.items()), allowed)
            result = whisper.transcribe(
                model, samples, language=chosen, initial_prompt=_prompt(chosen, prompt),
                beam_size=self.settings.beam_size, best_of=5, fp16=False, verbose=None,
            )  # fmt: skip
        return Recognition(str(result["text"]).strip(), chosen)


_ENGINE_TYPES: dict[str, Callable[[AsrSettings], Engine]] = {
    "faster-whisper": FasterWhisperEngine,
    "openai-whisper": OpenAIWhisperEngine,
}
_ENGINES: dict[tuple[object, ...], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(settings: AsrSettings) -> Engine:
    """One engine (one loaded model) per process for the same model settings."""
    s = settings
    key = (s.backend, s.model, s.cache_dir, s.compute_type, s.cpu_threads, s.workers)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = _ENGINE_TYPES[s.backend](s)
        return _ENGINES[key]


class PooledTranscriber:
    """The ``Transcriber``: admission control on the loop, all work in a bounded pool."""

    def __init__(self, settings: AsrSettings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="asr")
        self._capacity = settings.workers + settings.max_queue
        self._in_hand = 0
        self._count_lock = threading.Lock()  # a transcriber may be shared by event loops

    @property
    def in_hand(self) -> int:
        """Notes being transcribed or waiting for a worker."""
        return self._in_hand

    def _lexicon(self) -> Lexicon:
        return load_lexicon(self.settings.lexicon_path)

    def _prepare(self) -> None:
        self.engine.load()
        normalize_transcript("三號機變頻器報警，零點八兆帕", "zh", self._lexicon())

    async def warm_up(self) -> None:
        """Load the model and the text tables now rather than on the first note."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._prepare)

    async def transcribe(
        self, audio: bytes, *, language: str | None = None, terms: Sequence[str] = ()
    ) -> Transcript:
        check_size(audio, self.settings.max_bytes)
        with self._count_lock:
            if self._in_hand >= self._capacity:
                raise AudioRejected("busy", self._capacity)
            self._in_hand += 1
        try:
            job = self._pool.submit(self._work, audio, language, terms)
        except BaseException:
            self._release()
            raise
        # Released when the worker is done, not when the caller stops waiting: a cancelled
        # caller leaves its note running, and that note still occupies a worker.
        job.add_done_callback(self._release)
        return await asyncio.wrap_future(job)

    def _release(self, _: object = None) -> None:
        with self._count_lock:
            self._in_hand -= 1

    def _work(self, audio: bytes, language: str | None, terms: Sequence[str]) -> Transcript:
        s = self.settings
        decoded = decode_audio(audio, max_duration_s=s.max_duration_s, max_bytes=s.max_bytes)
        lexicon = self._lexicon()
        started = time.perf_counter()
        heard = self.engine.recognize(
            decoded.samples,
            language=language,
            allowed=tuple(s.languages),
            prompt=lexicon.prompt(s.prompt_terms),
        )
        text = normalize_transcript(heard.text, heard.language, lexicon, terms)
        log.debug(
            "transcribed %.1f s of %s in %.2f s", decoded.duration_s, decoded.container,
            time.perf_counter() - started,
        )  # fmt: skip
        return Transcript(text, heard.language, round(decoded.duration_s, 2), heard.text)

    async def close(self) -> None:
        """Stop the worker threads once the notes in hand are done."""
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)


def build_transcriber(settings: AsrSettings) -> PooledTranscriber:
    """Cheap: the model loads on the first note or on ``await transcriber.warm_up()``."""
    return PooledTranscriber(settings, _engine(settings))
