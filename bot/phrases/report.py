"""Texts of the daily health report (``bot/flows/reports.py``)."""

from __future__ import annotations

TEXTS: dict[str, tuple[str, str]] = {
    "report.title": ("【每日运维报告】{day}{scope}", "Daily service report: {day}{scope}"),
    "report.scope": ("（{teams}）", " ({teams})"),
    "report.tickets": (
        "工单：新建 {opened}，关闭 {closed}，当前未完成 {open}",
        "Tickets: {opened} opened, {closed} closed, {open} open now",
    ),
    "report.respond_overdue": (
        "首次响应超时率：{rate}（{late}/{opened}）",
        "First response overdue: {rate} ({late} of {opened})",
    ),
    "report.breaches": ("SLA 超时：{n} 次", "SLA breaches: {n}"),
    "report.transfers": ("转派：{n} 次", "Transfers: {n}"),
    "report.csat": (
        "满意度：{avg}（{n} 个评分，{low} 个差评）",
        "CSAT: {avg} (ratings: {n}, low: {low})",
    ),
    "report.csat_none": ("满意度：昨日无评分", "CSAT: no ratings"),
    "report.causes": ("主要问题：{items}", "Top causes: {items}"),
    "report.causes_none": ("主要问题：昨日无解决的工单", "Top causes: no tickets resolved"),
    "report.root_causes": ("常见原因：{items}", "Root causes: {items}"),
    "report.suggestions": ("预防性维护建议：", "Preventive maintenance suggested:"),
    "report.suggestion": (
        "· {asset}：{days} 天内 {count} 次报修",
        "· {asset}: {count} tickets in {days} days",
    ),
    "report.link": ("看板：{url}", "Dashboard: {url}"),
    "report.na": ("—", "n/a"),
}
