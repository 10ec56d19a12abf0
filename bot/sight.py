"""Seeing a picture sent in chat: download it (capped) and check what it is, outside any
transaction — the engine runs this between claiming the event and the flow's unit, as it
hears voice notes (``bot.hearing``)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping

from bot.adapters.base import Adapter
from bot.closure import Photo, image_type
from bot.errors import AdapterError, MediaTooLarge
from bot.events import Image
from bot.flows.closure import Seen

__all__ = ["look"]

log = logging.getLogger(__name__)


async def look(
    adapters: Mapping[str, Adapter], event: Image, max_bytes: int, *, within: float = 25.0
) -> Seen:
    """The picture as an evidence photo, or the reason it is none, ``within`` seconds (inside
    the claim's lease). The platform's own cap applies to the download; ``max_bytes``
    (``[closure] photo_max_mb``) to the photo."""
    adapter = adapters.get(event.platform)
    if adapter is None or not event.media_ref:
        return Seen(problem="unavailable")
    try:
        async with asyncio.timeout(within):
            data = await adapter.download(event.media_ref)
    except MediaTooLarge:
        return Seen(problem="too_large")
    except (AdapterError, TimeoutError, NotImplementedError) as exc:
        log.warning("could not download %s picture %s: %r", event.platform, event.event_id, exc)
        return Seen(problem="unavailable")
    if len(data) > max_bytes:
        return Seen(problem="too_large")
    media_type = image_type(data)
    if media_type is None:
        return Seen(problem="not_image")
    return Seen(photo=Photo(data, media_type, hashlib.sha256(data).hexdigest()))
