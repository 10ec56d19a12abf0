"""Contract driver for WeCom: the fake server API, the shared samples, WeCom's callback crypto.

The app is configured with the official sample's credentials (vector A: token, EncodingAESKey
and corp id of ``sbzhu/weworkapi_python`` callback/Sample.py), so the shared pre-encrypted voice
callback verifies as it is; plain samples are sealed here the way WeCom seals them. The AI bot
has its own Token and EncodingAESKey and receiveid ``""``.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from bot.adapters.wecom.aibot import WEBHOOK_PATH as AIBOT_PATH
from bot.adapters.wecom.app import WEBHOOK_PATH as APP_PATH
from bot.adapters.wecom.crypto import WecomCrypto
from bot.adapters.wecom.render import template_card
from bot.events import Card
from tests.adapters.driver import FIXTURES, Request, Sample
from tests.fakes_wecom import AGENT_ID, AMR_HEADER, CORP_ID, SECRET, FakeWecomApi

PAYLOADS = FIXTURES / "wecom"
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
AIBOT_TOKEN = "aibotCallbackToken2025"
AIBOT_AES_KEY = "Xb7Qe2ZkLr9TnW4cVy6HsPd3MfJa8GuBx5NoKiRtEq1"
APP = WecomCrypto(TOKEN, AES_KEY, CORP_ID)
AIBOT = WecomCrypto(AIBOT_TOKEN, AIBOT_AES_KEY, "")
RANDOM16 = b"0123456789abcdef"
_nonces = itertools.count(1597212914)


def settings(base_url: str, **wecom: Any) -> dict[str, Any]:
    section = {
        "enabled": True,
        "api_base_url": base_url,
        "corp_id": CORP_ID,
        "agent_id": AGENT_ID,
        "secret": SECRET,
        "token": TOKEN,
        "encoding_aes_key": AES_KEY,
        "aibot_token": AIBOT_TOKEN,
        "aibot_encoding_aes_key": AIBOT_AES_KEY,
        **wecom,
    }
    return {"wecom": section}


def signed_query(
    crypto: WecomCrypto, encrypt: str, timestamp: str = "1717230000"
) -> dict[str, str]:
    nonce = str(next(_nonces))
    return {
        "msg_signature": crypto.sign(timestamp, nonce, encrypt),
        "timestamp": timestamp,
        "nonce": nonce,
    }


def app_envelope(encrypt: str) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>"
        f"<AgentID><![CDATA[{AGENT_ID}]]></AgentID></xml>"
    ).encode()


def app_callback(xml: str, crypto: WecomCrypto = APP) -> Request:
    """An app callback as WeCom POSTs it: ``xml`` sealed, signed in the query."""
    encrypt = crypto.encrypt(xml, random16=RANDOM16)
    return Request(APP_PATH, app_envelope(encrypt), query=signed_query(APP, encrypt))


def aibot_callback(body: dict[str, Any] | str, crypto: WecomCrypto = AIBOT) -> Request:
    plain = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    encrypt = crypto.encrypt(plain, random16=RANDOM16)
    payload = json.dumps({"encrypt": encrypt}).encode()
    return Request(AIBOT_PATH, payload, query=signed_query(AIBOT, encrypt))


def card_event(user: str, task_id: str, key: str, code: str, *, created: int = 1717230100) -> str:
    """The decrypted XML of a button press on an app card (doc 90240 layout)."""
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{created}</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_event]]></Event>"
        f"<EventKey><![CDATA[{key}]]></EventKey><TaskId><![CDATA[{task_id}]]></TaskId>"
        "<CardType><![CDATA[button_interaction]]></CardType>"
        f"<ResponseCode><![CDATA[{code}]]></ResponseCode><AgentID>{AGENT_ID}</AgentID></xml>"
    )


def text_message(user: str, text: str, msg_id: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>1717230000</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
        f"<MsgId>{msg_id}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>"
    )


def voice_message(user: str, media_id: str, msg_id: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>1717230000</CreateTime>"
        f"<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[{media_id}]]></MediaId>"
        f"<Format><![CDATA[amr]]></Format><MsgId>{msg_id}</MsgId>"
        f"<AgentID>{AGENT_ID}</AgentID></xml>"
    )


def _pre_encrypted(text: str) -> Request:
    """A shared sample sealed elsewhere: its query is in the leading comment."""
    head, _, body = text.partition("-->")
    match = re.search(r"\?(\S+)", head)
    assert match, "the sample's comment names its query"
    return Request(APP_PATH, body.strip().encode(), query=dict(parse_qsl(match.group(1))))


def _sample_request(name: str) -> Request:
    sealed, xml, as_json = (
        PAYLOADS / f"{name}{ext}" for ext in (".encrypted.xml", ".xml", ".json")
    )
    if sealed.exists():
        return _pre_encrypted(sealed.read_text(encoding="utf-8"))
    if xml.exists():
        return app_callback(xml.read_text(encoding="utf-8"))
    return aibot_callback(json.loads(as_json.read_text(encoding="utf-8")))


class WecomDriver:
    platform = "wecom"

    def __init__(self) -> None:
        self.api = FakeWecomApi()

    async def start(self) -> dict[str, Any]:
        return settings(await self.api.start())

    async def stop(self) -> None:
        await self.api.stop()

    async def prepare(self, base_url: str) -> None:
        pass

    def samples(self) -> list[Sample]:
        out = []
        for expected in sorted(PAYLOADS.glob("*.expected.json")):
            name = expected.name.removesuffix(".expected.json")
            events = json.loads(expected.read_text(encoding="utf-8"))
            out.append(Sample(name, _sample_request(name), events))
        return out

    def forged(self) -> list[Request]:
        xml = (PAYLOADS / "text_plain.xml").read_text(encoding="utf-8")
        good = app_callback(xml)
        wrong_sig = Request(good.path, good.body, query={**good.query, "msg_signature": "0" * 40})
        unsigned = Request(
            good.path,
            good.body,
            query={k: v for k, v in good.query.items() if k != "msg_signature"},
        )
        other_token = WecomCrypto("another-token", AES_KEY, CORP_ID)
        encrypt = APP.encrypt(xml)
        foreign_sig = Request(
            APP_PATH, app_envelope(encrypt), query=signed_query(other_token, encrypt)
        )
        other_corp = WecomCrypto(TOKEN, AES_KEY, "wwSomeOtherCorp000").encrypt(xml)
        wrong_receiveid = Request(
            APP_PATH, app_envelope(other_corp), query=signed_query(APP, other_corp)
        )
        bad_padding = _bad_padding(xml)
        plaintext = Request(APP_PATH, xml.encode(), query=signed_query(APP, ""))
        doctype = (
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            "<xml><Content>&lol2;</Content></xml>"
        )
        doctype_outer = Request(APP_PATH, doctype.encode(), query=good.query)
        doctype_inner = app_callback(doctype)
        aibot = json.loads((PAYLOADS / "aibot_text.json").read_text(encoding="utf-8"))
        aibot_good = aibot_callback(aibot)
        aibot_wrong_sig = Request(
            aibot_good.path, aibot_good.body, query={**aibot_good.query, "msg_signature": "f" * 40}
        )
        aibot_corp_receiveid = aibot_callback(
            aibot, WecomCrypto(AIBOT_TOKEN, AIBOT_AES_KEY, CORP_ID)
        )
        url_check = Request(
            APP_PATH,
            b"",
            method="GET",
            query={**signed_query(APP, "x"), "echostr": APP.encrypt("12345")},
        )
        return [
            wrong_sig,
            unsigned,
            foreign_sig,
            wrong_receiveid,
            bad_padding,
            plaintext,
            doctype_outer,
            doctype_inner,
            aibot_wrong_sig,
            aibot_corp_receiveid,
            url_check,
        ]

    def unknown(self) -> Request:
        return app_callback((PAYLOADS / "unknown_enter_agent.xml").read_text(encoding="utf-8"))

    def render(self, card: Card) -> dict[str, Any]:
        return template_card(card, "gd7v3-contract", fallback_url="http://127.0.0.1:8080")

    def click(self, rendered: dict[str, Any], button: int) -> Request:
        key = rendered["button_list"][button]["key"]
        created = 1717230100 + button
        return app_callback(card_event("LiGong", rendered["task_id"], key, "rc-x", created=created))

    async def media(self) -> tuple[str, bytes]:
        content = AMR_HEADER + bytes(range(256)) * 40
        self.api.media["3a8asd892asd8asd-voice"] = content
        return "3a8asd892asd8asd-voice", content


def _bad_padding(xml: str) -> Request:
    """Correctly signed, but the last block decrypts to an invalid PKCS#7 pad."""
    import base64

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode(AES_KEY + "=")
    plain = RANDOM16 + len(xml.encode()).to_bytes(4, "big") + xml.encode() + CORP_ID.encode()
    plain += b"\x00" * (-len(plain) % 32)  # pad byte 0: never valid
    if len(plain) % 32 == 0 and plain[-1] != 0:
        plain += b"\x00" * 32
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    encrypt = base64.b64encode(enc.update(plain) + enc.finalize()).decode()
    return Request(APP_PATH, app_envelope(encrypt), query=signed_query(APP, encrypt))
