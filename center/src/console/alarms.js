// The duty officers' alarm list and an alarm's detail, with the steps the center allows on it
// now (from /api/vocabulary: the console keeps no copy of the workflow). An event's agent keeps
// updating its alarm (持续中, then 已结束): such a change redraws its row and the detail where
// they stand, so the officer keeps the row in view, the focus, the choices and the note.

import { api, loadAlarms, post } from "./api.js";
import { $, clips, el, eventState, keepPlayers, players, snapshot, unitsHere } from "./dom.js";
import { fmtTime, label, shanghaiTime, t } from "./i18n.js";
import { can, state } from "./state.js";

/** The filters: [query parameter, input type, or the list whose names it offers]. */
const FILTERS = [["from", "datetime-local"], ["to", "datetime-local"], ["camera", "text"], ["kind", "kinds"], ["status", "statuses"], ["severity", "severities"], ["state", "states"]];
/** Lists /api/vocabulary has not: the two values of the API's `state=`. */
const LISTS = { states: ["ongoing", "ended"] };
/** The event state the list was loaded for: a live change to another state leaves the list. */
let shownState = "";
/** At a tier above, the county the list was loaded for: another county's live events stay out. */
let shownCounty = "";

function filterQuery() {
  const q = new URLSearchParams({ limit: "100" });
  for (const [name, kind] of filtersHere()) {
    const v = $(`#filter-${name}`)?.value;
    if (!v) continue;
    q.set(name, kind === "datetime-local" ? shanghaiTime(v) : v);
  }
  return q;
}

/** Loads the list for the filters as they are now (the first page, or with `more` the next). */
async function load(more = false) {
  const q = filterQuery();
  await loadAlarms(q, more);
  shownState = q.get("state") || "";
  shownCounty = state.county = q.get("county") || "";
}

async function loadUnack() {
  if (!can("act_on_alarms")) return;
  const page = await api("/api/alarms?status=new&limit=500");
  state.unack = new Set(page.alarms.map((a) => a.id));
  $("#unack-count").textContent = state.unack.size;
}

/** After alarm `id` changed (or arrived, `fresh`): the counter, its row and the open detail. */
export function refreshAlarms(id, fresh) {
  $("#unack-count").textContent = state.unack.size;
  if (state.view !== "alarms") return;
  renderList(fresh ? id : null);
  if (state.selected === id) renderDetail(id);
}

/** Whether this center is a tier above: its events come from counties. */
const above = () => state.me.views.includes("counties");
/** The filters this user has: at a tier above, the county too. */
const filtersHere = () => above() ? [["county", "text"], ...FILTERS] : FILTERS;

export async function showAlarms() {
  const filters = el("form", { class: "filters", id: "filters" },
    ...filtersHere().map(([name, kind]) => el("label", {}, t(name),
      kind === "datetime-local" || kind === "text"
        ? el("input", { id: `filter-${name}`, type: kind })
        : el("select", { id: `filter-${name}` }, el("option", { value: "" }, t("all")),
            ...(state.vocabulary[kind] || LISTS[kind]).map((k) => el("option", { value: k }, label(kind, k)))))),
    el("button", { type: "submit" }, t("apply")));
  filters.addEventListener("submit", async (ev) => { ev.preventDefault(); await load(); renderList(); });
  // Drilled down from the counties: that county, in the time its counts were for.
  const county = filters.querySelector("#filter-county");
  if (county) county.value = state.county;
  for (const name of ["from", "to"]) if (state.countyWindow[name]) $(`#filter-${name}`, filters).value = state.countyWindow[name];
  const table = el("table", { id: "alarm-list" },
    el("thead", {}, el("tr", {}, ...[above() ? "county" : null, "time", "camera", "kind", "severity", "status", "event", "location"].filter(Boolean).map((h) => el("th", { scope: "col" }, t(h))))),
    el("tbody"));
  $("#main").replaceChildren(el("div", { class: "layout" },
    el("section", { "aria-label": t("alarms") }, filters, table, el("p", {}, el("button", { id: "more", type: "button", onclick: async () => { await load(true); renderList(); } }, t("more")))),
    el("section", { id: "detail", class: "panel", "aria-live": "polite" }, el("p", { class: "muted" }, t("noAlarm")))));
  await Promise.all([load(), loadUnack()]);
  renderList();
  if (state.selected) renderDetail(state.selected);
}

/**
 * The list in state.order, keyed by alarm: a row already there is filled anew where it stands
 * (an event's update changes its row, never adds one), so focus and scrolling stay; only new rows
 * are inserted and rows that left the list removed. `freshId` is highlighted as new.
 */
function renderList(freshId = null) {
  const body = $("#alarm-list tbody");
  if (!body) return;
  const rows = new Map([...body.rows].map((r) => [r.dataset.alarmId, r]));
  let at = body.firstElementChild;
  for (const a of state.order.map((id) => state.alarms.get(id))) {
    if (!a || (shownState && a.state !== shownState)) continue;
    if (shownCounty && a.forwarded?.county !== shownCounty) continue;
    const tr = rows.get(a.id) || newRow(a.id);
    rows.delete(a.id);
    fillRow(tr, a, a.id === freshId);
    if (tr === at) at = at.nextElementSibling; else body.insertBefore(tr, at);
  }
  for (const gone of rows.values()) gone.remove();
  $("#more").hidden = !state.next;
}

function newRow(id) {
  const open = () => { state.selected = id; renderList(); renderDetail(id); };
  const tr = el("tr", {
    tabindex: 0, "data-alarm-id": id, onclick: open,
    onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); } },
    onanimationend: () => tr.classList.remove("fresh"),
  });
  return tr;
}

function fillRow(tr, a, fresh) {
  tr.dataset.status = a.status;
  tr.dataset.state = a.state || "";
  tr.setAttribute("aria-selected", String(state.selected === a.id));
  if (fresh) tr.classList.add("fresh");
  tr.replaceChildren(
    ...(above() ? [el("td", { "data-county": a.forwarded?.county || "" }, a.forwarded?.county || "")] : []),
    el("td", {}, fmtTime(a.event_time_ms)),
    el("td", {}, a.camera_id ? `${a.agent_id}/${a.camera_id}` : a.agent_id),
    el("td", {}, label("kinds", a.kind)),
    el("td", { class: `sev-${a.severity}` }, label("severities", a.severity)),
    el("td", {}, el("span", { class: "status", "data-status": a.status }, label("statuses", a.status))),
    el("td", {}, eventState(a)),
    el("td", {}, a.location || ""));
}

function steps(list, id = "timeline") {
  return el("ol", { id, class: "steps" }, ...(list || []).map((s) => el("li", { "data-action": s.action },
    `${fmtTime(s.at_ms)} ${label("actions", s.action)} — ${s.by}`,
    s.units?.length ? ` → ${s.units.join(", ")}` : "", s.note ? `: ${s.note}` : "")));
}

async function renderDetail(id) {
  const pane = $("#detail");
  const a = state.alarms.get(id);
  if (!pane || !a) return;
  // Re-rendered on every change of the alarm (an event's agent updates it every few seconds):
  // keep what the officer was typing, the units they chose while the status stands, where the
  // focus was, the picture unless a better one came, and the clips' players (playing or not).
  const same = pane.dataset.alarmId === id;
  const sameStep = same && pane.dataset.status === a.status;
  const typed = same ? $("#action-note")?.value || "" : "";
  const chosen = new Map(sameStep ? [...pane.querySelectorAll('input[name="unit"]')].map((i) => [i.value, i.checked]) : []);
  const focused = same && pane.contains(document.activeElement) ? document.activeElement : null;
  const oldPicture = same ? $("#detail-snapshot") : null;
  const oldPlayers = same ? players(pane) : new Map();
  const oldHooks = sameStep ? $("#webhooks") : null;
  pane.dataset.alarmId = id;
  pane.dataset.status = a.status;
  const note = el("textarea", { id: "action-note", "aria-label": t("note"), placeholder: t("note") }, typed);
  const canAct = can("act_on_alarms");
  const sent = unitsHere(a);
  // Routing suggests units for this center's own alarms; one forwarded from below was routed there.
  const suggested = new Set(sent.length || a.forwarded ? [] : a.routed_to || []);
  const units = el("fieldset", { class: "units" }, el("legend", {}, t("dispatchTo")),
    ...state.units.map((u) => el("label", {}, el("input", {
      type: "checkbox", name: "unit", value: u.id, checked: chosen.has(u.id) ? chosen.get(u.id) : suggested.has(u.id), disabled: sent.includes(u.id),
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
  // An event forwarded from below is its county's case: here only this center's own units are
  // sent, whatever its status.
  const offered = a.forwarded ? state.vocabulary.forwarded_steps : state.vocabulary.center_steps;
  const allowed = a.forwarded ? offered : state.vocabulary.steps_allowed[a.status] || [];
  const picture = snapshot(a);
  const img = picture.querySelector("img");
  if (img && oldPicture?.dataset.sha === img.dataset.sha) img.replaceWith(oldPicture);
  const film = clips(a);
  if (film) keepPlayers(film, oldPlayers);
  const when = a.state === "ended" ? a.ended_ms : a.updated_ms;
  pane.replaceChildren(
    el("h2", {}, `${label("kinds", a.kind)} · ${a.location || a.camera_id}`),
    el("p", {}, el("span", { id: "detail-status", class: "status", "data-status": a.status }, label("statuses", a.status)), " ",
      el("span", { class: `sev-${a.severity}` }, label("severities", a.severity)), " ",
      el("span", { class: "muted" }, `${fmtTime(a.event_time_ms)} · ${a.agent_id}/${a.camera_id} · ${a.detections.length}× ${[...new Set(a.detections.map((d) => d.class))].join(", ")}`)),
    a.detail ? el("p", { id: "detail-supervision", class: "error" }, a.detail) : null,
    a.forwarded ? el("p", { id: "detail-forwarded", class: "muted" }, t("forwardedFrom")(a.forwarded.county)) : null,
    a.state ? el("p", { id: "detail-event" }, eventState(a),
      when ? el("span", { class: "muted" }, ` · ${t(a.state === "ended" ? "endedAt" : "updatedAt")} ${fmtTime(when)}`) : null) : null,
    picture,
    film,
    canAct && allowed.length ? el("div", {}, note, units,
      el("div", { class: "actions" }, ...offered.map((action) =>
        el("button", { type: "button", "data-action": action, class: action === allowed[0] ? "primary" : null, disabled: !allowed.includes(action), onclick: () => act(action) }, label("actions", action)))),
      el("p", { id: "action-error", class: "error", role: "alert" })) : null,
    el("h3", {}, t("timeline")), steps(a.timeline),
    a.forwarded ? el("h3", {}, t("ownSteps")) : null, a.forwarded ? steps(a.own?.timeline, "own-timeline") : null,
    canAct && sent.length ? el("h3", {}, t("webhooks")) : null,
    canAct && sent.length ? el("ul", { id: "webhooks", class: "steps" }) : null,
    canAct ? el("h3", {}, t("audit")) : null, canAct ? el("ol", { id: "audit", class: "steps" }) : null);
  if (focused) refocus(pane, focused);
  if (canAct) {
    // A webhook that failed for good shows here, beside the steps (and is raised as its own
    // event). Fetched when the alarm is opened or its status changes: each fetch is audited.
    if (oldHooks) $("#webhooks")?.replaceWith(oldHooks);
    else if (sent.length) {
      const detail = await api(`/api/alarms/${encodeURIComponent(id)}`).catch(() => ({ webhooks: [] }));
      $("#webhooks")?.replaceChildren(...detail.webhooks.map((w) => el("li", { "data-state": w.state },
        `${w.unit_id}: ${label("deliveries", w.state)} (${w.attempts})${w.last_error ? " — " + w.last_error : ""}`)));
    }
    const trail = await api(`/api/alarms/${encodeURIComponent(id)}/audit`).catch(() => []);
    $("#audit")?.replaceChildren(...trail.map((e) => el("li", {}, `${fmtTime(e.time_ms)} ${e.user} ${e.action}${e.detail ? ": " + e.detail : ""}`)));
  }
}

/** Puts the focus back on the control in `pane` that stands for `was` (the note, a unit, a step). */
function refocus(pane, was) {
  const like = was.id ? `#${CSS.escape(was.id)}`
    : was.dataset.action ? `button[data-action="${CSS.escape(was.dataset.action)}"]`
      : was.name === "unit" ? `input[name="unit"][value="${CSS.escape(was.value)}"]` : null;
  const now = like && pane.querySelector(like);
  if (!now || now.disabled) return;
  now.focus({ preventScroll: true });
  if (now instanceof HTMLTextAreaElement) now.setSelectionRange(was.selectionStart, was.selectionEnd, was.selectionDirection);
}
