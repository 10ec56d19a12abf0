"""Every error Gongdan raises on purpose, named once.

    GongdanError
    ├── ConfigError                 invalid configuration (start-up stops, exit code 2)
    ├── AdapterError                something between us and a platform
    │   ├── SignatureInvalid        forged, replayed or unsigned request (→ 401/403, nothing stored)
    │   ├── BadRequest              a verified request we cannot read (→ 400, nothing stored)
    │   ├── Forbidden               signed in, but not allowed (CSRF, foreign origin) (→ 403)
    │   ├── TooManyRequests(retry_after)  over a rate limit of ours (→ 429 + Retry-After)
    │   ├── PlatformApiError(code)  the platform answered with an error we will not retry
    │   ├── TransientSendError      timeouts, 5xx, connection resets: retry with backoff
    │   │   └── RateLimited(retry_after)  429 and friends: retry no sooner than retry_after
    │   └── MediaTooLarge           a download over the configured limit
    └── FlowError                   a user's request that the rules refuse; the user is told why
        ├── InvalidTransition       the action does not apply in the ticket's current state
        ├── StaleTransition         the card was out of date (someone else acted first)
        ├── NotAllowed              the presser may not do this
        ├── RequirementMissing      e.g. resolve without evidence
        ├── NoteAlreadyDecided      a voice diagnosis confirmed or discarded already
        ├── TokenInvalid            a forged or malformed button token
        ├── UnknownTicket           the ticket does not exist
        └── AudioRejected(kind)     a voice note we will not transcribe (too long, too large,
                                    not audio)

A leaf module: errors carry data as attributes and import nothing of the domain. What a person
is told about a ``FlowError`` is worded in ``bot.texts.refusal``. Adapters map foreign
exceptions into this tree with ``raise … from exc``; the engine's one error boundary turns a
``FlowError`` into a kind reply and logs anything else.
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "AudioRejected",
    "BadRequest",
    "ConfigError",
    "FlowError",
    "Forbidden",
    "GongdanError",
    "InvalidTransition",
    "MediaTooLarge",
    "NotAllowed",
    "NoteAlreadyDecided",
    "PlatformApiError",
    "RateLimited",
    "RequirementMissing",
    "SignatureInvalid",
    "StaleTransition",
    "TokenInvalid",
    "TooManyRequests",
    "TransientSendError",
    "UnknownTicket",
]


class GongdanError(Exception):
    """Base of every error Gongdan raises on purpose."""


class ConfigError(GongdanError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


class AdapterError(GongdanError):
    pass


class SignatureInvalid(AdapterError):
    pass


class BadRequest(AdapterError):
    pass


class Forbidden(AdapterError):
    pass


class TooManyRequests(AdapterError):
    """Over one of our own limits; ``status`` 429 (this client) or 503 (everyone)."""

    def __init__(self, retry_after: float, message: str, *, status: int = 429) -> None:
        self.retry_after = retry_after
        self.status = status
        super().__init__(message)


class PlatformApiError(AdapterError):
    def __init__(self, code: str | int, message: str = "") -> None:
        self.code = code
        self.message = message
        super().__init__(f"platform error {code}: {message}")


class TransientSendError(AdapterError):
    pass


class RateLimited(TransientSendError):
    """``key``: the one rate-limit key the platform complained about (e.g. one conversation);
    None means every limit that applies to the destination."""

    def __init__(
        self, retry_after: float, message: str = "rate limited", *, key: str | None = None
    ) -> None:
        self.retry_after = retry_after
        self.key = key
        super().__init__(f"{message} (retry after {retry_after:g}s)")


class MediaTooLarge(AdapterError):
    pass


class FlowError(GongdanError):
    """A refusal the user is told about (``bot.texts.refusal`` words it)."""


class _TicketRuleError(FlowError):
    """``action`` and ``state`` are the state table's names (``TicketAction`` / ``NoteAction``
    / ``SlaAction`` and ``TicketState`` values)."""

    def __init__(self, *, action: str, state: str) -> None:
        self.action = action
        self.state = state
        super().__init__(f"{action} not possible in state {state}")


class InvalidTransition(_TicketRuleError):
    pass


class NotAllowed(_TicketRuleError):
    pass


class RequirementMissing(_TicketRuleError):
    """``items``: what is still open, where the requirement has parts (a checklist)."""

    def __init__(
        self, *, action: str, state: str, requirement: str, items: tuple[str, ...] = ()
    ) -> None:
        super().__init__(action=action, state=state)
        self.requirement = requirement
        self.items = items


class NoteAlreadyDecided(FlowError):
    """A second press on a voice-diagnosis card that was confirmed or discarded already."""


class StaleTransition(FlowError):
    pass


class TokenInvalid(FlowError):
    pass


class QuestionAnswered(FlowError):
    """A one-tap intake question (报修? impact?) that was answered already."""


class UnknownTicket(FlowError):
    pass


class AudioRejected(FlowError):
    """``kind``: "too_long" | "too_large" | "not_audio" | "busy" | "unavailable"; ``limit``:
    the limit that was passed (seconds or MB), when there is one."""

    def __init__(self, kind: str, limit: float | int | None = None) -> None:
        self.kind = kind
        self.limit = limit
        super().__init__(f"audio rejected: {kind}")
