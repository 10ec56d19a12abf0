"""A staff member asks for a sign-in link: "登录" / "login" typed to the bot in a direct chat.

The link goes back to the chat the request came from: the person's own identity on a platform
that signs what it sends us, which is what makes the link theirs. In a group it would be seen
by everyone, so there the bot only says to ask in private.
"""

from __future__ import annotations

import re

from bot.events import Message, Text
from bot.texts import say
from bot.unit import Turn

__all__ = ["asks_to_sign_in", "send_link"]

_WORDS = re.compile(
    r"^\s*/?(?:登录|登陆|登入|login|log\s*in|sign\s*in|signin)(?:@\w+)?\s*[。.!！]?\s*$",
    re.IGNORECASE,
)


def asks_to_sign_in(text: str) -> bool:
    return _WORDS.match(text) is not None


async def send_link(turn: Turn, event: Message) -> None:
    assert turn.person is not None
    issue = turn.env.sign_in
    if event.chat_type != "direct":
        turn.reply(Text(say("signin.private", turn.locale)))
        return
    if issue is None:
        turn.reply(Text(say("signin.off", turn.locale)))
        return
    url = issue(turn.person.key, event.platform)
    minutes = f"{turn.env.settings.security.login_link_minutes:g}"
    turn.reply(Text(say("signin.link", turn.locale, url=url, minutes=minutes)))
