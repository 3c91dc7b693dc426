// At a city or province center: the counties whose events come here, each with its boxes
// online (as its center last reported) and its events of the last day counted (in all, still
// going on, by status, by kind); a county's name opens the alarm list filtered to it, whose
// rows open an event. The county's duty officers act on its events; this view watches.

import { api } from "./api.js";
import { $, el } from "./dom.js";
import { fmtTime, label, t } from "./i18n.js";
import { state } from "./state.js";

export async function showCounties() {
  const { counties, from_ms, to_ms } = await api("/api/counties");
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
  $("#main").replaceChildren(el("h1", {}, t("counties")),
    el("p", { class: "muted" }, `${fmtTime(from_ms)} – ${fmtTime(to_ms)}`),
    counties.length ? table : el("p", { class: "muted" }, t("none")));
}
