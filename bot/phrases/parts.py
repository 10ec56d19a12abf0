"""待备件 with substance (bot/flows/parts.py, bot/cards/parts.py): the questions to the engineer,
the stores chat's notices, the customer's words and the card's field."""

from __future__ import annotations

TEXTS: dict[str, tuple[str, str]] = {
    # --- to the engineer who pressed 待备件 (or 备件已到)
    "parts.ask": (
        "{number} 需要哪些备件？例如：轴承 6205 ×2（几种用顿号或逗号隔开，直接回复即可）",
        "{number}: which parts are needed? For example: bearing 6205 x2 (separate several "
        "with commas; just reply here)",
    ),
    "parts.ask_again": (
        "没看出备件名称。请回复如：轴承 6205 ×2、密封圈 ×3",
        "No part name found. Reply like: bearing 6205 x2, seal x3",
    ),
    "parts.from_diagnosis": (
        "{number} 备件取自已确认的语音诊断：{parts}",
        "{number}: parts taken from the confirmed voice diagnosis: {parts}",
    ),
    "parts.noted": ("已记录 {number} 的备件：{parts}", "Parts noted on {number}: {parts}"),
    "parts.eta_title": ("{number} 备件预计何时到货？", "{number}: when will the parts arrive?"),
    "parts.eta_hint": (
        "{parts}\n点一下，或直接回复日期，如 12月8日、12-08、周五。",
        "{parts}\nTap one, or reply with a day such as Dec 8, 12-08 or Friday.",
    ),
    "parts.eta_again": (
        "没看懂这个日期。请点按钮，或回复如 12月8日、12-08、周五。",
        "That is not a day we can read. Tap a button, or reply like Dec 8, 12-08 or Friday.",
    ),
    "parts.eta_set": (
        "已记录：{number} 备件预计 {eta} 到货，已通知客户。",
        "Noted: parts for {number} expected {eta}; the customer has been told.",
    ),
    "parts.eta_unknown_set": (
        "已记录：{number} 备件到货时间待定，已通知客户；确定后请再点一次或回复日期。",
        "Noted: no date yet for {number}'s parts; the customer has been told. Tap again or "
        "reply with a day once you know.",
    ),
    "parts.visit_title": (
        "{number} 备件已到，预计何时上门维修？",
        "{number}: the parts are in. When will you be there to repair?",
    ),
    "parts.visit_set": (
        "已通知客户：{number} 预计 {visit} 前维修。",
        "The customer has been told: {number} repaired by {visit}.",
    ),
    "parts.unknown": ("待定", "Not known yet"),
    # --- the choices on the buttons ([parts] eta_choices / visit_choices)
    "parts.choice.today": ("今天", "Today"),
    "parts.choice.tomorrow": ("明天", "Tomorrow"),
    "parts.choice.h": ("{n}小时内", "Within {n} h"),
    "parts.choice.d": ("{n}天内", "Within {n} days"),
    "parts.choice.w": ("{n}周内", "Within {n} weeks"),
    "parts.choice.w1": ("1周内", "Within a week"),
    # --- a list of parts, a day
    "parts.line": ("{name} ×{qty}", "{name} ×{qty}"),
    "parts.sep": ("、", ", "),
    "parts.day": ("{month}月{day}日", "{day} {mon}"),
    "parts.day_time": ("{month}月{day}日 {time}", "{day} {mon} {time}"),
    # --- to the customer (and the reporters of merged reports), in their words
    "parts.told_waiting": (
        "正在等待备件：{parts}，预计 {eta} 到货。",
        "We are waiting for parts: {parts}, expected {eta}.",
    ),
    "parts.told_waiting_unknown": (
        "正在等待备件：{parts}，到货时间确定后会告诉您。",
        "We are waiting for parts: {parts}. We will tell you when they are expected.",
    ),
    "parts.told_arrived": (
        "备件已到货，工程师预计 {visit} 前为您维修。",
        "The parts have arrived; the engineer expects to repair it by {visit}.",
    ),
    "parts.overdue": (
        "备件（{parts}）仍未到货，已超出承诺时间，我们正在催办。",
        "The parts ({parts}) have still not arrived, later than we promised; we are chasing them.",
    ),
    "parts.overdue_unknown": (
        "仍在等待备件，已超出承诺时间，我们正在催办。",
        "We are still waiting for parts, later than we promised; we are chasing them.",
    ),
    # --- to the stores chat ([parts] stores_chat)
    "parts.stores_request": (
        "📦 备件申请 {number}（{priority}）{title}\n{where}\n{lines}\n申请人：{who}",
        "📦 Parts request {number} ({priority}) {title}\n{where}\n{lines}\nRequested by: {who}",
    ),
    "parts.stores_where": ("位置：{site} · 设备：{device}", "Site: {site} · Machine: {device}"),
    "parts.stores_line": ("· {line}", "· {line}"),
    "parts.stores_arrived": (
        "✅ {number} 备件已到，申请已完成：{parts}（{who} 确认）",
        "✅ {number}: parts arrived, request fulfilled: {parts} (confirmed by {who})",
    ),
    "parts.stores_withdrawn": (
        "❌ {number} 已取消，备件申请撤销：{parts}（{who}）",
        "❌ {number} was cancelled; parts request withdrawn: {parts} ({who})",
    ),
    "parts.none": ("—", "—"),
    # --- a part with its catalog code and stock (staff and the stores chat only)
    "parts.line_stock": ("{line} · {code} · {stock}", "{line} · {code} · {stock}"),
    "parts.line_unknown": ("{line} · 目录中无此备件", "{line} · not in the parts catalog"),
    "parts.store_qty": ("{store} {qty}", "{store} {qty}"),
    "parts.store_sep": (" / ", " / "),
    "parts.out_of_stock": ("无库存", "out of stock"),
    "parts.short": ("{stock}（库存不足）", "{stock} (not enough)"),
    "parts.stock_sep": ("；", "; "),
    # --- on the ticket's card
    "field.parts": ("备件", "Parts"),
    "parts.field_waiting": ("{parts}，预计 {eta} 到货", "{parts}, expected {eta}"),
    "parts.field_no_eta": ("{parts}，到货时间待定", "{parts}, arrival date not known yet"),
    "parts.field_asking": ("正在确认所需备件", "Confirming which parts are needed"),
    "parts.field_arrived": ("{parts}（已到货）", "{parts} (arrived)"),
    "field.visit": ("预计维修", "Repair expected"),
    "parts.field_visit": ("{visit} 前", "by {visit}"),
}
