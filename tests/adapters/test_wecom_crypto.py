"""WeCom's callback crypto against the official vectors, and everything it must refuse."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from bot.adapters.wecom.crypto import BLOCK, CryptoRefused, WecomCrypto, signature
from bot.adapters.wecom.parse import XmlMalformed, XmlRefused, read_xml
from tests.adapters.wecom_driver import PAYLOADS


def _load(name: str) -> dict[str, Any]:
    return dict(json.loads((PAYLOADS / name).read_text(encoding="utf-8")))


def _crypto(v: dict[str, Any]) -> WecomCrypto:
    return WecomCrypto(v["token"], v["encoding_aes_key"], v["receiveid"])


@pytest.mark.parametrize("name", ["crypto_doc_example.json", "crypto_official_sample.json"])
def test_the_official_examples_verify_and_decrypt(name: str) -> None:
    v = _load(name)
    crypto = _crypto(v)
    url = v["verify_url"]
    assert (
        crypto.open(url["msg_signature"], url["timestamp"], url["nonce"], url["echostr"])
        == (url["expected"])
    )
    msg = v["decrypt_message"]
    assert (
        signature(v["token"], msg["timestamp"], msg["nonce"], msg["encrypt"])
        == (msg["msg_signature"])
    )
    fields = read_xml(
        crypto.open(msg["msg_signature"], msg["timestamp"], msg["nonce"], msg["encrypt"])
    )
    assert fields["Content"] == msg["expected_content"]
    assert fields["FromUserName"] == msg["expected_from"]


def test_the_doc_example_signature_is_477715d1() -> None:
    msg = _load("crypto_doc_example.json")["decrypt_message"]
    assert msg["msg_signature"].startswith("477715d1") and msg["msg_signature"].endswith("f3e6")
    assert (
        signature("QDG6eK", msg["timestamp"], msg["nonce"], msg["encrypt"])
        == (msg["msg_signature"])
    )


def test_the_json_variant_decrypts_with_its_corp_receiveid() -> None:
    v = _load("crypto_official_sample.json")
    b = v["B_json"]
    body = _crypto(v).open(b["msg_signature"], b["timestamp"], b["nonce"], b["encrypt"])
    assert '"Content": "hello"' in body
    with pytest.raises(CryptoRefused, match="receiveid"):  # not an AI bot's ""
        WecomCrypto(v["token"], v["encoding_aes_key"], "").decrypt(b["encrypt"])


def test_the_wechatpy_vectors() -> None:
    d = _load("crypto_vectors.json")["D_wechatpy_tests"]
    crypto = _crypto(d)
    c = d["check_signature"]
    assert crypto.open(c["msg_signature"], c["timestamp"], c["nonce"], c["echostr"]).isdigit()
    m = d["decrypt_message"]
    fields = read_xml(crypto.open(m["msg_signature"], m["timestamp"], m["nonce"], m["encrypt"]))
    assert (fields["Content"], fields["FromUserName"]) == ("test", "messense")
    reply = (
        "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
        "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n"
        "<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n"
        "<CreateTime>1411525903</CreateTime>\n</xml>"
    )
    e = d["encrypt_message_with_fixed_random_1234567890123456"]
    sealed = crypto.encrypt(reply, random16=b"1234567890123456")
    assert sealed.startswith("9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hh")
    assert crypto.sign(e["timestamp"], e["nonce"], sealed) == e["expected_msg_signature"]


def test_the_shared_voice_sample_decrypts_to_its_plain_form() -> None:
    v = _load("crypto_official_sample.json")
    sealed = (PAYLOADS / "voice.encrypted.xml").read_text(encoding="utf-8")
    encrypt = sealed.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    plain = _crypto(v).open(
        "c68d56fb7efaa0c8ce0acd87bf97f7c4451bbf73", "1476422779", "1597212914", encrypt
    )
    expected = read_xml((PAYLOADS / "voice.xml").read_text(encoding="utf-8"))
    assert read_xml(plain) == expected


@pytest.mark.parametrize("length", [0, 1, 11, 12, 13, 31, 32, 100, 1000])
def test_padding_is_pkcs7_to_32_byte_blocks(length: int) -> None:
    crypto = WecomCrypto("t", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "corp")
    message = "m" * length
    sealed = crypto.encrypt(message)
    assert len(base64.b64decode(sealed)) % BLOCK == 0
    assert crypto.decrypt(sealed) == message


def test_wrong_signature_receiveid_padding_and_garbage_are_refused() -> None:
    crypto = WecomCrypto("token", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "corp")
    sealed = crypto.encrypt("<xml/>")
    sig = crypto.sign("1", "2", sealed)
    assert crypto.open(sig, "1", "2", sealed) == "<xml/>"
    assert crypto.open(sig.upper(), "1", "2", sealed) == "<xml/>"
    with pytest.raises(CryptoRefused, match="signature"):
        crypto.open(sig, "1", "3", sealed)
    with pytest.raises(CryptoRefused, match="receiveid"):
        WecomCrypto("token", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "other").decrypt(sealed)
    raw = bytearray(base64.b64decode(sealed))
    raw[-1] ^= 0x5A  # the last block no longer ends in a valid pad
    with pytest.raises(CryptoRefused):
        crypto.decrypt(base64.b64encode(bytes(raw)).decode())
    with pytest.raises(CryptoRefused, match="32-byte"):
        crypto.decrypt(base64.b64encode(bytes(raw[:-16])).decode())
    with pytest.raises(CryptoRefused, match="base64"):
        crypto.decrypt("not base64 !!")
    with pytest.raises(ValueError, match="43"):
        WecomCrypto("t", "short", "corp")


def test_xml_with_a_doctype_or_entities_is_refused_before_parsing() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        "<xml><Content>&lol2;</Content></xml>"
    )
    external = '<!doctype x SYSTEM "file:///etc/passwd"><xml><a>&x;</a></xml>'
    for text in (bomb, external, "<xml><!ENTITY x 'y'></xml>"):
        with pytest.raises(XmlRefused):
            read_xml(text)
    with pytest.raises(XmlMalformed):
        read_xml("<xml><a></xml>")
    assert read_xml("<xml><!-- a comment --><a><![CDATA[ x ]]></a><b>2</b></xml>") == {
        "a": "x",
        "b": "2",
    }
