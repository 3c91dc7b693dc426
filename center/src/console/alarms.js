// The duty officers' alarm list and an alarm's detail, with the steps the center allows on it
// now (from /api/vocabulary: the console keeps no copy of the workflow).

import { api, loadAlarms, post } from "./api.js";
import { $, el, snapshot } from "./dom.js";
import { fmtTime, label, t } from "./i18n.js";
import { can, state } from "./state.js";

/** The filters: [query parameter, input type, or the vocabulary list whose names it offers]. */
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

async function loadUnack() {
  if (!can("act_on_alarms")) return;
  const page = await api("/api/alarms?status=new&limit=500");
  state.unack = new Set(page.alarms.map((a) => a.id));
  $("#unack-count").textContent = state.unack.size;
}

/** After alarm `id` changed (or arrived, `fresh`): the counter, the list and the open detail. */
export function refreshAlarms(id, fresh) {
  $("#unack-count").textContent = state.unack.size;
  if (state.view !== "alarms") return;
  renderList(fresh ? id : null);
  if (state.selected === id) renderDetail(id);
}

export async function showAlarms() {
  const filters = el("form", { class: "filters", id: "filters" },
    ...FILTERS.map(([name, kind]) => el("label", {}, t(name),
      kind === "datetime-local" || kind === "text"
        ? el("input", { id: `filter-${name}`, type: kind })
        : el("select", { id: `filter-${name}` }, el("option", { value: "" }, t("all")),
            ...state.vocabulary[kind].map((k) => el("option", { value: k }, label(kind, k)))))),
    el("button", { type: "submit" }, t("apply")));
  filters.addEventListener("submit", async (ev) => { ev.preventDefault(); await loadAlarms(filterQuery()); renderList(); });
  const table = el("table", { id: "alarm-list" },
    el("thead", {}, el("tr", {}, ...["time", "camera", "kind", "severity", "status", "location"].map((h) => el("th", { scope: "col" }, t(h))))),
    el("tbody"));
  $("#main").replaceChildren(el("div", { class: "layout" },
    el("section", { "aria-label": t("alarms") }, filters, table, el("p", {}, el("button", { id: "more", type: "button", onclick: async () => { await loadAlarms(filterQuery(), true); renderList(); } }, t("more")))),
    el("section", { id: "detail", class: "panel", "aria-live": "polite" }, el("p", { class: "muted" }, t("noAlarm")))));
  await Promise.all([loadAlarms(filterQuery()), loadUnack()]);
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
  const canAct = can("act_on_alarms");
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
      refreshAlarms(id, false);
    } catch (e) { $("#action-error").textContent = `${t("failed")}: ${e.message}`; }
  };
  // The center says which steps this status allows, the usual next one first; none once closed.
  const allowed = state.vocabulary.steps_allowed[a.status] || [];
  pane.replaceChildren(
    el("h2", {}, `${label("kinds", a.kind)} · ${a.location || a.camera_id}`),
    el("p", {}, el("span", { id: "detail-status", class: "status", "data-status": a.status }, label("statuses", a.status)), " ",
      el("span", { class: `sev-${a.severity}` }, label("severities", a.severity)), " ",
      el("span", { class: "muted" }, `${fmtTime(a.event_time_ms)} · ${a.agent_id}/${a.camera_id} · ${a.detections.length}× ${[...new Set(a.detections.map((d) => d.class))].join(", ")}`)),
    snapshot(a),
    canAct && allowed.length ? el("div", {}, note, units,
      el("div", { class: "actions" }, ...state.vocabulary.center_steps.map((action) =>
        el("button", { type: "button", "data-action": action, class: action === allowed[0] ? "primary" : null, disabled: !allowed.includes(action), onclick: () => act(action) }, label("actions", action)))),
      el("p", { id: "action-error", class: "error", role: "alert" })) : null,
    el("h3", {}, t("timeline")), steps(a),
    canAct ? el("h3", {}, t("audit")) : null, canAct ? el("ol", { id: "audit", class: "steps" }) : null);
  if (canAct) {
    const trail = await api(`/api/alarms/${encodeURIComponent(id)}/audit`).catch(() => []);
    $("#audit")?.replaceChildren(...trail.map((e) => el("li", {}, `${fmtTime(e.time_ms)} ${e.user} ${e.action}${e.detail ? ": " + e.detail : ""}`)));
  }
}
