"""Texts of customer satisfaction (``bot/flows/csat.py``): the question after close, its
reminder, the answers to a press and to a comment, and the low-score notice to managers."""

from __future__ import annotations

__all__ = ["TEXTS"]

TEXTS: dict[str, tuple[str, str]] = {
    "csat.title": ("{number} 服务评价", "{number} · How did we do?"),
    "csat.ask": (
        "工单「{title}」已完成。请为本次服务打分（1–5 星，5 星为非常满意）。",
        "Your ticket “{title}” is closed. Please rate our service (1–5 stars, 5 is best).",
    ),
    "csat.remind": (
        "您还没有为工单「{title}」的服务打分，点一下星星即可，谢谢！",
        "You have not rated our service on “{title}” yet: one tap on the stars. Thank you!",
    ),
    "csat.star": ("{n}星", "{n}★"),
    "csat.given": ("您的评价：{stars}。谢谢！", "Your rating: {stars}. Thank you!"),
    "csat.thanks": (
        "感谢您为 {number} 打了 {stars}！",
        "Thank you for rating {number} {stars}!",
    ),
    "csat.invite": (
        "如有意见或建议，请在 {minutes} 分钟内直接回复一句话，我们会转给负责人。",
        "If you have a comment, just reply here within {minutes} minutes; we pass it on.",
    ),
    "csat.recorded": ("已记录：{stars}", "Recorded: {stars}"),
    "csat.already": (
        "您已为 {number} 打过分（{stars}），谢谢！每张工单只评价一次。",
        "You already rated {number} ({stars}). Thank you! Each ticket is rated once.",
    ),
    "csat.reopened": (
        "{number} 已重新打开，处理完成后会再请您评价。",
        "{number} was reopened; we will ask for your rating again when it is done.",
    ),
    "csat.not_reporter": (
        "只有报修人可以为 {number} 打分。",
        "Only the person who reported {number} can rate it.",
    ),
    "csat.comment_thanks": (
        "谢谢，您的意见已记录在 {number}。",
        "Thank you, your comment is recorded on {number}.",
    ),
    "csat.low": (
        "⚠️ 低分评价：{number}「{title}」客户 {customer} 打了 {stars}（处理人：{engineer}）。",
        "⚠️ Low rating: {number} “{title}” — {customer} gave {stars} (engineer: {engineer}).",
    ),
    "csat.low_comment": (
        "⚠️ {number} 低分评价（{stars}）的客户意见：{comment}",
        "⚠️ {number}, rated {stars}, the customer's comment: {comment}",
    ),
    "csat.nobody": ("无", "nobody"),
}
