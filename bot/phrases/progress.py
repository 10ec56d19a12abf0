"""The customer's words for where their ticket stands: the progress page (``/t/<token>``), the
link under every milestone message, the customer's card, and staff replies to the customer.

A customer never reads an internal label here ("待备件", "停留「待备件」", "已派单"): each state
and each step has its own wording, written for the person waiting for the repair."""

from __future__ import annotations

__all__ = ["TEXTS"]

TEXTS: dict[str, tuple[str, str]] = {
    # --- the link under each milestone message (bot/lifecycle.py)
    "progress.link": ("查看进度：{url}", "Follow it here: {url}"),
    # --- what a milestone tells the customer, for steps the state alone does not say well
    "progress.told.parts_arrived": (
        "备件已到，工程师继续维修。",
        "The spare part has arrived; the engineer is carrying on with the repair.",
    ),
    "progress.told.third_party_done": (
        "第三方检测结果已出，工程师继续处理。",
        "The third-party check is back; the engineer is carrying on.",
    ),
    "progress.told.reassign": (
        "正在为您更换工程师，安排好后会通知您。",
        "We are finding you another engineer and will tell you who.",
    ),
    # --- the state in one short phrase (the customer's card, the page's heading)
    "progress.label.new": ("已收到报修", "Report received"),
    "progress.label.assigned": ("已安排工程师", "Engineer assigned"),
    "progress.label.accepted": ("已接单", "Accepted"),
    "progress.label.en_route": ("工程师在路上", "Engineer on the way"),
    "progress.label.on_site": ("工程师已到场", "Engineer on site"),
    "progress.label.diagnosing": ("正在检查", "Checking the fault"),
    "progress.label.waiting_parts": ("等待备件", "Waiting for a spare part"),
    "progress.label.third_party": ("等待第三方检测", "Waiting for a third-party check"),
    "progress.label.repairing": ("正在维修", "Being repaired"),
    "progress.label.resolved": ("已修好，待您确认", "Fixed: please confirm"),
    "progress.label.closed": ("已完成", "Done"),
    "progress.label.cancelled": ("已取消", "Cancelled"),
    # --- the state in a sentence (the page, under the heading)
    "progress.status.new": (
        "我们已收到您的报修，正在安排工程师。",
        "We have your report and are finding an engineer.",
    ),
    "progress.status.assigned": (
        "已安排工程师 {name}，等待其接单。",
        "{name} has been asked to take your ticket.",
    ),
    "progress.status.accepted": (
        "{name} 已接单，即将出发。",
        "{name} has taken your ticket and will set off soon.",
    ),
    "progress.status.en_route": ("{name} 正在赶来。", "{name} is on the way."),
    "progress.status.on_site": ("{name} 已到达现场。", "{name} is on site."),
    "progress.status.diagnosing": (
        "{name} 正在检查故障原因。",
        "{name} is finding out what is wrong.",
    ),
    "progress.status.waiting_parts": (
        "需要更换备件，正在等待备件到货，到货后立即维修。",
        "A spare part is needed; the repair goes on as soon as it arrives.",
    ),
    "progress.status.third_party": (
        "需要第三方检测，我们会跟进结果。",
        "A third-party check is needed; we are following it up.",
    ),
    "progress.status.repairing": ("{name} 正在维修。", "{name} is repairing it."),
    "progress.status.resolved": (
        "工程师已处理完毕，请在聊天中确认是否修好。",
        "The engineer has fixed it. Please confirm in the chat that it works.",
    ),
    "progress.status.closed": ("工单已完成，感谢您的耐心。", "The ticket is done. Thank you."),
    "progress.status.cancelled": ("工单已取消。", "The ticket was cancelled."),
    # --- the timeline
    "progress.event.reported": ("您提交了报修", "You reported the fault"),
    "progress.event.assign": ("已安排工程师 {name}", "{name} was assigned"),
    "progress.event.claim": ("{name} 已接单", "{name} took your ticket"),
    "progress.event.accept": ("{name} 已接单", "{name} took your ticket"),
    "progress.event.reassign": ("更换工程师", "Another engineer is being found"),
    "progress.event.depart": ("{name} 已出发", "{name} set off"),
    "progress.event.arrive": ("{name} 已到达现场", "{name} arrived on site"),
    "progress.event.diagnose": ("开始检查故障", "Started checking the fault"),
    "progress.event.need_parts": ("需要更换备件，等待到货", "A spare part is needed"),
    "progress.event.parts_arrived": ("备件已到", "The spare part arrived"),
    "progress.event.need_third_party": ("需要第三方检测", "A third-party check is needed"),
    "progress.event.third_party_done": ("第三方检测结果已出", "The third-party check is back"),
    "progress.event.repair": ("开始维修", "Repair started"),
    "progress.event.resolve": ("已修好，等待您确认", "Fixed; waiting for your confirmation"),
    "progress.event.confirm": ("已确认修好，工单完成", "Confirmed fixed; done"),
    "progress.event.auto_close": ("未收到反馈，工单自动完成", "No answer came; closed for you"),
    "progress.event.reject": ("反馈未修好，工程师继续处理", "Reported not fixed; work goes on"),
    "progress.event.reopen": ("工单已重新打开", "The ticket was reopened"),
    "progress.event.cancel": ("工单已取消", "The ticket was cancelled"),
    "progress.event.reply": ("{role} {name}：{text}", "{role} {name}: {text}"),
    # --- the page
    "progress.title": ("工单进度", "Ticket progress"),
    "progress.heading.timeline": ("进度", "Timeline"),
    "progress.heading.promises": ("我们的承诺", "Our promise"),
    "progress.heading.parts": ("等待的备件", "Parts on the way"),
    "progress.engineer": ("工程师", "Engineer"),
    "progress.engineer.none": ("正在安排", "Being arranged"),
    "progress.promise.respond": ("{at} 前响应", "A response by {at}"),
    "progress.promise.arrive": ("{at} 前到场", "On site by {at}"),
    "progress.promise.resolve": ("{at} 前修好", "Fixed by {at}"),
    "progress.promise.met.respond": ("{at} 已响应", "Responded {at}"),
    "progress.promise.met.arrive": ("{at} 已到场", "On site {at}"),
    "progress.promise.met.resolve": ("{at} 已完成", "Done {at}"),
    "progress.promise.kept": ("按时", "on time"),
    "progress.promise.missed": ("晚于承诺", "later than promised"),
    "progress.promise.late": ("已超时，正在加急", "late; being hurried"),
    "progress.eta.parts": ("备件预计 {at} 到货", "The part is expected by {at}"),
    "progress.eta.arrive": ("预计 {at} 前到场", "Expected on site by {at}"),
    "progress.eta.resolve": ("预计 {at} 前修好", "Expected fixed by {at}"),
    "progress.part": ("{name} × {qty}", "{name} × {qty}"),
    "progress.eta.unknown": ("到货时间待定", "arrival date to be confirmed"),
    "progress.updated": ("更新于 {at}（{zone}）", "Updated {at} ({zone})"),
    "progress.language": ("English", "中文"),
    "progress.not_found.title": ("链接无效", "Link not valid"),
    "progress.not_found": (
        "这个进度链接无效或已过期。如需帮助，请在报修的聊天中联系我们。",
        "This progress link is not valid or has expired. For help, write to us in the chat "
        "where you reported the fault.",
    ),
    "progress.limited": ("访问太频繁，请稍后再试。", "Too many requests; please try again soon."),
    # --- an SLA escalation posted in the customer's own group (bot/flows/escalation.py)
    "progress.overdue.respond": (
        "还没有工程师接单，已超过承诺的响应时间（{due}），我们正在催促。",
        "No engineer has taken it yet; the response we promised by {due} is late. We are "
        "chasing it.",
    ),
    "progress.overdue.arrive": (
        "工程师还未到场，已超过承诺的到场时间（{due}），我们正在催促。",
        "The engineer is not on site yet; we promised {due}. We are chasing it.",
    ),
    "progress.overdue.resolve": (
        "还没有修好，已超过承诺的修复时间（{due}），我们正在加急处理。",
        "It is not fixed yet; we promised {due}. We are hurrying it.",
    ),
    "progress.overdue.stay": (
        "{label}的时间比预期长，我们正在跟进。",
        "“{label}” is taking longer than expected; we are following it up.",
    ),
    "progress.overdue.stay.resolved": (
        "请在聊天中确认是否已修好（点“确认修好”或“没修好”）。",
        "Please confirm in the chat whether it is fixed (“Confirm fixed” or “Not fixed”).",
    ),
    # --- the customer's card: promises in their words (never "停留「待备件」")
    "progress.field.promise": ("承诺", "Our promise"),
    # --- staff write to the customer: "GD-12 回复：…" (bot/flows/reply.py)
    "reply.from_staff": ("{role} {name}：{text}", "{role} {name}: {text}"),
    "reply.role.engineer": ("工程师", "Engineer"),
    "reply.role.dispatcher": ("调度", "Dispatcher"),
    "reply.role.manager": ("经理", "Manager"),
    "reply.sent": ("已发给 {number} 的客户：{text}", "Sent to the customer of {number}: {text}"),
    "reply.empty": (
        "请在“回复”后写上要告诉客户的话，例如“{number} 回复：明早9点到场”。",
        "Write what the customer should read after “reply”, e.g. “{number} reply: on site 9 am”.",
    ),
}
