"""The dashboard's HTML: server-rendered, charts as inline SVG (no script, no CDN).

``page(figures, …)`` is a pure function of the figures ``bot.kpi.compute`` returns: every
number on the page is one of them, and each carries a ``data-kpi`` / ``data-state`` attribute
so that a browser test (and a person's user script) can read it back. Everything a person
typed (titles, sites) is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode

from bot.kpi import PERIODS, Query
from bot.texts import say, span

__all__ = ["Choices", "page"]

_CSS = """
:root{--fg:#1f2933;--mut:#616e7c;--bd:#d9e2ec;--bg:#f5f7fa;--acc:#2f6fde;--bad:#c62828;
--ok:#2e7d32;font-family:system-ui,-apple-system,"Segoe UI","PingFang SC","Hiragino Sans GB",
"Microsoft YaHei","Noto Sans CJK SC","Source Han Sans SC","WenQuanYi Micro Hei",sans-serif}
body{margin:0;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:baseline;padding:.8rem 1.2rem;
background:#fff;border-bottom:1px solid var(--bd)}
header h1{font-size:1.25rem;margin:0}header .who{color:var(--mut)}header a{color:var(--acc)}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;padding:.6rem 1.2rem}
form.filters label{display:flex;flex-direction:column;font-size:.8rem;color:var(--mut)}
form.filters input,form.filters select{font:inherit;padding:.25rem .35rem}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1rem;
padding:0 1.2rem 1.2rem}
section{background:#fff;border:1px solid var(--bd);border-radius:6px;padding:.8rem 1rem;
overflow-x:auto}
section h2{font-size:1rem;margin:0 0 .6rem}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:.6rem;
padding:0 1.2rem .8rem}
.tile{background:#fff;border:1px solid var(--bd);border-radius:6px;padding:.6rem .8rem}
.tile .k{font-size:.8rem;color:var(--mut)}.tile .v{font-size:1.4rem;font-weight:600}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{text-align:left;padding:.25rem .4rem;border-bottom:1px solid var(--bd);white-space:nowrap}
td.t{white-space:normal}td.n{text-align:right}
.overdue{color:var(--bad);font-weight:600}.note{color:var(--mut);font-size:.8rem}
.heat td.n{text-align:center;min-width:2.2rem}
svg text{font-size:11px;fill:var(--fg)}svg .mut{fill:var(--mut)}
.legend span{display:inline-block;margin-right:.8rem;font-size:.8rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.25rem;vertical-align:-1px}
.wide{grid-column:1/-1}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:.4rem 1rem}
"""
_COLOURS = ("#2f6fde", "#e67e22", "#2e7d32", "#8e44ad")


@dataclass(frozen=True, slots=True)
class Choices:
    """What the filter form offers the viewer."""

    teams: Sequence[tuple[str, str]]  # (id, name) of the teams they may pick
    all_teams: bool  # may see every team (managers, dispatchers)
    name: str
    role: str
    customers: Sequence[tuple[str, str]] = ()  # (code, name) of the organisations
    sites: Sequence[str] = ()  # site names to suggest


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.0f}%"


def _span(seconds: float | None, lang: str) -> str:
    return "—" if seconds is None else span(seconds, lang)


def _tile(key: str, label: str, value: str) -> str:
    return (
        f'<div class="tile"><div class="k">{escape(label)}</div>'
        f'<div class="v" data-kpi="{key}">{escape(value)}</div></div>'
    )


def _tiles(fig: Mapping[str, Any], lang: str) -> str:
    s = fig["trends"]["summary"]
    csat = "—" if s["csat"] is None else f"{s['csat']:.2f}"
    tiles = [
        _tile("open", say("dashboard.open", lang), str(fig["open_total"])),
        _tile("opened", say("dashboard.opened", lang), str(s["opened"])),
        _tile("first_response", say("dashboard.first_response", lang),
              _span(s["first_response_s"], lang)),
        _tile("arrival", say("dashboard.arrival", lang), _span(s["arrival_s"], lang)),
        _tile("resolution", say("dashboard.resolution", lang), _span(s["resolution_s"], lang)),
        _tile("ftf", say("dashboard.ftf", lang), _pct(s["first_time_fix_rate"])),
        _tile("reopen", say("dashboard.reopen", lang), _pct(s["reopen_rate"])),
        _tile("transfers", say("dashboard.transfers", lang),
              "—" if s["transfers_per_ticket"] is None else f"{s['transfers_per_ticket']:.2f}"),
        _tile("csat", say("dashboard.csat", lang, n=s["csat_ratings"]), csat),
    ]  # fmt: skip
    return f'<div class="tiles">{"".join(tiles)}</div>'


def _bars(rows: Sequence[tuple[str, str, float, str]], *, limit: float | None = None) -> str:
    """Horizontal bars: (key, label, value, text) each; ``limit`` marks a maximum."""
    if not rows:
        return ""
    top = max([r[2] for r in rows] + [limit or 0, 1])
    h, bar_w = 22, 260
    label_w = 12 + max(_text_width(r[1]) for r in rows)
    out = [f'<svg role="img" width="{label_w + bar_w + 60:.0f}" height="{h * len(rows) + 4}">']
    for i, (key, label, value, text) in enumerate(rows):
        y = i * h + 2
        w = bar_w * value / top
        out.append(
            f'<text x="{label_w - 6:.0f}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w:.0f}" y="{y + 3}" width="{w:.1f}" height="{h - 6}" fill="#2f6fde">'
            f"<title>{escape(label)}: {escape(text)}</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + 15}" data-bar="{escape(key)}">'
            f"{escape(text)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _board(fig: Mapping[str, Any], lang: str) -> str:
    rows = [(b["state"], b["label"], b["count"], str(b["count"])) for b in fig["board"]]
    cells = "".join(
        f'<span data-state="{escape(b["state"])}" hidden>{b["count"]}</span>' for b in fig["board"]
    )
    return f"<section><h2>{say('dashboard.board', lang)}</h2>{_bars(rows)}{cells}</section>"


def _risks(fig: Mapping[str, Any], lang: str) -> str:
    head = "".join(
        f"<th>{say('dashboard.col.' + c, lang)}</th>"
        for c in ("ticket", "title", "priority", "state", "assignee", "clock", "due", "left")
    )
    body = []
    for r in fig["risks"]:
        left = r["left_s"]
        if left < 0:
            when = f'<td class="overdue">{say("dashboard.overdue", lang, span=span(-left, lang))}'
        else:
            when = f"<td>{span(left, lang)}"
        who = r["assignee_name"] or say("dashboard.unassigned", lang)
        body.append(
            f'<tr data-ticket="{escape(r["number"])}"><td>{escape(r["number"])}</td>'
            f'<td class="t">{escape(r["title"])}</td><td>{escape(r["priority"])}</td>'
            f"<td>{escape(r['state_label'])}</td><td>{escape(who)}</td>"
            f"<td>{escape(r['clock_label'])}</td><td>{escape(r['due_local'])}</td>"
            f"{when}</td></tr>"
        )
    table = (
        f'<table class="risks"><tr>{head}</tr>{"".join(body)}</table>'
        if body
        else f'<p class="note">{say("dashboard.empty", lang)}</p>'
    )
    return f'<section class="wide"><h2>{say("dashboard.risks", lang)}</h2>{table}</section>'


def _heat(fig: Mapping[str, Any], lang: str) -> str:
    heat = fig["heatmap"]
    top = max([c for r in heat["rows"] for c in r["counts"]] + [1])
    head = "".join(f"<th>{escape(c)}</th>" for c in heat["columns"])
    rows = []
    for r in heat["rows"]:
        cells = []
        for c in r["counts"]:
            alpha = 0.08 + 0.82 * c / top if c else 0
            colour = "#fff" if alpha > 0.55 else "inherit"
            cells.append(
                f'<td class="n" style="background:rgba(198,40,40,{alpha:.2f});color:{colour}">'
                f"{c}</td>"
            )
        label = escape(r["label"])
        rows.append(f'<tr data-row="{label}"><th>{label}</th>{"".join(cells)}</tr>')
    table = (
        f'<table class="heat"><tr><th></th>{head}</tr>{"".join(rows)}</table>'
        if rows
        else f'<p class="note">{say("dashboard.empty", lang)}</p>'
    )
    note = f'<p class="note">{say("dashboard.heatmap.note", lang)}</p>'
    return f'<section class="wide"><h2>{say("dashboard.heatmap", lang)}</h2>{table}{note}</section>'


def _nice(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= value * 0.999))


def _text_width(text: str) -> float:
    """Roughly how wide ``text`` is at 11 px (CJK glyphs are square)."""
    return sum(11.0 if ord(c) >= 0x2E80 else 6.2 for c in text)


def _lines(
    days: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    fmt: str,
    scale: float | None = None,
) -> str:
    """A small line chart over the days; gaps where a value is missing."""
    w, h, left, bottom = 420, 160, 40, 22
    values = [v for _, vs in series for v in vs if v is not None]
    top = scale or _nice(max([*values, 0]))
    n = max(len(days) - 1, 1)

    def x(i: int) -> float:
        return left + (w - left - 24) * i / n

    def y(v: float) -> float:
        return 8 + (h - bottom - 8) * (1 - v / top)

    out = [f'<svg role="img" width="{w}" height="{h}">']
    for frac in (0, 0.5, 1):
        gy = y(top * frac)
        out.append(
            f'<line x1="{left}" x2="{w - 24}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="#d9e2ec"/>'
            f'<text class="mut" x="{left - 4}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{top * frac:g}</text>"
        )
    step = max(1, len(days) // 7)
    for i in range(0, len(days), step):
        out.append(
            f'<text class="mut" x="{x(i):.1f}" y="{h - 6}" text-anchor="middle">'
            f"{days[i][5:]}</text>"
        )
    for k, (name, vs) in enumerate(series):
        colour = _COLOURS[k % len(_COLOURS)]
        path, pen = [], "M"
        for i, v in enumerate(vs):
            if v is None:
                pen = "M"
                continue
            path.append(f"{pen}{x(i):.1f},{y(v):.1f}")
            pen = "L"
            out.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}">'
                f"<title>{escape(name)} {days[i]}: {fmt.format(v)}</title></circle>"
            )
        if path:
            out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}"/>')
    out.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{_COLOURS[k % len(_COLOURS)]}"></i>{escape(name)}</span>'
        for k, (name, _) in enumerate(series)
    )
    return f'{"".join(out)}<div class="legend">{legend}</div>'


def _trends(fig: Mapping[str, Any], lang: str) -> str:
    days = [d["day"] for d in fig["trends"]["days"]]

    def col(key: str, scale: float = 1.0) -> list[float | None]:
        return [None if d[key] is None else d[key] * scale for d in fig["trends"]["days"]]

    h = 1 / 3600
    charts = [
        ("times", [(say("dashboard.first_response", lang), col("first_response_s", h)),
                   (say("dashboard.arrival", lang), col("arrival_s", h)),
                   (say("dashboard.resolution", lang), col("resolution_s", h))], "{:.1f}", None),
        ("rates", [(say("dashboard.ftf", lang), col("first_time_fix_rate", 100)),
                   (say("dashboard.reopen", lang), col("reopen_rate", 100))], "{:.0f}", 100.0),
        ("volume", [(say("dashboard.opened", lang), col("opened")),
                    (say("dashboard.transfers", lang), col("transfers_per_ticket"))], "{:.1f}",
         None),
        ("csat", [(say("dashboard.csat_line", lang), col("csat"))], "{:.1f}", 5.0),
    ]  # fmt: skip
    parts = [
        f'<div data-chart="{key}"><h3 class="note">{say("dashboard.trend." + key, lang)}</h3>'
        f"{_lines(days, series, fmt=fmt, scale=scale)}</div>"
        for key, series, fmt, scale in charts
    ]
    title = say("dashboard.trends", lang)
    body = f'<div class="charts">{"".join(parts)}</div>'
    return f'<section class="wide"><h2>{title}</h2>{body}</section>'


def _load(fig: Mapping[str, Any], lang: str) -> str:
    rows = [
        (w["person"], w["name"], w["open"], f"{w['open']} / {w['max_open']}") for w in fig["load"]
    ]
    top = max([w["max_open"] for w in fig["load"]] + [1])
    body = _bars(rows, limit=top) or f'<p class="note">{say("dashboard.empty", lang)}</p>'
    return f"<section><h2>{say('dashboard.load', lang)}</h2>{body}</section>"


def _option(value: str, label: str, chosen: str | None) -> str:
    sel = " selected" if value == chosen else ""
    return f'<option value="{escape(value)}"{sel}>{escape(label)}</option>'


def _filters(query: Query, choices: Choices, lang: str) -> str:
    periods = "".join(
        _option(p, say(f"dashboard.period.{p}", lang), query.period_name) for p in PERIODS
    )
    if query.period_name is None:
        label = say(
            "dashboard.period.range",
            lang,
            first=query.period.first.isoformat(),
            last=query.period.last.isoformat(),
        )
        periods = f'<option value="" selected>{escape(label)}</option>' + periods
        kept = (
            f'<input type="hidden" name="from" value="{query.period.first}">'
            f'<input type="hidden" name="to" value="{query.period.last}">'
        )
    else:
        kept = ""
    everyone = say("dashboard.team.all" if choices.all_teams else "dashboard.team.mine", lang)
    teams = _option("", everyone, query.team or "") + "".join(
        _option(t, name, query.team) for t, name in choices.teams
    )
    by = "".join(_option(b, say(f"dashboard.by.{b}", lang), query.by) for b in ("site", "category"))
    grain = "".join(
        _option(g, say(f"dashboard.grain.{g}", lang), query.grain) for g in ("day", "hour")
    )
    sites = "".join(f'<option value="{escape(name)}">' for name in choices.sites)
    known = [code for code, _ in choices.customers]
    customers = _option("", say("dashboard.customer.all", lang), query.customer or "") + "".join(
        _option(code, f"{name} ({code})", query.customer) for code, name in choices.customers
    )
    if query.customer and query.customer not in known:  # (beyond the list's length)
        customers += _option(query.customer, query.customer, query.customer)
    return (
        '<form class="filters" method="get" action="/dashboard">'
        f'<label>{say("dashboard.period", lang)}<select name="period">{periods}</select></label>'
        f"{kept}"
        f'<label>{say("dashboard.team", lang)}<select name="team">{teams}</select></label>'
        f'<label>{say("dashboard.site", lang)}<input name="site" maxlength="200" '
        f'list="sites" value="{escape(query.site or "")}"></label>'
        f'<datalist id="sites">{sites}</datalist>'
        f'<label>{say("dashboard.customer", lang)}<select name="customer">{customers}</select>'
        "</label>"
        f'<label>{say("dashboard.by", lang)}<select name="by">{by}</select></label>'
        f'<label>{say("dashboard.grain", lang)}<select name="grain">{grain}</select></label>'
        f'<input type="hidden" name="lang" value="{lang}">'
        f'<button type="submit">{say("dashboard.apply", lang)}</button></form>'
    )


def page(fig: Mapping[str, Any], query: Query, choices: Choices, *, updated: str) -> str:
    """The whole dashboard page for ``fig``."""
    lang = query.lang
    params = query.params()
    other = {**params, "lang": "en" if lang == "zh" else "zh"}
    export = "/dashboard/export.csv?" + urlencode(params)
    role = say(f"dashboard.role.{choices.role}", lang)
    who = say("dashboard.signed_in", lang, name=choices.name, role=role)
    html_lang = "zh-CN" if lang == "zh" else "en"
    return (
        f'<!doctype html><html lang="{html_lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta http-equiv="refresh" content="60">'
        f"<title>{say('dashboard.title', lang)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{say('dashboard.title', lang)}</h1>"
        f'<span class="who" data-viewer="{escape(choices.role)}">{escape(who)}</span>'
        f'<span class="note">{escape(updated)}</span>'
        f'<a href="{escape(export)}" data-export>{say("dashboard.export", lang)}</a>'
        f'<a href="/dashboard?{escape(urlencode(other))}">{say("dashboard.other_lang", lang)}</a>'
        "</header>"
        f"{_filters(query, choices, lang)}{_tiles(fig, lang)}<main>"
        f"{_board(fig, lang)}{_load(fig, lang)}{_risks(fig, lang)}{_heat(fig, lang)}"
        f"{_trends(fig, lang)}</main></body></html>"
    )
