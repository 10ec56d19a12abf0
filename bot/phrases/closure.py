"""Texts of closure that proves the work: checklists, evidence photos, the notice before
auto-close, the service report (``bot/closure.py``, ``bot/flows/closure.py``,
``bot/web/closure.py``, ``bot/service_report.py``)."""

from __future__ import annotations

TEXTS: dict[str, tuple[str, str]] = {
    # --- the checklist on the staff card
    "closure.field.checklist": ("完工检查", "Closure checklist"),
    "closure.item.open": ("☐ {item}", "☐ {item}"),
    "closure.item.done": ("☑ {item}（{name} {at}）", "☑ {item} ({name}, {at})"),
    "closure.tick.button": ("✓ {item}", "✓ {item}"),
    "closure.ticked": ("已勾选「{item}」（{number}）。", "Ticked “{item}” ({number})."),
    "closure.untick.button": ("↺ {item}", "↺ {item}"),
    "closure.unticked": (
        "已撤销「{item}」的勾选（{number}）。",
        "“{item}” is no longer ticked ({number}).",
    ),
    # --- evidence photos
    "closure.field.photos": ("现场照片", "Photos"),
    "closure.photos.count": ("{count} 张", "{count}"),
    "closure.photo.saved": (
        "已保存为 {number} 的现场照片（共 {count} 张）。",
        "Saved as a photo of {number} ({count} in all).",
    ),
    "closure.photo.duplicate": (
        "这张照片已在 {number} 中。",
        "This photo is already on {number}.",
    ),
    "closure.photo.no_ticket": (
        "您目前没有进行中的工单，这张照片没有归入任何工单。",
        "You have no open ticket, so this photo was not filed on one.",
    ),
    "closure.photo.which": (
        "您有多张进行中的工单（{numbers}），请在控制台的工单卡片上传照片。",
        "You have several open tickets ({numbers}); upload the photo on the ticket's card "
        "in the console.",
    ),
    "closure.photo.too_large": (
        "照片太大（超过 {limit} MB），请压缩后再传。",
        "That photo is too large (over {limit} MB); please send a smaller one.",
    ),
    "closure.photo.not_image": (
        "只接受 JPEG、PNG 或 WebP 格式的照片。",
        "Only JPEG, PNG or WebP photos are accepted.",
    ),
    "closure.photo.too_many": (
        "{number} 已有 {limit} 张照片，不能再添加。",
        "{number} has {limit} photos already; no more can be added.",
    ),
    "closure.photo.closed": (
        "{number} 已关闭或已取消，不能再添加照片。",
        "{number} is closed or cancelled; no photos can be added.",
    ),
    "closure.photo.not_yours": (
        "只有负责人、调度或经理可以为 {number} 添加照片。",
        "Only the assignee, a dispatcher or a manager can add photos to {number}.",
    ),
    "closure.photo.unavailable": (
        "暂时取不到这张照片，请稍后重发，或在控制台上传。",
        "We could not fetch that photo; please send it again later, or upload it in the console.",
    ),
    "closure.upload": ("上传照片", "Upload photo"),
    "closure.report": ("服务报告", "Service report"),
    # --- the customer, before and at auto-close
    "closure.notice": (
        "工程师已标记修好。如无问题无需操作，工单将于 {at} 自动关闭；"
        "如果没有修好，请点卡片上的「没修好」。",
        "The engineer has marked it fixed. If all is well there is nothing to do: the ticket "
        "closes by itself at {at}. If it is not fixed, press “Not fixed” on the card.",
    ),
    "closure.auto_closed": (
        "您未提出异议，工单已自动关闭。如问题再次出现，请直接回复。",
        "You raised no objection, so the ticket was closed. If the problem comes back, just "
        "reply here.",
    ),
    # --- the service report
    "svc.title": ("服务报告", "Service report"),
    "svc.ticket": ("工单", "Ticket"),
    "svc.priority": ("优先级", "Priority"),
    "svc.category": ("类别", "Category"),
    "svc.state": ("状态", "State"),
    "svc.reporter": ("报修人", "Reported by"),
    "svc.assignee": ("负责人", "Engineer"),
    "svc.site": ("位置", "Location"),
    "svc.device": ("设备", "Machine"),
    "svc.created": ("报修时间", "Reported"),
    "svc.closed": ("关闭时间", "Closed"),
    "svc.description": ("故障描述", "Fault"),
    "svc.timeline": ("处理过程", "Timeline"),
    "svc.when": ("时间", "When"),
    "svc.system": ("系统", "system"),
    "svc.who": ("人员", "Who"),
    "svc.what": ("事项", "What"),
    "svc.diagnosis": ("诊断", "Diagnosis"),
    "svc.parts": ("备件", "Parts"),
    "svc.root_cause": ("根本原因", "Root cause"),
    "svc.checklist": ("完工检查", "Closure checklist"),
    "svc.evidence": ("现场照片", "Photos"),
    "svc.none": ("无", "none"),
    "svc.audit": ("审计链", "Audit chain"),
    "svc.audit_hash": ("审计链摘要（第 {seq} 条）", "Audit chain head (entry {seq})"),
    "svc.audit_ok": ("已校验，完整", "verified intact"),
    "svc.audit_bad": ("校验失败：{problem}", "verification FAILED: {problem}"),
    "svc.generated": ("生成于 {at}", "Generated {at}"),
    "svc.event.transition": (
        "{action}：{from_state} → {to_state}",
        "{action}: {from_state} → {to_state}",
    ),
    "svc.event.checklist": ("完工检查：{item}", "Checklist: {item}"),
    "svc.event.unchecked": ("撤销完工检查：{item}", "Checklist item undone: {item}"),
    "svc.event.evidence": ("上传照片", "Photo added"),
    "svc.event.root_cause": ("写明原因：{cause}", "Root cause given: {cause}"),
    "svc.event.created": ("报修：{text}", "Reported: {text}"),
    "svc.event.diagnosis": ("语音诊断已确认", "Voice diagnosis confirmed"),
    "svc.event.note": ("备注：{note}", "Note: {note}"),
    "svc.event.close_notice": ("已通知客户将自动关闭", "Customer told of auto-close"),
}
