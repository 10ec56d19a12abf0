"""Texts for people, in Chinese and English. ``say(key, locale, **values)``."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot.errors import (
    AudioRejected,
    FlowError,
    InvalidTransition,
    NotAllowed,
    NoteAlreadyDecided,
    QuestionAnswered,
    RequirementMissing,
    StaleTransition,
    TokenInvalid,
    UnknownTicket,
)
from bot.phrases import closure, console, csat, dashboard, parts, progress, report
from bot.ticket_labels import action_label_of, state_label_of

__all__ = ["local_time", "refusal", "say", "short_time", "span"]

_CORE: Mapping[str, tuple[str, str]] = {
    # --- staff sign-in (bot/flows/signin.py, bot/access.py)
    "signin.link": (
        "您的登录链接（{minutes} 分钟内有效，只能用一次，请勿转发）：\n{url}",
        "Your sign-in link (works once, within {minutes} minutes; do not forward it):\n{url}",
    ),
    "signin.private": (
        "为了安全，请私聊我发送「登录」获取登录链接。",
        'For your safety, send me "login" in a direct chat to get a sign-in link.',
    ),
    "signin.off": (
        "此处暂不能发放登录链接，请联系管理员。",
        "Sign-in links cannot be sent here; please ask an administrator.",
    ),
    "ack": (
        "已收到您的报修，工单号 {number}（{priority}）。{who}",
        "We have your report: ticket {number} ({priority}). {who}",
    ),
    "ack.assigned": ("{name} 将为您处理。", "{name} will handle it."),
    "ack.promise": ("我们承诺：{promises}。", "Our promise: {promises}."),
    "promise.respond": ("{at} 前响应", "a response by {at}"),
    "promise.arrive": ("{at} 前到场", "on site by {at}"),
    "promise.resolve": ("{at} 前解决", "fixed by {at}"),
    "ack.unassigned": ("正在为您安排工程师。", "We are finding an engineer for you."),
    "ask.missing": (
        "为了更快处理，请补充：{missing}。",
        "To help us act faster, please add: {missing}.",
    ),
    "missing.device": ("设备名称或编号", "the machine's name or number"),
    "missing.location": ("所在位置（车间/楼层）", "where it is (workshop/floor)"),
    "ask.describe": (
        "您好！请描述遇到的问题：哪台设备、什么现象、在哪里。例如“3号注塑机停机，报警E102，二车间”。",
        "Hello! Please describe the problem: which machine, what happens, and where. "
        "For example “Press 3 stopped with alarm E102 in workshop 2”.",
    ),
    "comment.added": ("已补充到工单 {number}。", "Added to ticket {number}."),
    "ask.report": ("需要报修吗？", "Shall we open a repair ticket for this?"),
    "ask.report_quote": ("「{text}」", "“{text}”"),
    "report.dismissed": ("好的，不报修。", "OK, no ticket."),
    "report.exists": ("已报修：{number}。", "Already reported: {number}."),
    "ask.impact": (
        "对生产的影响？点一下，我们据此定优先级：",
        "How does it affect production? One tap sets the priority:",
    ),
    "impact.stopped": ("全线/整机停产", "Line or machine stopped"),
    "impact.partial": ("部分受影响", "Partly affected"),
    "impact.none": ("不影响生产", "No effect on production"),
    "impact.safety": ("有安全隐患", "Safety hazard"),
    "impact.set": (
        "已记录影响：{impact}，{number} 优先级为 {priority}。",
        "Impact noted: {impact}; {number} is now {priority}.",
    ),
    "priority.button": ("改为{priority}", "Set {priority}"),
    "priority.set": ("{number} 优先级已改为 {priority}。", "{number} is now {priority}."),
    "chase.ack": (
        "已催促{who}，工单 {number}（{priority}）会尽快处理。",
        "We have chased {who}; ticket {number} ({priority}) is being pushed.",
    ),
    "chase.nag": (
        "⏰ 客户在催 {number}（{priority}）：{text}",
        "⏰ The customer is chasing {number} ({priority}): {text}",
    ),
    "chase.team": ("值班工程师", "the engineers on duty"),
    "slot.filled": ("已补充到 {number}：{fields}。", "Added to {number}: {fields}."),
    "site.reused": (
        "（位置沿用您上次的报修：{site}，如不对请直接回复正确位置）",
        "(Location taken from your last report: {site}; reply with the right one if not.)",
    ),
    "staff.noted": ("已记录到 {number}。", "Noted on {number}."),
    "staff.evidence": ("已记录为 {number} 的原因说明。", "Recorded as the root cause of {number}."),
    "staff.help": (
        "要给工单补充说明，请以工单号开头，例如“GD-12 原因：冷却风扇损坏”。{open}",
        "To add a note to a ticket, start with its number, e.g. “GD-12 cause: cooling fan "
        "broken”. {open}",
    ),
    "staff.open": ("您的进行中工单：{numbers}。", "Your open tickets: {numbers}."),
    "staff.none": ("您目前没有进行中的工单。", "You have no open tickets."),
    "voice.transcribing": ("正在转写…", "Transcribing…"),
    "voice.unheard": (
        "没有听清这段语音，请靠近话筒再录一次。",
        "We could not make out that voice note; please record it again closer to the mic.",
    ),
    "voice.no_ticket": (
        "您目前没有进行中的工单，这段诊断没有归入任何工单。",
        "You have no open ticket, so this diagnosis was not filed on one.",
    ),
    "diag.title": ("语音诊断", "Voice diagnosis"),
    "diag.transcript": ("转写", "Transcript"),
    "diag.equipment": ("设备", "Equipment"),
    "diag.symptom": ("现象", "Symptom"),
    "diag.cause": ("怀疑原因", "Suspected cause"),
    "diag.actions": ("已处理", "Done so far"),
    "diag.parts": ("需要备件", "Parts needed"),
    "diag.measurements": ("测量", "Measurements"),
    "diag.next": ("下一步", "Next step"),
    "diag.suggested": ("建议状态", "Suggested state"),
    "diag.status": ("状态", "Status"),
    "diag.status.draft": ("待确认", "awaiting confirmation"),
    "diag.status.confirmed": ("已确认", "confirmed"),
    "diag.status.discarded": ("已作废", "discarded"),
    "diag.confirm_and": ("确认并{action}", "Confirm and {action}"),
    "diag.confirmed": ("诊断已确认（{number}）。", "Diagnosis confirmed ({number})."),
    "diag.discarded": ("已作废，请重新录一段语音。", "Discarded; please record a new voice note."),
    "field.diagnosis": ("诊断", "Diagnosis"),
    "card.updated": ("更新于 {at}", "Updated {at}"),
    "voice.received": ("已收到语音（{size} KB）。", "Voice note received ({size} KB)."),
    "voice.recorded": ("已记录到工单 {number}。", "Recorded on ticket {number}."),
    "voice.platform_transcript": ("平台转写：{text}", "Platform transcript: {text}"),
    "voice.later": (
        "语音自动诊断即将上线，请暂时用文字补充要点。",
        "Automatic voice diagnosis is coming soon; please type the key points for now.",
    ),
    "voice.too_large": (
        "语音太长或文件太大，请分成几段、每段两分钟以内再发。",
        "That voice note is too long or too large; please send it in parts of under two minutes.",
    ),
    "voice.unavailable": (
        "暂时取不到这段语音，请稍后重发，或用文字说明。",
        "We could not fetch that voice note; please send it again later, or type it.",
    ),
    "done": ("已执行：{action}（{number}）", "Done: {action} ({number})"),
    "error.internal": (
        "抱歉，处理您的消息时出错了，我们已记录并会尽快处理。",
        "Sorry, something went wrong handling your message. It has been logged.",
    ),
    "milestone.accepted": ("{name} 已接单。", "{name} has taken your ticket."),
    "milestone.en_route": ("{name} 已出发，正在赶来。", "{name} is on the way."),
    "milestone.on_site": ("{name} 已到达现场。", "{name} has arrived on site."),
    "milestone.waiting_parts": (
        "需要更换备件，正在等待备件到货。",
        "A spare part is needed; we are waiting for it to arrive.",
    ),
    "milestone.third_party": (
        "需要第三方检测，我们会跟进结果。",
        "A third-party check is needed; we will follow up.",
    ),
    "milestone.resolved": (
        "工程师已处理完毕，请确认是否修好。",
        "The engineer has fixed the problem. Please confirm it works.",
    ),
    "milestone.closed": ("工单已关闭，感谢您的确认。", "The ticket is closed. Thank you."),
    "milestone.repairing": (
        "已收到您的反馈，工程师将继续处理。",
        "Thanks for telling us; the engineer will keep working on it.",
    ),
    "milestone.cancelled": ("工单已取消。", "The ticket was cancelled."),
    "milestone.assigned": ("工单已重新打开。", "The ticket was reopened."),
    "milestone.prefix": ("【{number}】", "[{number}] "),
    "field.state": ("状态", "State"),
    "field.device": ("设备", "Machine"),
    "field.site": ("位置", "Location"),
    "field.alarm": ("报警", "Alarm"),
    "field.reporter": ("报修人", "Reported by"),
    # The audit trail: a customer's name as staff see it (never mistaken for a colleague's),
    # and an audit checkpoint posted to the admin chat.
    "person.customer": ("客户·{name}", "Customer · {name}"),
    "audit.checkpoint": (
        "🔏 审计检查点 #{id}（{at}）：{tickets} 张工单，{events} 条记录。摘要 {digest}",
        "🔏 Audit checkpoint #{id} ({at}): {tickets} tickets, {events} events. Digest {digest}",
    ),
    "field.assignee": ("负责人", "Assignee"),
    "field.created": ("报修时间", "Reported at"),
    "field.root_cause": ("原因", "Root cause"),
    "unassigned": ("待分配", "unassigned"),
    "confirm.action": ("确定要{action}吗？", "Really {action}?"),
    "error.unknown_ticket": ("找不到该工单。", "No such ticket."),
    "sla.due_in": ("{clock}将在{left}后到期（{due}）", "{clock} due in {left} ({due})"),
    "sla.overdue": ("{clock}已超时{over}（应于 {due}）", "{clock} overdue by {over} (due {due})"),
    "sla.paused": ("{clock}已暂停（剩余{left}）", "{clock} paused ({left} left)"),
    "sla.met": ("{clock}已达成", "{clock} met"),
    "sla.met_late": ("{clock}已完成（超时）", "{clock} met late"),
    "sla.short_due": ("{clock} {at} 前", "{clock} by {at}"),
    "sla.short_overdue": ("{clock}已超时（{at}）", "{clock} overdue ({at})"),
    "sla.short_paused": ("{clock}已暂停", "{clock} paused"),
    "sla.unclaimed": ("还没有人接单。", "Nobody has taken it yet."),
    "sla.nag_title": ("⏰ {number} · {priority} · {title}", "⏰ {number} · {priority} · {title}"),
    "sla.group_hint": (
        "请在工单卡片上点「接单」或「我来处理」。",
        "Press Accept or Claim on the ticket's card.",
    ),
    "sla.digest_title": ("⏰ 时限提醒：{n} 张工单", "⏰ SLA reminders: {n} tickets"),
    "sla.digest_line": (
        "· {number} {priority} {title}：{what}",
        "· {number} {priority} {title}: {what}",
    ),
    "sla.assignee": ("负责人 {name}", "assignee {name}"),
    "sla.snooze_ask": (
        "请回复「{number} 延期 {minutes}m 原因」，写明延期原因。",
        "Reply “{number} snooze {minutes}m <reason>” with the reason for the delay.",
    ),
    "sla.snooze_usage": (
        "延期格式：{number} 延期 2h 原因（原因必填）",
        "Usage: {number} snooze 2h <reason> (a reason is required)",
    ),
    "sla.snoozed": (
        "已延期{span}（{number}），最近期限 {due}。原因：{reason}",
        "Snoozed {number} by {span}; next deadline {due}. Reason: {reason}",
    ),
    "sla.nothing_to_snooze": ("{number} 没有正在计时的期限。", "{number} has no running deadline."),
    "field.sla": ("时限", "SLA"),
    "dead_letter": (
        "⚠️ 消息发送失败，已放弃：发往 {destination}（第 {attempts} 次），错误：{error}",
        "⚠️ Gave up sending a message to {destination} after {attempts} attempts: {error}",
    ),
    # --- team-group card floods folded into a digest (bot/flood.py)
    "flood.title": (
        "📋 又有 {n} 张新工单（群消息已达平台频率上限，合并发送）：",
        "📋 {n} more new tickets (this group is at its platform's rate limit, so in one message):",
    ),
    "flood.line": (
        "· {number} {priority} {title}（{who}）",
        "· {number} {priority} {title} ({who})",
    ),
    "flood.card_follows": ("，卡片随后", ", card follows"),
    "flood.hint": (
        "为免刷屏，这些工单不在本群逐张发卡片；负责人在私聊中有各自的卡片。",
        "To spare this group a flood, these tickets get no card here; each assignee has "
        "theirs in a direct chat.",
    ),
    # --- the asset registry (bot/cards/asset.py, bot/adapters/webchat: scan-to-report)
    "field.asset": ("设备档案", "Asset"),
    "field.asset_tickets": ("该设备近期工单", "Its recent tickets"),
    "asset.model": ("型号 {model}", "model {model}"),
    "asset.warranty": ("保修至 {end}", "under warranty to {end}"),
    "asset.expired": ("已过保（{end} 到期）", "out of warranty (ended {end})"),
    "asset.ticket": ("{number} {title}（{state}）", "{number} {title} ({state})"),
    "asset.reporting": ("报修设备：{asset}", "Reporting: {asset}"),
    # --- similar past cases on the staff card (bot/cards/ticket.py, bot/nlp/similar.py)
    "field.similar": ("相似历史案例", "Similar past cases"),
    "similar.case": ("{number} 根因：{cause}", "{number} root cause: {cause}"),
    # --- repeat reports (bot/flows/repeats.py, bot/cards/ticket.py)
    "repeat.told": (
        "似乎与 {number} 相同（{what}），我们已关联；如不是同一问题请说明。",
        "This looks like {number} ({what}); we have linked them. If it is a different problem, "
        "please tell us.",
    ),
    "repeat.previous_told": (
        "这与上次的 {number}（{what}）可能是同一故障再次出现，我们已关联，工程师会参考上次的处理。",
        "This may be the fault of {number} ({what}) again; we have linked them, and the engineer "
        "will see how it was fixed last time.",
    ),
    "repeat.merged_told": (
        "您的报修 {own} 已合并到 {number}，之后 {number} 的每一步进展都会通知您。",
        "Your report {own} is merged into {number}; you will hear of every step of {number}.",
    ),
    "repeat.split_told": (
        "{own} 与 {number} 不是同一问题，我们会单独处理。",
        "{own} is not the same problem as {number}; we will handle it on its own.",
    ),
    "field.repeat": ("疑似重复", "Suspected repeat"),
    "repeat.field": (
        "{number}（{what}）· 依据：{why}",
        "{number} ({what}) · because: {why}",
    ),
    "repeat.why.alarm": ("报警 {alarm} 相同", "same alarm {alarm}"),
    "repeat.why.words": ("描述相似 {score}", "similar words {score}"),
    "repeat.why.asset": ("同一设备", "same asset"),
    "repeat.why.site": ("同一地点", "same site"),
    "field.previous": ("上次", "Last time"),
    "repeat.previous": ("{number} 原因：{cause}", "{number} cause: {cause}"),
    "repeat.no_cause": ("未记录", "not recorded"),
    "field.merged": ("已合并的报修", "Merged reports"),
    "field.merged_into": ("已合并到", "Merged into"),
    "repeat.merged": ("{own} 已合并到 {number}。", "{own} is merged into {number}."),
    "repeat.split": ("{own} 将作为新工单处理。", "{own} goes on as a ticket of its own."),
    # --- routing: why an engineer was picked (bot/routing_rules.py, bot/flows/routing.py)
    "field.routing": ("派单理由", "Why assigned"),
    "routing.skills": ("技能匹配：{skill}", "skill match: {skill}"),
    "routing.skills.none": ("技能不符", "no matching skill"),
    "routing.duty.always": ("未排班", "no shifts set"),
    "routing.duty.on": ("在班 {shift}", "on duty {shift}"),
    "routing.duty.off": ("不在班", "off duty"),
    "routing.duty.off_nobody": ("不在班（无人在班）", "off duty (nobody is on duty)"),
    "routing.load": ("当前 {load} 单", "{load} open"),
    "routing.load.full": ("已满 {load}/{max} 单", "full: {load}/{max} open"),
    "routing.distance.base": ("距离 {km} km", "{km} km away"),
    "routing.distance.last": ("距离 {km} km（从上一现场）", "{km} km away (from the last site)"),
    "routing.distance.unknown": (
        "距离未知（按 {km} km 计）",
        "distance unknown (counted as {km} km)",
    ),
    "routing.distance.no_site": ("现场位置未知", "site location unknown"),
    "routing.fatigue": ("已连续 {n} 张{kind}单", "{n} {kind} tickets in a row"),
    "routing.preferred": ("设备首选工程师", "the asset's preferred engineer"),
    "routing.excluded": ("不再派给原负责人", "not the previous assignee"),
    "routing.tie": ("同分：最久未接新单者优先", "tie: the one longest without a new ticket"),
    "routing.broadcast": (
        "P0 抢单：已同时发给 {names}，先接先得",
        "P0, offered to {names} at once: the first to claim takes it",
    ),
    "routing.claimed": ("已被{name}接单", "taken by {name}"),
    "routing.manual": ("由{name}指派", "assigned by {name}"),
    "routing.pick.title": ("{number} 转派给谁？", "{number}: reassign to whom?"),
    "routing.pick.line": ("{name}（{score} 分）：{reason}", "{name} ({score} points): {reason}"),
    "routing.pick.button": ("派给{name}（{score}）", "To {name} ({score})"),
    "routing.nobody": ("无可派工程师，请人工派单", "nobody available: dispatch by hand"),
    "routing.sop.title": ("# 派单规则", "# Routing rules"),
    "routing.sop.intro": (
        "新工单由系统按以下规则派给一名工程师；每次派单的理由记在工单上（员工卡片「派单理由」）"
        "和审计记录里。时间按 {tz} 计。",
        "The hub assigns each new ticket to one engineer by these rules; the reason for each "
        "assignment is kept with the ticket (the staff card's “Why assigned”) and in its audit "
        "trail. Times are in {tz}.",
    ),
    "routing.sop.who": ("## 1. 谁可以被派单", "## 1. Who can be picked"),
    "routing.sop.who.role": (
        "- 角色为工程师（engineer）的在职人员。",
        "- Active staff whose role is engineer.",
    ),
    "routing.sop.who.load": (
        "- 未结工单数已达本人上限（max_open）者不派。",
        "- Not someone who already holds their limit of open tickets (max_open).",
    ),
    "routing.sop.who.duty_exclude": (
        "- 不在班者不派（本人班次优先，否则用所在组的班次；都未设置视为一直在班）。"
        "若此刻无人在班，则所有人照常打分，不在班者 {points} 分。",
        "- Not someone off duty (their own shifts, else their team's; none set means always "
        "on duty). When nobody is on duty, everyone is scored and those off duty get {points}.",
    ),
    "routing.sop.who.duty_penalise": (
        "- 不在班者照常打分，但 {points} 分（本人班次优先，否则用所在组的班次）。",
        "- Those off duty are scored but get {points} (their own shifts, else their team's).",
    ),
    "routing.sop.who.escalation": (
        "- SLA 升级转派时，不再派给原负责人。",
        "- An SLA escalation that reassigns never picks the previous assignee.",
    ),
    "routing.sop.score": ("## 2. 打分", "## 2. Scoring"),
    "routing.sop.head": (
        "| 规则 | 分值 | 说明 |\n| --- | --- | --- |",
        "| rule | points | when |\n| --- | --- | --- |",
    ),
    "routing.sop.row.skills": (
        "| 技能 | {points} | 技能与设备档案的类别或型号相符；"
        "无设备档案时与工单的类别、设备或标题相符 |",
        "| skills | {points} | a skill names the asset's category or model; without an asset, "
        "the ticket's category, device or title |",
    ),
    "routing.sop.row.load": (
        "| 负载 | {points} × 未结单数 | 每张未结工单 |",
        "| load | {points} × open tickets | per open ticket held |",
    ),
    "routing.sop.row.distance": (
        "| 距离 | {points} × 公里（最多计 {max_km} km） | 从工程师所在处"
        "（{hours} 小时内最新工单的现场，否则其驻地 base）到工单现场；"
        "现场未知则不计，工程师位置未知按 {half} km 计 |",
        "| distance | {points} × km (up to {max_km} km) | from where the engineer is (the site "
        "of their newest ticket within {hours} h, else their base) to the ticket's site; "
        "nothing when the site is unknown, {half} km when the engineer's place is |",
    ),
    "routing.sop.row.fatigue": (
        "| 连续同类 | {points} | 最近已连续 {n} 张同类（同设备类别）工单 |",
        "| fatigue | {points} | after {n} tickets of the same kind in a row |",
    ),
    "routing.sop.row.fatigue_off": ("| 连续同类 | 0 | 未启用 |", "| fatigue | 0 | off |"),
    "routing.sop.row.preferred": (
        "| 首选工程师 | {points} | 设备档案指定的首选工程师 |",
        "| preferred | {points} | the asset's preferred engineer |",
    ),
    "routing.sop.tie": (
        "## 3. 结果\n总分最高者接单。同分时，最久未接新单者优先（从未接单者最先），"
        "再按人员编号。无人可派时工单留给调度人工派单。",
        "## 3. Outcome\nThe highest total takes the ticket. On equal totals, the one longest "
        "without a new ticket goes first (someone who never had one, first), then by person "
        "number. When nobody can be picked, the ticket waits for a dispatcher.",
    ),
    "routing.sop.people": ("## 4. 工程师", "## 4. Engineers"),
    "routing.sop.people.head": (
        "| 工程师 | 技能 | 上限 | 班次 | 驻地 |\n| --- | --- | --- | --- | --- |",
        "| engineer | skills | limit | shifts | base |\n| --- | --- | --- | --- | --- |",
    ),
    "routing.sop.shifts.team": ("{shifts}（{team}）", "{shifts} (team {team})"),
    "routing.sop.shifts.none": ("一直在班", "always"),
    "routing.explain.title": ("# {number} 派单评分", "# {number}: routing scores"),
    "routing.explain.ticket": (
        "{title}（{priority}，类别 {category}{asset}），当前负责人：{assignee}。按此刻的数据计算。",
        "{title} ({priority}, category {category}{asset}); assignee now: {assignee}. Scored "
        "on the data as it is now.",
    ),
    "routing.explain.asset": ("，设备 {asset}", ", asset {asset}"),
    "routing.explain.head": (
        "| 工程师 | 总分 | 结果 | 各项（分值：理由） |\n| --- | --- | --- | --- |",
        "| engineer | total | outcome | rules (points: reason) |\n| --- | --- | --- | --- |",
    ),
    "routing.explain.winner": ("**派给**", "**picked**"),
    "routing.explain.out": ("不派：{why}", "out: {why}"),
    "routing.explain.eligible": ("可派", "eligible"),
    "routing.explain.result": (
        "结果：派给 {name}（{score} 分）：{reason}",
        "Outcome: {name} ({score} points): {reason}",
    ),
    "routing.explain.recorded": (
        "派单时记录的理由（派给 {person}）：{reason}",
        "Reason recorded at assignment (to {person}): {reason}",
    ),
    # --- preventive maintenance (bot/flows/maintenance.py, bot/cards/ticket.py)
    "pm.suggest": (
        "{asset} {days} 天内第 {count} 次报修（{numbers}），建议安排预防性维护。",
        "{asset}: reported {count} times in {days} days ({numbers}). "
        "Consider scheduling preventive maintenance.",
    ),
    "pm.title": ("预防性维护：{asset}", "Preventive maintenance: {asset}"),
    "pm.due": ("到期 {due}", "due {due}"),
    "pm.meter": (
        "读数已达 {mark} {unit}（当前 {meter}）",
        "meter reached {mark} {unit} (now {meter})",
    ),
    "pm.description": ("{why}。检查清单：\n{steps}", "{why}. Checklist:\n{steps}"),
    "field.checklist": ("检查清单", "Checklist"),
    # --- bad input (bot/inbox.py TextCap): the mark that ends a text cut to the limit
    "text.truncated": ("…(已截断)", "…(truncated)"),
}


def _merged(*tables: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """One table of every feature's texts; a key defined twice is a mistake caught at import."""
    merged: dict[str, tuple[str, str]] = {}
    for table in tables:
        clash = merged.keys() & table.keys()
        if clash:
            raise RuntimeError(f"texts defined twice: {sorted(clash)}")
        merged.update(table)
    return merged


# Each feature's texts live in bot/phrases/<feature>.py; list the module's TEXTS here.
TEXTS: Mapping[str, tuple[str, str]] = _merged(
    _CORE,
    dashboard.TEXTS,
    report.TEXTS,
    csat.TEXTS,
    progress.TEXTS,
    parts.TEXTS,
    closure.TEXTS,
    console.TEXTS,
)


#: Texts with no placeholder, given as they are (a card asks for twenty labels).
_PLAIN = frozenset(k for k, (zh, en) in TEXTS.items() if "{" not in zh and "{" not in en)


def say(key: str, locale: str, **values: object) -> str:
    zh, en = TEXTS[key]
    text = zh if locale == "zh" else en
    return text if key in _PLAIN else text.format(**values)


@functools.lru_cache(maxsize=4096)
def local_time(at: datetime, tz: ZoneInfo) -> str:
    """ "2026-12-02 10:15" (local time; the same moments are shown again and again)."""
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M")


@functools.lru_cache(maxsize=4096)
def _local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def short_time(at: datetime, tz: ZoneInfo, now: datetime) -> str:
    """ "10:15" today, "12-07 09:30" another day (local time)."""
    same_day = _local_day(at, tz) == _local_day(now, tz)
    return local_time(at, tz)[11:] if same_day else local_time(at, tz)[5:]


def span(seconds: float, locale: str) -> str:
    """A duration for people: "1小时20分钟" / "1 h 20 min" (at least a minute)."""
    minutes = max(1, round(seconds / 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if locale == "zh":
        parts = [f"{days}天" if days else "", f"{hours}小时" if hours else ""]
        parts.append(f"{mins}分钟" if mins or not (days or hours) else "")
        return "".join(parts)
    else:
        parts = [f"{days} d" if days else "", f"{hours} h" if hours else ""]
        parts.append(f"{mins} min" if mins or not (days or hours) else "")
    return " ".join(p for p in parts if p)


#: What a person is told when the rules refuse them (``FlowError``s carry only data).
REFUSALS: Mapping[type[FlowError], tuple[str, str]] = {
    InvalidTransition: (
        "工单当前状态为「{state}」，不能执行「{action}」。",
        "The ticket is now “{state}”; “{action}” no longer applies.",
    ),
    NotAllowed: ("您没有权限执行「{action}」。", "You are not allowed to “{action}” this ticket."),
    NoteAlreadyDecided: (
        "这条语音诊断已经处理过了。",
        "This voice diagnosis was already confirmed or discarded.",
    ),
    StaleTransition: (
        "卡片已过期：工单已被其他人更新，请查看最新卡片。",
        "This card is out of date: someone else updated the ticket first. See the latest card.",
    ),
    TokenInvalid: (
        "按钮无效或已被篡改，操作未执行。",
        "This button is invalid or was tampered with; nothing was changed.",
    ),
    UnknownTicket: ("找不到该工单。", "That ticket does not exist."),
    QuestionAnswered: ("这个问题已经回答过了。", "That question was answered already."),
}


def _state_named(state: str, locale: str, customer: bool) -> str:
    if customer and f"progress.label.{state}" in TEXTS:
        return say(f"progress.label.{state}", locale)
    return state_label_of(state, locale)


REQUIREMENTS: Mapping[str, tuple[str, str]] = {
    "evidence": (
        "标记已解决前需要证据：照片、语音诊断或文字写明原因。",
        "Resolving needs evidence: a photo, a voice diagnosis or a written root cause.",
    ),
    "target_engineer": ("请选择要派给的工程师。", "Choose an engineer."),
    "remote_ticket": (
        "现场工单需先到达现场再诊断。",
        "On-site tickets are diagnosed after arriving.",
    ),
    "has_assignee": ("工单没有负责人。", "The ticket has no assignee."),
    "checklist": (
        "检查清单还有未完成项：{items}。请在卡片上逐项确认后再标记已解决。",
        "The checklist still has open items: {items}. Tick them on the card, then resolve.",
    ),
    "root_cause": (
        "标记已解决前请写明原因（按「已解决」时填写，或发送“GD-12 原因：…”）。",
        "Resolving needs the root cause: type it with the press, or send “GD-12 cause: …”.",
    ),
}

AUDIO: Mapping[str, tuple[str, str]] = {
    "too_long": (
        "语音太长，请分成几段、每段 {limit} 秒以内再发。",
        "That voice note is too long; please send parts under {limit} seconds.",
    ),
    "too_large": (
        "语音文件太大（超过 {limit} MB），请分段录制。",
        "That voice file is too large (over {limit} MB); please record it in parts.",
    ),
    "not_audio": (
        "无法识别这段音频的格式，请直接用聊天软件录音发送。",
        "We could not read that audio format; please record it in the chat app.",
    ),
    "busy": (
        "语音转写正忙，请过一两分钟再发。",
        "The transcriber is busy; please send the voice note again in a minute or two.",
    ),
    "unavailable": (
        "暂时取不到这段语音，请稍后重发，或用文字说明。",
        "We could not fetch that voice note; please send it again later, or type it.",
    ),
}


def refusal(error: FlowError, locale: str, *, customer: bool = False) -> str:
    """The reason a person sees for ``error``, in their language (a customer reads the state
    in their words: ``progress.label.*``)."""
    pick = 0 if locale == "zh" else 1
    if isinstance(error, RequirementMissing):
        items = ("、" if locale == "zh" else ", ").join(error.items)
        return REQUIREMENTS[error.requirement][pick].format(items=items)
    if isinstance(error, AudioRejected):
        return AUDIO[error.kind][pick].format(limit=error.limit)
    for kind in type(error).__mro__:
        wording = REFUSALS.get(kind)
        if wording is not None:
            action = getattr(error, "action", None)
            state = getattr(error, "state", None)
            return wording[pick].format(
                action=action_label_of(action, locale) if action else "",
                state=_state_named(state, locale, customer) if state else "",
            )
    return ("操作未执行。", "Nothing was changed.")[pick]
