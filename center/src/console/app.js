// The duty officers' console and the responder units' dispatch view: one page, no build step,
// no external resources (it must work on a county network without internet). Chinese first.
"use strict";

const TEXT = {
  "zh-CN": {
    title: "雪亮 · 综治中心值班台", login: "登录", user: "用户名", password: "密码",
    wrong: "用户名或密码错误", logout: "退出", lang: "English", alarms: "告警", fleet: "设备",
    unack: "未确认", time: "时间", camera: "摄像机", kind: "类型", severity: "级别", status: "状态",
    location: "位置", from: "开始时间", to: "结束时间", apply: "筛选", all: "全部", more: "加载更多",
    note: "备注", dispatchTo: "派往", timeline: "处置记录", audit: "审计记录", noAlarm: "请选择一条告警",
    snapshotOf: "告警快照", noSnapshot: "无快照", agent: "设备", online: "在线", offline: "离线",
    never: "从未上线", since: "自", decode: "解码帧率", infer: "推理帧率", inferMs: "推理耗时",
    outbox: "待发告警", config: "配置版本", lastSeen: "最近联系", dispatches: "派警任务",
    feedback: "反馈", progress: "进展", newAlarm: "新告警", failed: "操作失败", none: "暂无",
    by: "操作人", enrolTitle: "登记新设备", enrolAgent: "设备编号", enrolHours: "有效时长（小时）",
    enrolCreate: "生成登记码", enrolToken: "登记码", enrolRun: "请安装人员在设备上以 root 身份运行：",
    enrolUntil: "有效期至", enrolOnce: "登记码只能使用一次，且只在此显示一次。",
    kinds: { zone_intrusion: "区域入侵", line_crossing: "越线", loitering: "徘徊", crowding: "人员聚集",
      vehicle_stopped: "车辆违停", fire_smoke: "烟火", camera_offline: "摄像机离线",
      camera_tamper: "摄像机遮挡/移位", camera_back: "摄像机恢复" },
    statuses: { new: "新告警", acknowledged: "已确认", dispatched: "已派警", resolved: "已处置", false_alarm: "误报" },
    severities: { info: "提示", low: "低", medium: "中", high: "高", critical: "紧急" },
    actions: { acknowledge: "确认", dispatch: "派警", resolve: "处置完毕", "false-alarm": "误报",
      escalate: "超时升级", receive: "已接收", "on-scene": "已到场", close: "办结" },
    progresses: { none: "待接收", receive: "已接收", "on-scene": "已到场", close: "已办结" },
  },
  en: {
    title: "Xueliang · Duty console", login: "Log in", user: "Login", password: "Password",
    wrong: "Wrong login or password", logout: "Log out", lang: "中文", alarms: "Alarms", fleet: "Fleet",
    unack: "Unacknowledged", time: "Time", camera: "Camera", kind: "Kind", severity: "Severity",
    status: "Status", location: "Place", from: "From", to: "To", apply: "Filter", all: "All",
    more: "Load more", note: "Note", dispatchTo: "Dispatch to", timeline: "Case steps",
    audit: "Audit trail", noAlarm: "Select an alarm", snapshotOf: "Alarm snapshot",
    noSnapshot: "No snapshot", agent: "Agent", online: "Online", offline: "Offline",
    never: "Never seen", since: "since", decode: "Decode fps", infer: "Infer fps",
    inferMs: "Inference", outbox: "Outbox", config: "Config version", lastSeen: "Last seen",
    dispatches: "Dispatches", feedback: "Feedback", progress: "Progress", newAlarm: "New alarm",
    failed: "Failed", none: "None", by: "By", enrolTitle: "Enrol a box", enrolAgent: "Agent id",
    enrolHours: "Valid for (hours)", enrolCreate: "Create a token", enrolToken: "Token",
    enrolRun: "On the box, as root, the installer runs:", enrolUntil: "Valid until",
    enrolOnce: "The token works once and is shown only now.",
    kinds: { zone_intrusion: "Zone intrusion", line_crossing: "Line crossing", loitering: "Loitering",
      crowding: "Crowding", vehicle_stopped: "Vehicle stopped", fire_smoke: "Fire/smoke",
      camera_offline: "Camera offline", camera_tamper: "Camera tampered", camera_back: "Camera back" },
    statuses: { new: "New", acknowledged: "Acknowledged", dispatched: "Dispatched", resolved: "Resolved", false_alarm: "False alarm" },
    severities: { info: "Info", low: "Low", medium: "Medium", high: "High", critical: "Critical" },
    actions: { acknowledge: "Acknowledge", dispatch: "Dispatch", resolve: "Resolve", "false-alarm": "False alarm",
      escalate: "Escalated", receive: "Received", "on-scene": "On scene", close: "Closed" },
    progresses: { none: "Not received", receive: "Received", "on-scene": "On scene", close: "Closed" },
  },
};

const state = {
  lang: localStorage.getItem("xl-lang") || "zh-CN",
  me: null, alarms: new Map(), order: [], next: null, unack: new Set(), selected: null,
  units: [], events: null, view: "alarms",
};

const t = (key) => TEXT[state.lang][key] ?? key;
const label = (group, key) => (TEXT[state.lang][group] || {})[key] || key;
const $ = (sel, root = document) => root.querySelector(sel);

/** Builds an element: el("button", {type: "button", onclick}, "text", child...). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c.nodeType ? c : String(c));
  return e;
}

function fmtTime(ms) {
  if (!ms) return "";
  return new Intl.DateTimeFormat(state.lang, {
    timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(new Date(ms));
}

async function api(path, options = {}) {
  const resp = await fetch(path, { credentials: "same-origin", ...options });
  if (resp.status === 401 && path !== "/api/login") { showLogin(); throw new Error("401"); }
  const body = resp.headers.get("content-type")?.includes("json") ? await resp.json() : null;
  if (!resp.ok) throw new Error(body?.error || resp.statusText);
  return body;
}

const post = (path, body) => api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

/** A short tone for a new alarm (no sound file: nothing to download). */
function beep() {
  try {
    const ctx = beep.ctx || (beep.ctx = new AudioContext());
    const osc = ctx.createOscillator(); const gain = ctx.createGain();
    osc.frequency.value = 880; gain.gain.value = 0.15;
    osc.connect(gain).connect(ctx.destination); osc.start(); osc.stop(ctx.currentTime + 0.25);
  } catch { /* no audio device: the visual cue remains */ }
}

function announce(text) { $("#announce").textContent = text; }

function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.title = t("title");
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
  $("#lang").textContent = t("lang");
}

// ── Log-in ───────────────────────────────────────────────────────────────────────────────
function showLogin(message = "") {
  if (state.events) { state.events.close(); state.events = null; }
  state.me = null;
  setLoggedIn(false);
  const error = el("p", { id: "login-error", class: "error", role: "alert" }, message);
  const form = el("form", { id: "login-form", class: "login" },
    el("h1", {}, t("title")),
    el("label", {}, t("user"), el("input", { id: "login-user", name: "login", autocomplete: "username", required: true })),
    el("label", {}, t("password"), el("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true })),
    error,
    el("button", { id: "login-submit", class: "primary", type: "submit" }, t("login")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await post("/api/login", { login: $("#login-user").value, password: $("#login-password").value });
      await start();
    } catch (e) {
      error.textContent = e.message === "wrong login or password" ? t("wrong") : `${t("failed")}: ${e.message}`;
    }
  });
  $("#main").replaceChildren(form);
  $("#login-user").focus();
}

/** The header's language button stays usable on the log-in page; the rest needs a user. */
function setLoggedIn(on) {
  for (const id of ["nav", "unack", "who", "logout"]) $(`#${id}`).hidden = !on;
}

function toggleLanguage() {
  state.lang = state.lang === "zh-CN" ? "en" : "zh-CN";
  localStorage.setItem("xl-lang", state.lang);
  applyLanguage();
}

// ── After log-in ─────────────────────────────────────────────────────────────────────────
async function start() {
  state.me = await api("/api/me");
  setLoggedIn(true);
  $("#who").textContent = `${state.me.name} (${state.me.role})`;
  const views = { admin: ["alarms", "fleet"], duty_officer: ["alarms", "fleet"], installer: ["fleet"], police: ["alarms"] }[state.me.role] || [];
  $("#nav").replaceChildren(...views.map((v) => el("a", { href: `#${v}`, "data-t": v }, t(v))));
  if (state.me.role !== "installer") {
    state.units = state.me.role === "police" ? [] : await api("/api/units");
    listen();
  }
  route();
}

function route() {
  if (!state.me) return;
  const wanted = location.hash.slice(1) || (state.me.role === "installer" ? "fleet" : "alarms");
  state.view = wanted;
  for (const a of document.querySelectorAll("#nav a")) a.toggleAttribute("aria-current", a.getAttribute("href") === `#${wanted}`);
  for (const a of document.querySelectorAll("#nav a")) if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  $("#unack").hidden = !["admin", "duty_officer"].includes(state.me.role);
  if (wanted === "fleet") return showFleet();
  if (state.me.role === "police") return showStation();
  return showAlarms();
}

/** Server-sent events: new and changed alarms as they happen. */
function listen() {
  if (state.events) state.events.close();
  const source = new EventSource("/api/events");
  source.addEventListener("alarm", (ev) => {
    const { change, alarm } = JSON.parse(ev.data);
    state.alarms.set(alarm.id, alarm);
    // A unit's user first sees an alarm when it is dispatched to it (a change, not a new alarm).
    const first = !state.order.includes(alarm.id);
    if (first) state.order.unshift(alarm.id);
    if (change === "new" || (first && state.me.role === "police")) {
      beep();
      announce(`${t("newAlarm")}: ${alarm.location || alarm.camera_id} ${label("kinds", alarm.kind)}`);
    }
    if (alarm.status === "new") state.unack.add(alarm.id); else state.unack.delete(alarm.id);
    refresh(alarm.id, change === "new");
  });
  source.addEventListener("resync", () => route());
  state.events = source;
}

function refresh(id, fresh) {
  $("#unack-count").textContent = state.unack.size;
  if (state.view !== "alarms") return;
  if (state.me.role === "police") return showStation();
  renderList(fresh ? id : null);
  if (state.selected === id) renderDetail(id);
}

// ── The alarm list and its detail ────────────────────────────────────────────────────────
const FILTERS = [["from", "datetime-local"], ["to", "datetime-local"], ["camera", "text"], ["kind", "kinds"], ["status", "statuses"], ["severity", "severities"]];

function filterQuery() {
  const q = new URLSearchParams({ limit: "100" });
  for (const [name, kind] of FILTERS) {
    const v = $(`#filter-${name}`)?.value;
    if (!v) continue;
    // datetime-local is the officer's wall clock in Shanghai.
    q.set(name, kind === "datetime-local" ? `${v}:00+08:00` : v);
  }
  return q;
}

async function loadAlarms(more = false) {
  const q = filterQuery();
  if (more && state.next) q.set("cursor", state.next);
  const page = await api(`/api/alarms?${q}`);
  if (!more) { state.order = []; }
  for (const a of page.alarms) { state.alarms.set(a.id, a); if (!state.order.includes(a.id)) state.order.push(a.id); }
  state.next = page.next_cursor || null;
}

async function loadUnack() {
  if (!["admin", "duty_officer"].includes(state.me.role)) return;
  const page = await api("/api/alarms?status=new&limit=500");
  state.unack = new Set(page.alarms.map((a) => a.id));
  $("#unack-count").textContent = state.unack.size;
}

async function showAlarms() {
  const filters = el("form", { class: "filters", id: "filters" },
    ...FILTERS.map(([name, kind]) => el("label", {}, t(name),
      kind === "datetime-local" || kind === "text"
        ? el("input", { id: `filter-${name}`, type: kind })
        : el("select", { id: `filter-${name}` }, el("option", { value: "" }, t("all")),
            ...Object.entries(TEXT[state.lang][kind]).map(([k, v]) => el("option", { value: k }, v))))),
    el("button", { type: "submit" }, t("apply")));
  filters.addEventListener("submit", async (ev) => { ev.preventDefault(); await loadAlarms(); renderList(); });
  const table = el("table", { id: "alarm-list" },
    el("thead", {}, el("tr", {}, ...["time", "camera", "kind", "severity", "status", "location"].map((h) => el("th", { scope: "col" }, t(h))))),
    el("tbody"));
  $("#main").replaceChildren(el("div", { class: "layout" },
    el("section", { "aria-label": t("alarms") }, filters, table, el("p", {}, el("button", { id: "more", type: "button", onclick: async () => { await loadAlarms(true); renderList(); } }, t("more")))),
    el("section", { id: "detail", class: "panel", "aria-live": "polite" }, el("p", { class: "muted" }, t("noAlarm")))));
  await Promise.all([loadAlarms(), loadUnack()]);
  renderList();
  if (state.selected) renderDetail(state.selected);
}

function renderList(freshId = null) {
  const body = $("#alarm-list tbody");
  if (!body) return;
  body.replaceChildren(...state.order.map((id) => state.alarms.get(id)).filter(Boolean).map((a) => {
    const open = () => { state.selected = a.id; renderList(); renderDetail(a.id); };
    return el("tr", {
      tabindex: 0, "data-alarm-id": a.id, "data-status": a.status, "aria-selected": String(state.selected === a.id),
      class: a.id === freshId ? "fresh" : null, onclick: open,
      onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); } },
    },
      el("td", {}, fmtTime(a.event_time_ms)),
      el("td", {}, `${a.agent_id}/${a.camera_id}`),
      el("td", {}, label("kinds", a.kind)),
      el("td", { class: `sev-${a.severity}` }, label("severities", a.severity)),
      el("td", {}, el("span", { class: "status", "data-status": a.status }, label("statuses", a.status))),
      el("td", {}, a.location || ""));
  }));
  $("#more").hidden = !state.next;
}

function snapshot(a) {
  if (!a.snapshot_bytes || a.snapshot_expired) return el("p", { class: "muted" }, t("noSnapshot"));
  const alt = `${t("snapshotOf")}: ${a.location || a.camera_id} ${label("kinds", a.kind)} ${fmtTime(a.event_time_ms)}`;
  return el("div", { class: "snapshot" }, el("img", { id: "detail-snapshot", src: `/api/alarms/${encodeURIComponent(a.id)}/snapshot`, alt }));
}

function steps(a) {
  return el("ol", { id: "timeline", class: "steps" }, ...(a.timeline || []).map((s) => el("li", { "data-action": s.action },
    `${fmtTime(s.at_ms)} ${label("actions", s.action)} — ${s.by}`,
    s.units?.length ? ` → ${s.units.join(", ")}` : "", s.note ? `: ${s.note}` : "")));
}

async function renderDetail(id) {
  const pane = $("#detail");
  const a = state.alarms.get(id);
  if (!pane || !a) return;
  // Re-rendered on every change of the alarm: keep what the officer was typing.
  const typed = $("#action-note")?.value || "";
  const note = el("textarea", { id: "action-note", "aria-label": t("note"), placeholder: t("note") }, typed);
  const canAct = ["admin", "duty_officer"].includes(state.me.role);
  const suggested = new Set(a.dispatched_to?.length ? [] : a.routed_to || []);
  const units = el("fieldset", { class: "units" }, el("legend", {}, t("dispatchTo")),
    ...state.units.map((u) => el("label", {}, el("input", {
      type: "checkbox", name: "unit", value: u.id, checked: suggested.has(u.id), disabled: a.dispatched_to?.includes(u.id),
    }), ` ${u.name}`)));
  const act = async (action) => {
    const body = { note: note.value };
    if (action === "dispatch") body.units = [...document.querySelectorAll('input[name="unit"]:checked')].map((i) => i.value);
    try {
      const updated = await post(`/api/alarms/${encodeURIComponent(id)}/${action}`, body);
      note.value = "";
      state.alarms.set(id, updated);
      if (updated.status === "new") state.unack.add(id); else state.unack.delete(id);
      refresh(id, false);
    } catch (e) { $("#action-error").textContent = `${t("failed")}: ${e.message}`; }
  };
  const allowed = { new: ["acknowledge"], acknowledged: ["dispatch", "resolve", "false-alarm"], dispatched: ["dispatch", "resolve", "false-alarm"] }[a.status] || [];
  pane.replaceChildren(
    el("h2", {}, `${label("kinds", a.kind)} · ${a.location || a.camera_id}`),
    el("p", {}, el("span", { id: "detail-status", class: "status", "data-status": a.status }, label("statuses", a.status)), " ",
      el("span", { class: `sev-${a.severity}` }, label("severities", a.severity)), " ",
      el("span", { class: "muted" }, `${fmtTime(a.event_time_ms)} · ${a.agent_id}/${a.camera_id} · ${a.detections.length}× ${[...new Set(a.detections.map((d) => d.class))].join(", ")}`)),
    snapshot(a),
    canAct && a.status !== "resolved" && a.status !== "false_alarm" ? el("div", {}, note, units,
      el("div", { class: "actions" }, ...["acknowledge", "dispatch", "resolve", "false-alarm"].map((action) =>
        el("button", { type: "button", "data-action": action, class: action === allowed[0] ? "primary" : null, disabled: !allowed.includes(action), onclick: () => act(action) }, label("actions", action)))),
      el("p", { id: "action-error", class: "error", role: "alert" })) : null,
    el("h3", {}, t("timeline")), steps(a),
    canAct ? el("h3", {}, t("audit")) : null, canAct ? el("ol", { id: "audit", class: "steps" }) : null);
  if (canAct) {
    const trail = await api(`/api/alarms/${encodeURIComponent(id)}/audit`).catch(() => []);
    $("#audit")?.replaceChildren(...trail.map((e) => el("li", {}, `${fmtTime(e.time_ms)} ${e.user} ${e.action}${e.detail ? ": " + e.detail : ""}`)));
  }
}

// ── A responder unit's dispatches (phone-sized) ──────────────────────────────────────────
function progressOf(a) {
  const mine = (a.timeline || []).filter((s) => ["receive", "on-scene", "close"].includes(s.action) && s.units?.includes(state.me.unit));
  return mine.length ? mine[mine.length - 1].action : "none";
}

async function showStation() {
  if (!$("#station-list")) {
    $("#main").replaceChildren(el("section", { class: "station" }, el("h1", {}, t("dispatches")), el("div", { id: "station-list" })));
    await loadAlarms();
  }
  const next = { none: "receive", receive: "on-scene", "on-scene": "close" };
  $("#station-list").replaceChildren(...state.order.map((id) => state.alarms.get(id)).filter(Boolean).map((a) => {
    const done = progressOf(a);
    const typed = document.querySelector(`article[data-alarm-id="${CSS.escape(a.id)}"] textarea`)?.value || "";
    const feedback = el("textarea", { name: "feedback", "aria-label": t("feedback"), placeholder: t("feedback") }, typed);
    const step = async (action) => {
      try {
        state.alarms.set(a.id, await post(`/api/alarms/${encodeURIComponent(a.id)}/${action}`, { note: feedback.value }));
        showStation();
      } catch (e) { article.querySelector(".error").textContent = `${t("failed")}: ${e.message}`; }
    };
    const article = el("article", { "data-alarm-id": a.id },
      el("h2", {}, `${label("kinds", a.kind)} · ${label("severities", a.severity)}`),
      el("p", { class: "location" }, a.location || `${a.agent_id}/${a.camera_id}`),
      el("p", { class: "muted" }, fmtTime(a.event_time_ms)),
      snapshot(a),
      el("p", {}, `${t("progress")}: `, el("span", { class: "progress", "data-progress": done }, label("progresses", done))),
      el("ol", { class: "steps" }, ...(a.timeline || []).filter((s) => s.units?.includes(state.me.unit)).map((s) =>
        el("li", { "data-action": s.action }, `${fmtTime(s.at_ms)} ${label("actions", s.action)}${s.note ? ": " + s.note : ""}`))),
      done === "close" ? null : feedback,
      el("div", { class: "actions" }, ...["receive", "on-scene", "close"].map((action) => el("button", {
        type: "button", "data-action": action, class: next[done] === action ? "primary" : null,
        disabled: !(next[done] === action || (action === "close" && done === "receive")), onclick: () => step(action),
      }, label("actions", action)))),
      el("p", { class: "error", role: "alert" }));
    return article;
  }));
}

// ── The fleet ────────────────────────────────────────────────────────────────────────────
async function showFleet() {
  const { agents } = await api("/api/fleet");
  const online = (a) => a.online === null ? t("never") : a.online ? t("online") : t("offline");
  const table = el("table", { id: "fleet-table" },
    el("thead", {}, el("tr", {}, ...["agent", "status", "camera", "decode", "infer", "inferMs", "outbox", "config", "lastSeen"].map((h) => el("th", { scope: "col" }, t(h))))),
    el("tbody", {}, ...agents.map((a) => el("tr", { "data-agent-id": a.agent_id, class: a.online === false ? "offline" : null },
      el("td", {}, a.agent_id),
      el("td", {}, online(a), a.since_ms ? el("div", { class: "muted" }, `${t("since")} ${fmtTime(a.since_ms)}`) : null),
      el("td", {}, ...(a.health?.cameras || []).map((c) => el("div", {}, `${c.camera_id} ${c.online ? "●" : "○"}`))),
      el("td", {}, ...(a.health?.cameras || []).map((c) => el("div", {}, c.decode_fps.toFixed(1)))),
      el("td", {}, ...(a.health?.cameras || []).map((c) => el("div", {}, c.infer_fps.toFixed(1)))),
      el("td", {}, ...(a.health?.cameras || []).map((c) => el("div", {}, `${c.inference_ms.toFixed(0)} ms`))),
      el("td", {}, a.health ? String(a.health.outbox_depth) : ""),
      el("td", {}, String(a.config_version), a.config_ack && !a.config_ack.applied ? el("div", { class: "error" }, a.config_ack.reason) : null),
      el("td", {}, fmtTime(a.last_seen_ms))))));
  $("#main").replaceChildren(el("h1", {}, t("fleet")), table, state.me.role === "admin" ? enrolForm() : "");
}

/** An administrator's form for a new box's one-time enrolment token. */
function enrolForm() {
  const result = el("div", { id: "enrol-result", role: "status" });
  const form = el("form", { id: "enrol-form", class: "enrol" },
    el("h2", {}, t("enrolTitle")),
    el("label", {}, t("enrolAgent"), el("input", { id: "enrol-agent", name: "agent_id", required: true, pattern: "[A-Za-z0-9_\\-]{1,64}", placeholder: "dongcun-01" })),
    el("label", {}, t("enrolHours"), el("input", { id: "enrol-hours", name: "valid_hours", type: "number", min: "1", max: "720", value: "24", required: true })),
    el("button", { id: "enrol-submit", class: "primary", type: "submit" }, t("enrolCreate")),
    result);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await post("/api/enrolments", { agent_id: $("#enrol-agent").value.trim(), valid_hours: Number($("#enrol-hours").value) });
      result.replaceChildren(
        el("p", {}, `${t("enrolToken")}: `, el("code", { id: "enrol-token" }, r.token)),
        el("p", {}, t("enrolRun")),
        el("pre", { id: "enrol-command" }, r.command),
        el("p", { class: "muted" }, `${t("enrolUntil")} ${fmtTime(r.expires_ms)}. ${t("enrolOnce")}`));
    } catch (e) {
      result.replaceChildren(el("p", { class: "error", role: "alert" }, `${t("failed")}: ${e.message}`));
    }
  });
  return form;
}

// ── Wiring ───────────────────────────────────────────────────────────────────────────────
$("#lang").addEventListener("click", () => { toggleLanguage(); if (state.me) route(); else showLogin(); });
$("#logout").addEventListener("click", async () => { await post("/api/logout", {}).catch(() => {}); showLogin(); });
window.addEventListener("hashchange", route);
applyLanguage();
api("/api/me").then(start, () => showLogin());
