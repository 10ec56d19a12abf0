"""``gongdan classify``: the intake's reading of each message of a file (or stdin) as a JSON
line, as the hub reads chat messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TextIO

from bot.nlp.classify import classify

__all__ = ["classify_command"]


def _messages(stream: TextIO) -> Iterator[tuple[str | int, str]]:
    for n, line in enumerate(stream, start=1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"gongdan classify: line {n}: not valid JSON: {exc}") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise SystemExit(f"gongdan classify: line {n}: expected an object with 'text'")
            msg_id = obj.get("id", n)
            yield (msg_id if isinstance(msg_id, str | int) else str(msg_id)), obj["text"]
        else:
            yield n, line


def classify_command(stream: TextIO, out: TextIO) -> int:
    for msg_id, text in _messages(stream):
        out.write(json.dumps(classify(text).as_json(msg_id), ensure_ascii=False) + "\n")
    return 0
