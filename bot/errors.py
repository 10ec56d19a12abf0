"""Every error Gongdan raises on purpose, named once.

    GongdanError
    ├── ConfigError                 invalid configuration (start-up stops, exit code 2)
    ├── AdapterError                something between us and a platform
    │   ├── SignatureInvalid        forged, replayed or unsigned request (→ 401/403, nothing stored)
    │   ├── BadRequest              a verified request we cannot read (→ 400, nothing stored)
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
        └── AudioRejected(reason)   a voice note we will not transcribe (too long, too large,
                                    not audio); the reason is told to the sender

Adapters map foreign exceptions into this tree with ``raise … from exc``; the engine's one error
boundary turns a ``FlowError`` into a kind reply and logs anything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from bot.tickets import NoteAction, Requirement, SlaAction, TicketAction, TicketState


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
    """A refusal the user is told about. ``reason(locale)`` is the text they see."""

    zh = "操作未执行。"
    en = "Nothing was changed."

    def reason(self, locale: str) -> str:
        return self.zh if locale == "zh" else self.en


class _TicketRuleError(FlowError):
    def __init__(
        self, *, action: TicketAction | NoteAction | SlaAction, state: TicketState
    ) -> None:
        self.action = action
        self.state = state
        super().__init__(f"{action} not possible in state {state}")

    def _names(self, locale: str) -> tuple[str, str]:
        from bot.tickets import action_label, state_label

        return action_label(self.action, locale), state_label(self.state, locale)


class InvalidTransition(_TicketRuleError):
    def reason(self, locale: str) -> str:
        action, state = self._names(locale)
        if locale == "zh":
            return f"工单当前状态为「{state}」，不能执行「{action}」。"
        return f"The ticket is now “{state}”; “{action}” no longer applies."


class NotAllowed(_TicketRuleError):
    def reason(self, locale: str) -> str:
        action, _ = self._names(locale)
        if locale == "zh":
            return f"您没有权限执行「{action}」。"
        return f"You are not allowed to “{action}” this ticket."


class RequirementMissing(_TicketRuleError):
    def __init__(
        self, *, action: TicketAction | NoteAction, state: TicketState, requirement: Requirement
    ) -> None:
        super().__init__(action=action, state=state)
        self.requirement = requirement

    def reason(self, locale: str) -> str:
        from bot.tickets import Requirement

        texts = {
            Requirement.EVIDENCE: (
                "标记已解决前需要证据：照片、语音诊断或文字写明原因。",
                "Resolving needs evidence: a photo, a voice diagnosis or a written root cause.",
            ),
            Requirement.TARGET_ENGINEER: ("请选择要派给的工程师。", "Choose an engineer."),
            Requirement.REMOTE_TICKET: (
                "现场工单需先到达现场再诊断。",
                "On-site tickets are diagnosed after arriving.",
            ),
            Requirement.HAS_ASSIGNEE: ("工单没有负责人。", "The ticket has no assignee."),
        }
        zh, en = texts[self.requirement]
        return zh if locale == "zh" else en


class NoteAlreadyDecided(FlowError):
    """A second press on a voice-diagnosis card that was confirmed or discarded already."""

    zh = "这条语音诊断已经处理过了。"
    en = "This voice diagnosis was already confirmed or discarded."


class StaleTransition(FlowError):
    zh = "卡片已过期：工单已被其他人更新，请查看最新卡片。"
    en = "This card is out of date: someone else updated the ticket first. See the latest card."


class TokenInvalid(FlowError):
    zh = "按钮无效或已被篡改，操作未执行。"
    en = "This button is invalid or was tampered with; nothing was changed."


class UnknownTicket(FlowError):
    zh = "找不到该工单。"
    en = "That ticket does not exist."


class AudioRejected(FlowError):
    """``reason``: "too_long" | "too_large" | "not_audio" | "busy" | "unavailable"."""

    _TEXTS: ClassVar[dict[str, tuple[str, str]]] = {
        "too_long": (
            "语音太长，请分成几段、每段 {limit} 秒以内再发。",
            "That voice note is too long; please send parts under {limit} seconds.",
        ),
        "too_large": (
            "语音文件太大（超过 {limit} MB），请分段录制。",
            "That voice file is too large (over {limit} MB); please record it in parts.",
        ),
        "not_audio": (
            "无法识别这段音频的格式，请直接用聊天软件录音发送。",
            "We could not read that audio format; please record it in the chat app.",
        ),
        "busy": (
            "语音转写正忙，请过一两分钟再发。",
            "The transcriber is busy; please send the voice note again in a minute or two.",
        ),
        "unavailable": (
            "暂时取不到这段语音，请稍后重发，或用文字说明。",
            "We could not fetch that voice note; please send it again later, or type it.",
        ),
    }

    def __init__(self, reason: str, limit: float | int | None = None) -> None:
        self.kind = reason
        self.limit = limit
        super().__init__(f"audio rejected: {reason}")

    def reason(self, locale: str) -> str:
        zh, en = self._TEXTS[self.kind]
        return (zh if locale == "zh" else en).format(limit=self.limit)
