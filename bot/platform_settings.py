"""The chat platforms' settings sections (``[slack]``, ``[telegram]``, ``[wecom]``,
``[dingtalk]``): each adapter package receives only its own. Part of the one settings object,
``bot.config.Settings`` (which re-exports them), kept apart so that each file stays readable.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = [
    "DingtalkSettings",
    "PlatformSettings",
    "SlackSettings",
    "TelegramSettings",
    "WecomSettings",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlatformSettings(_Section):
    enabled: bool = False
    api_base_url: str = ""


class SlackSettings(PlatformSettings):
    api_base_url: str = "https://slack.com/api/"
    """Web API base (a proxy or a test double may stand in)."""
    bot_token: SecretStr | None = None
    """xoxb- token (scopes: chat:write, im:write, channels:history, groups:history,
    im:history, app_mentions:read, files:read, users:read)."""
    signing_secret: SecretStr | None = None
    """Verifies Events API and interactivity requests (v0 HMAC, 5-minute window)."""
    app_token: SecretStr | None = None
    """xapp- token: when set, Socket Mode is used instead of the HTTP endpoint."""
    max_download_bytes: int = Field(20_000_000, ge=1)

    @model_validator(mode="after")
    def _credentials(self) -> SlackSettings:
        if self.enabled and self.bot_token is None:
            raise ValueError("bot_token is required when slack is enabled")
        if self.enabled and self.app_token is None and self.signing_secret is None:
            raise ValueError("signing_secret is required unless app_token (Socket Mode) is set")
        return self


class TelegramSettings(PlatformSettings):
    api_base_url: str = "https://api.telegram.org"
    """Bot API base; methods go to ``{api_base_url}/bot<token>/…``, files to ``/file/bot…``."""
    bot_token: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    """Checked against ``X-Telegram-Bot-Api-Secret-Token`` (1–256 of A–Z a–z 0–9 _ -)."""
    mode: Literal["webhook", "polling"] = "webhook"
    """``polling`` for sites with no public URL (getUpdates; no webhook)."""
    set_webhook: bool = True
    """In webhook mode, call setWebhook on start-up when ``public_url`` is https."""
    max_download_bytes: int = Field(20_000_000, ge=1)
    messages_per_second: int = Field(30, ge=1)
    """Messages the bot sends per second across all chats; Telegram's default is 30, paid
    broadcasts allow up to 1000."""

    @model_validator(mode="after")
    def _credentials(self) -> TelegramSettings:
        if self.enabled and self.bot_token is None:
            raise ValueError("bot_token is required when telegram is enabled")
        if self.enabled and self.mode == "webhook" and self.webhook_secret is None:
            raise ValueError("webhook_secret is required in webhook mode")
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret else None
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ValueError("webhook_secret must be 1–256 characters of A–Z a–z 0–9 _ -")
        return self


class WecomSettings(PlatformSettings):
    """WeCom (企业微信): a self-built app (``wecom``), group robots (``wecom-robot:<key>``)
    and optionally an AI bot (``wecom-aibot``). Set-up: ``bot/adapters/wecom/README.md``."""

    api_base_url: str = "https://qyapi.weixin.qq.com"
    """Server API base; also where robot webhooks are posted (a proxy or test double may
    stand in)."""
    corp_id: str = ""
    """企业ID (My Company → Company Info); the receiveid checked in every app callback."""
    agent_id: int | None = None
    """The self-built app's AgentId."""
    secret: SecretStr | None = None
    """The app's Secret (gettoken → access_token, cached 7200 s)."""
    token: SecretStr | None = None
    """The app's callback Token (API 接收消息: verifies ``msg_signature``)."""
    encoding_aes_key: SecretStr | None = None
    """The app's callback EncodingAESKey (43 characters of A–Z a–z 0–9)."""
    member_messages_per_minute: int = Field(30, ge=1)
    """Messages the app sends one member per minute at most (WeCom's per-member cap, about
    30/min and 1000/h; the hourly cap is fixed)."""
    robot_messages_per_minute: int = Field(20, ge=1, le=20)
    """Messages per group robot per minute (WeCom allows 20; errcode 45009 beyond)."""
    max_download_bytes: int = Field(20_000_000, ge=1)
    """Largest voice note fetched with ``media/get``."""
    aibot_token: SecretStr | None = None
    """The AI bot's (智能机器人) callback Token; with ``aibot_encoding_aes_key`` it enables
    ``/webhooks/wecom/aibot``."""
    aibot_encoding_aes_key: SecretStr | None = None
    """The AI bot's callback EncodingAESKey (receiveid is "" for an internal bot)."""
    aibot_group_robots: dict[str, str] = {}
    """AI-bot group chatid → that group's robot webhook key: where replies go once the
    callback's single-use ``response_url`` is spent."""

    @field_validator("encoding_aes_key", "aibot_encoding_aes_key")
    @classmethod
    def _aes_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9]{43}", v.get_secret_value()):
            raise ValueError("must be 43 characters of A–Z a–z 0–9")
        return v

    @model_validator(mode="after")
    def _credentials(self) -> WecomSettings:
        if self.enabled:
            missing = [
                name
                for name in ("corp_id", "agent_id", "secret", "token", "encoding_aes_key")
                if getattr(self, name) in (None, "")
            ]
            if missing:
                raise ValueError(f"{', '.join(missing)} required when wecom is enabled")
        if (self.aibot_token is None) != (self.aibot_encoding_aes_key is None):
            raise ValueError("aibot_token and aibot_encoding_aes_key go together")
        return self


class DingtalkSettings(PlatformSettings):
    api_base_url: str = "https://api.dingtalk.com"
    """OpenAPI base (access token, robot messages, interactive cards, Stream gateway)."""
    oapi_base_url: str = "https://oapi.dingtalk.com"
    """Old-style API base. A message's ``sessionWebhook`` on ``https://oapi.dingtalk.com`` is
    sent here instead, so a proxy or a test double can stand in for it too."""
    client_id: str = ""
    """The app's Client ID (AppKey), e.g. ``dingxxxxxxxxxxxxxxxx``."""
    client_secret: SecretStr | None = None
    """The app's Client Secret (AppSecret): gets access tokens, opens Stream connections and
    verifies HTTP callbacks (``timestamp`` + ``sign`` headers)."""
    robot_code: str = ""
    """The robot's code; empty means ``client_id`` (what an app's own robot uses)."""
    card_template_id: str = ""
    """The interactive card template (card.dingtalk.com) with the variables in README.md,
    e.g. ``4f0c…e1.schema``."""
    mode: Literal["http", "stream"] = "http"
    """``stream`` for sites with no public URL (outbound websocket; no webhook routes)."""
    card_callback_route_key: str = "gongdan"
    """HTTP mode: the ``callbackRouteKey`` our cards name; it maps to
    ``{public_url}/webhooks/dingtalk/card``."""
    card_callback_secret: SecretStr | None = None
    """HTTP mode: the ``apiSecret`` registered with the route key, which signs card callbacks
    (``x-ddpaas-signature``); empty means ``client_secret``."""
    register_card_callback: bool = True
    """HTTP mode: register the route key's URL on start-up when ``public_url`` is https."""
    two_step_confirm: bool = True
    """Buttons that need confirming (cancel…) first show a private confirm row to the presser;
    needs the ``confirm_*`` template variables. Off: such buttons act on the first press."""
    rate_limit_backoff: float = Field(60.0, gt=0)
    """Seconds to wait after DingTalk says "too fast" (errcode 130101, HTTP 403 QPS limit)."""
    max_download_bytes: int = Field(20_000_000, ge=1)

    @model_validator(mode="after")
    def _credentials(self) -> DingtalkSettings:
        if self.enabled:
            missing = [
                key
                for key, value in (
                    ("client_id", self.client_id),
                    ("client_secret", self.client_secret),
                    ("card_template_id", self.card_template_id),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"{', '.join(missing)} required when dingtalk is enabled")
        return self
