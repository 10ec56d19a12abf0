"""Hearing a voice note: download → transcribe → read the diagnosis, outside any transaction.

``Ears.hear`` is the slow part of a voice note (seconds of CPU in the transcriber's worker
pool); the engine runs it between the "transcribing…" reply and the flow's transaction, and
keeps its claim on the event alive meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from bot.adapters.base import Adapter
from bot.errors import AdapterError, AudioRejected, MediaTooLarge
from bot.events import Voice
from bot.flows.voice import Heard

if TYPE_CHECKING:
    from bot.nlp.asr import Transcriber

__all__ = ["Ears"]

log = logging.getLogger(__name__)


class Ears:
    def __init__(
        self,
        adapters: Mapping[str, Adapter],
        transcriber: Transcriber | None,
        *,
        max_mb: float = 20,
        download_timeout: float = 60.0,
        terms: Callable[[], Sequence[str]] = tuple,
    ) -> None:
        """``terms``: the deployment's own names (its assets and parts) at the time of a note,
        which the transcript's correction trusts most (``Hub.voice_terms``)."""
        self.adapters = adapters
        self.transcriber = transcriber
        self.terms = terms
        self.max_mb = max_mb
        self.download_timeout = download_timeout

    async def hear(self, event: Voice) -> Heard:
        audio = await self._download(event)
        if isinstance(audio, AudioRejected):
            # No audio: the platform's own transcript (if any) is better than nothing.
            return Heard() if event.platform_transcript else Heard(problem=audio)
        return await self.understand(audio)

    async def understand(self, audio: bytes, language: str | None = None) -> Heard:
        """Transcribe and read the diagnosis (also what ``gongdan transcribe`` runs)."""
        if self.transcriber is None:
            return Heard()
        try:
            transcript = await self.transcriber.transcribe(
                audio, language=language, terms=self.terms()
            )
        except AudioRejected as rejected:
            return Heard(problem=rejected)
        from bot.nlp.diagnosis import diagnose

        return Heard(
            transcript=transcript.text,
            language=transcript.language,
            duration_s=transcript.duration_s,
            diagnosis=diagnose(transcript.text).as_json(),
        )

    async def _download(self, event: Voice) -> bytes | AudioRejected:
        adapter = self.adapters.get(event.platform)
        if adapter is None or not event.media_ref:
            return AudioRejected("unavailable")
        try:
            async with asyncio.timeout(self.download_timeout):
                return await adapter.download(event.media_ref)
        except MediaTooLarge:
            return AudioRejected("too_large", self.max_mb)
        except (AdapterError, TimeoutError, NotImplementedError) as exc:
            log.warning(
                "could not download %s voice note %s: %r", event.platform, event.event_id, exc
            )
            return AudioRejected("unavailable")
