// At a city or province center: the counties whose events come here, each with its boxes
// online (as its center last reported) and its events counted (in all, still going on, by
// status, by kind) for the last day or the time chosen; counted again as events arrive. A
// county's name opens the alarm list filtered to it (and to that time), whose rows open an
// event. The county's duty officers act on its events; this view watches.

import { api } from "./api.js";
import { $, el } from "./dom.js";
import { fmtTime, label, shanghaiTime, t } from "./i18n.js";
import { state } from "./state.js";

/** Counted again at most this often while events arrive, ms. */
const RECOUNT_MS = 5000;
let recount = null;

export async function showCounties() {
  const input = (name) => el("label", {}, t(name), el("input", { id: `county-${name}`, type: "datetime-local", value: state.countyWindow[name] }));
  const form = el("form", { class: "filters", id: "county-window" }, input("from"), input("to"), el("button", { type: "submit" }, t("apply")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    state.countyWindow = { from: $("#county-from").value, to: $("#county-to").value };
    await renderCounties();
  });
  $("#main").replaceChildren(el("h1", {}, t("counties")), form, el("div", { id: "county-list" }));
  await renderCounties();
}

/** After an event arrived or changed: the counts again, once in a while, if they are shown. */
export function refreshCounties() {
  if (state.view !== "counties" || recount) return;
  recount = setTimeout(() => { recount = null; if (state.view === "counties") renderCounties(); }, RECOUNT_MS);
}

async function renderCounties() {
  const q = new URLSearchParams();
  for (const [name, v] of Object.entries(state.countyWindow)) if (v) q.set(name, shanghaiTime(v));
  const { counties, from_ms, to_ms } = await api(`/api/counties?${q}`);
  const statuses = state.vocabulary.statuses;
  const open = (county) => { state.county = county; location.hash = "#alarms"; };
  const table = el("table", { id: "county-table" },
    el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, t("county")), el("th", { scope: "col" }, t("boxesOnline")),
      el("th", { scope: "col" }, t("events")), el("th", { scope: "col" }, label("states", "ongoing")),
      ...statuses.map((s) => el("th", { scope: "col" }, label("statuses", s))),
      el("th", { scope: "col" }, t("kind")))),
    el("tbody", {}, ...counties.map((c) => el("tr", { "data-county": c.county },
      el("th", { scope: "row" }, el("button", { type: "button", class: "link", onclick: () => open(c.county) }, c.county)),
      el("td", { "data-count": "boxes", class: c.boxes && c.boxes.online < c.boxes.total ? "error" : null },
        c.boxes ? `${c.boxes.online} / ${c.boxes.total}` : "—",
        c.boxes ? el("div", { class: "muted" }, fmtTime(c.boxes.as_of_ms)) : null),
      el("td", { "data-count": "events" }, String(c.events)),
      el("td", { "data-count": "ongoing" }, String(c.ongoing)),
      ...statuses.map((s) => el("td", { "data-status": s }, String(c.by_status[s] || 0))),
      el("td", { class: "kinds" }, Object.entries(c.by_kind).map(([k, n]) => `${label("kinds", k)} ${n}`).join("，"))))));
  $("#county-list")?.replaceChildren(
    el("p", { class: "muted", id: "county-span" }, `${fmtTime(from_ms)} – ${fmtTime(to_ms)}`),
    counties.length ? table : el("p", { class: "muted" }, t("none")));
}
