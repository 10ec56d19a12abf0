// Gongdan web chat: one small script for /chat and /console. No build step.
"use strict";
const GD = (() => {
  const lang = document.documentElement.lang === "en" ? "en" : "zh";
  const T = {
    zh: { send: "发送", name: "您的称呼", start: "开始", placeholder: "描述设备故障，例如：3号注塑机停机，报警E102",
          reason: "请写明原因（解决依据）：", you: "我", connecting: "连接中…", who: "选择身份", enter: "进入",
          password: "密码", empty: "暂无消息", personId: "工号 / 人员编号", signOut: "退出登录",
          signInHelp: "在企业微信、钉钉、Slack 或 Telegram 里私聊工单机器人，发送「登录」，点开收到的一次性链接即可登录；设置过个人密码的也可在下方用密码登录。",
          signedOut: "已退出登录", upload: "上传照片", report: "服务报告", board: "看板" },
    en: { send: "Send", name: "Your name", start: "Start", placeholder: "Describe the fault, e.g. Press 3 stopped, alarm E102",
          reason: "Write the root cause (evidence for resolving):", you: "Me", connecting: "Connecting…", who: "Who are you",
          enter: "Sign in", password: "Password", empty: "No messages yet", personId: "Your staff id", signOut: "Sign out",
          signInHelp: "Send \"login\" to the Gongdan bot in a direct chat (WeCom, DingTalk, Slack or Telegram) and open the one-time link it sends you. If you have set your own password, you can sign in with it below.",
          signedOut: "Signed out", upload: "Upload photo", report: "Service report", board: "Dashboard" },
  }[lang];
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined) e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k);
    return e;
  };
  const newId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2)).replace(/[^A-Za-z0-9_-]/g, "");
  // Staff pages set GD.csrf once signed in: every POST then proves it comes from this page.
  const state = { csrf: null };
  async function post(url, body) {
    const headers = { "Content-Type": "application/json" };
    if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
    const r = await fetch(url, { method: "POST", credentials: "same-origin", headers, body: JSON.stringify(body) });
    if (!r.ok) {
      let m = r.statusText; try { m = (await r.json()).error || m; } catch (_) {}
      const e = new Error(m); e.status = r.status; throw e;
    }
    return r.json();
  }
  // Post with retries: the same id makes a retried post a no-op on the server.
  async function postReliably(url, body, tries = 5) {
    for (let i = 0; ; i++) {
      try { return await post(url, body); } catch (e) {
        if (i >= tries - 1 || (e.status >= 400 && e.status < 500 && e.status !== 429)) throw e;
        await new Promise(r => setTimeout(r, 500 * 2 ** i));
      }
    }
  }
  function toast(text) {
    const t = el("div", { class: "toast", role: "status" }, text);
    document.body.append(t); setTimeout(() => t.remove(), 6000);
  }
  // The hub's texts as text, with their web links (a ticket's progress page) made links.
  function linkify(text) {
    return String(text).split(/(https?:\/\/[^\s<>"]+)/).map((part, i) => i % 2
      ? el("a", { href: part, target: "_blank", rel: "noopener noreferrer" }, part) : part);
  }
  // A conversation view: renders the feed; cards are replaced in place when updated.
  function view(container, session, opts) {
    const shown = new Map(), pressed = new Map();  // press id → its button, until answered
    function card(p, convo, key) {
      const box = el("div", { class: "card", "data-ticket": p.ticket_id, "data-version": p.version });
      box.append(el("div", { class: "card-title" }, p.title));
      const dl = el("dl");
      for (const [k, v] of p.fields) dl.append(el("dt", {}, k), el("dd", {}, v));
      box.append(dl);
      if (p.text) box.append(el("p", { class: "card-text" }, p.text));
      const bar = el("div", { class: "buttons" });
      for (const b of p.buttons) {
        bar.append(el("button", { class: "btn " + b.style, onclick: async (ev) => {
          if (b.confirm && !confirm(b.confirm)) return;
          let note = null;
          if (opts.askNote && opts.askNote(b)) { note = prompt(T.reason); if (note === null) return; }
          const btn = ev.currentTarget, id = newId();
          btn.disabled = true; pressed.set(id, btn);
          try { await postReliably("/webchat/api/actions", { ...(session ? { session } : {}), id, token: b.token, conversation: convo, message: key, note }); }
          catch (e) { pressed.delete(id); answered(btn, e.message); toast(e.message); }
        } }, b.label));
      }
      box.append(bar);
      if (p.footer) box.append(el("div", { class: "card-footer" }, p.footer));
      if (opts.extras) opts.extras(p, box);
      return box;
    }
    // The answer to a press (a refusal says why): the button works again, the reason stays.
    function answered(btn, text) {
      btn.disabled = false;
      const box = btn.closest(".card");
      if (!box || !btn.isConnected) return;
      let why = box.querySelector(".card-reason");
      if (!why) { why = el("div", { class: "card-reason", role: "status" }); btn.parentNode.after(why); }
      why.textContent = text;
    }
    function notice(m) {
      const btn = m.payload.press && pressed.get(m.payload.press);
      if (btn) { pressed.delete(m.payload.press); answered(btn, m.payload.text); }
      if (!m.replay) toast(m.payload.text);  // a page that opens shows past answers in the feed only
      const target = opts.pane(m.conversation);
      const node = el("div", { class: "bubble notice" }, m.payload.text);
      target.append(node); target.scrollTop = target.scrollHeight;
    }
    function render(m) {
      if (m.kind === "notice") { notice(m); return; }
      const target = opts.pane(m.conversation);
      let node;
      if (m.kind === "card") node = card(m.payload, m.conversation, m.key);
      else if (m.kind === "user") node = el("div", { class: "bubble " + (m.payload.user_id === opts.me ? "me" : "them") },
        el("span", { class: "who" }, m.payload.user_id === opts.me ? T.you : m.payload.name), m.payload.text);
      else node = el("div", { class: "bubble hub" }, ...linkify(m.payload.text));
      node.dataset.key = m.key;
      if (m.ticket_card) {  // one card per ticket: this copy replaces one shown elsewhere
        node.dataset.ticketCard = m.payload.ticket_id;
        for (const other of container.querySelectorAll(`[data-ticket-card="${m.payload.ticket_id}"]`)) if (other.dataset.key !== m.key) other.remove();
      }
      const old = shown.get(m.key);
      if (old && old.isConnected) old.replaceWith(node); else target.append(node);
      shown.set(m.key, node);
      target.scrollTop = target.scrollHeight;
    }
    // Customers name their session; staff are known by their sign-in cookie.
    const es = new EventSource("/webchat/api/stream?lang=" + lang + (session ? "&session=" + encodeURIComponent(session) : "&view=desk"));
    es.onmessage = (e) => render(JSON.parse(e.data));
    es.onopen = () => { document.body.dataset.live = "1"; };
    return { close: () => es.close(), localEcho: (key, text) => render({ kind: "user", key, conversation: opts.me, payload: { text, user_id: opts.me, name: "" } }) };
  }
  return { T, el, newId, post, postReliably, view, toast, lang, state };
})();
