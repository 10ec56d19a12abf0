"""The asset part of a staff ticket card: what the machine is, and what happened to it lately."""

from __future__ import annotations

from bot.assets import out_of_warranty
from bot.texts import say
from bot.ticket_labels import state_label
from bot.tickets import TicketState
from bot.unit import Turn
from storage.records import Ticket

__all__ = ["asset_fields"]

_SHOWN = 3  # the asset's last tickets on the card
_TITLE = 16  # characters of each one's title


async def asset_fields(turn: Turn, ticket: Ticket, locale: str) -> list[tuple[str, str]]:
    """ "设备档案: IM-003 3号注塑机 · 型号 … · 二车间 · 保修至 …" and the asset's last three other
    tickets (their number, title and state); nothing when the ticket names no asset."""
    asset = turn.env.assets.get(ticket.asset_id)
    if asset is None or ticket.asset_id is None:
        return []
    today = turn.now.astimezone(turn.env.settings.tz).date()
    bits = [f"{asset.code} {asset.name}"]
    if asset.model:
        bits.append(say("asset.model", locale, model=asset.model))
    if asset.site_name:
        bits.append(asset.site_name)
    if asset.warranty_end is not None:
        key = "asset.expired" if out_of_warranty(asset, today) else "asset.warranty"
        bits.append(say(key, locale, end=asset.warranty_end.isoformat()))
    fields = [(say("field.asset", locale), " · ".join(bits))]
    history = await turn.unit.asset_history(ticket.asset_id, limit=_SHOWN)
    others = [b for b in history if b.id != ticket.id][:_SHOWN]
    if others:
        lines = [
            say(
                "asset.ticket",
                locale,
                number=b.number,
                title=b.title[:_TITLE] + ("…" if len(b.title) > _TITLE else ""),
                state=state_label(TicketState(b.state), locale),
            )
            for b in others
        ]
        fields.append((say("field.asset_tickets", locale), "；".join(lines) if locale == "zh"
                       else "; ".join(lines)))  # fmt: skip
    return fields
