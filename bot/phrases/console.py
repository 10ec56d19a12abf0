"""Texts of the staff console (``/console``) and of its first-run sign-in links."""

from __future__ import annotations

TEXTS: dict[str, tuple[str, str]] = {
    "console.role.engineer": ("工程师", "Engineer"),
    "console.role.dispatcher": ("调度员", "Dispatcher"),
    "console.role.manager": ("经理", "Manager"),
    "console.pane.mine": ("我的工单", "My tickets"),
    "console.pane.team": ("团队：{name}", "Team: {name}"),
    "console.pane.admin": ("管理提醒", "Admin alerts"),
    "console.first_run": (
        "还没有人登录过控制台。以下是每位员工的一次性登录链接（{minutes} 分钟内有效，只能用一次；"
        "之后可用 `gongdan login-link <人员编号>` 再生成）：",
        "Nobody has signed in to the console yet. A one-time sign-in link for each person "
        "(valid {minutes} minutes, once; later, `gongdan login-link <person>` prints a new one):",
    ),
    "console.first_run.person": (
        "{name}（{role}，{person}）：{link}",
        "{name} ({role}, {person}): {link}",
    ),
    "console.first_run.nobody": (
        "还没有配置员工，控制台无人可登录：复制 gongdan.example.toml 为 gongdan.toml，"
        "在 [[people]] 中添加员工后重启。",
        "No staff are configured, so nobody can sign in to the console: copy "
        "gongdan.example.toml to gongdan.toml, add your [[people]] and restart.",
    ),
}
