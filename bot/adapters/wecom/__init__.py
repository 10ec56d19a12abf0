"""WeCom (企业微信): the self-built app, group robots and the AI bot, each its own platform.

The hub calls ``create(deps)`` when ``[wecom] enabled = true`` and gets one adapter
per surface: ``wecom`` (members' DMs with the app, template cards with buttons),
``wecom-robot`` (send-only group robot webhooks; team chats are ``wecom-robot:<key>``) and,
when the AI bot's Token and EncodingAESKey are set, ``wecom-aibot`` (group @-mentions and 1:1
chats with the 智能机器人). They share one API client (and so one access token). Set-up:
README.md here.
"""

from __future__ import annotations

from bot.adapters.base import Adapter, AdapterDeps
from bot.adapters.wecom.aibot import WecomAibotAdapter
from bot.adapters.wecom.api import WecomApi
from bot.adapters.wecom.app import WecomAppAdapter
from bot.adapters.wecom.crypto import WecomCrypto
from bot.adapters.wecom.parse import AIBOT, APP, ROBOT
from bot.adapters.wecom.robot import WecomRobotAdapter

__all__ = ["WecomAibotAdapter", "WecomAppAdapter", "WecomRobotAdapter", "create"]


def create(deps: AdapterDeps) -> dict[str, Adapter]:
    """The app and robot adapters, and the AI bot's when its Token and EncodingAESKey are set;
    people's ``wecom:<userid>`` identities (the first one each) name @mentions."""
    inbox, settings = deps.inbox, deps.settings
    section = settings.wecom
    secret = section.secret.get_secret_value() if section.secret else None
    api = WecomApi(section.api_base_url, section.corp_id, secret)
    userids: dict[str, str] = {}
    for person in settings.people:
        for ref in person.identities:
            platform, _, user_id = ref.partition(":")
            if platform == APP and person.id not in userids:
                userids[person.id] = user_id
    app = WecomAppAdapter(inbox, settings, api)
    robot = WecomRobotAdapter(
        inbox, api, userids=userids, per_minute=section.robot_messages_per_minute
    )
    adapters: dict[str, Adapter] = {APP: app, ROBOT: robot}
    if section.aibot_token is not None and section.aibot_encoding_aes_key is not None:
        crypto = WecomCrypto(
            section.aibot_token.get_secret_value(),
            section.aibot_encoding_aes_key.get_secret_value(),
            "",  # an internal AI bot's receiveid
        )
        adapters[AIBOT] = WecomAibotAdapter(
            inbox,
            api,
            crypto,
            dm=app,
            robot=robot,
            group_robots=section.aibot_group_robots,
            fallback_url=settings.public_url,
        )
    return adapters
