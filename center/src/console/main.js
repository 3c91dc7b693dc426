// The duty officers' console and the responder units' dispatch view: one page, no build step,
// no external resources (it must work on a county network without internet). Chinese first.
// This module logs in, opens the views the center says the user may open, and follows the
// live event stream; alarms.js, station.js, counties.js and fleet.js draw the views.

import { showAlarms, refreshAlarms } from "./alarms.js";
import { api, onUnauthorized, post } from "./api.js";
import { refreshCounties, showCounties } from "./counties.js";
import { $, announce, beep, el } from "./dom.js";
import { applyLanguage, label, t, toggleLanguage } from "./i18n.js";
import { showFleet } from "./fleet.js";
import { can, state } from "./state.js";
import { showStation } from "./station.js";

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
      const known = { "wrong login or password": "wrong", "too many failed log-ins: wait, then try again": "locked" }[e.message];
      error.textContent = known ? t(known) : `${t("failed")}: ${e.message}`;
    }
  });
  $("#main").replaceChildren(form);
  $("#login-user").focus();
}

/** The header's language button stays usable on the log-in page; the rest needs a user. */
function setLoggedIn(on) {
  for (const id of ["nav", "unack", "who", "logout"]) $(`#${id}`).hidden = !on;
}

// ── After log-in ─────────────────────────────────────────────────────────────────────────
async function start() {
  [state.me, state.vocabulary] = await Promise.all([api("/api/me"), api("/api/vocabulary")]);
  setLoggedIn(true);
  $("#who").textContent = `${state.me.name} (${state.me.role})`;
  $("#nav").replaceChildren(...state.me.views.map((v) => el("a", { href: `#${v}`, "data-t": v }, t(v))));
  if (can("read_alarms")) {
    state.units = can("act_on_alarms") ? await api("/api/units") : [];
    listen();
  }
  route();
}

function route() {
  if (!state.me) return;
  const wanted = location.hash.slice(1) || state.me.views[0] || "alarms";
  state.view = wanted;
  for (const a of document.querySelectorAll("#nav a")) a.toggleAttribute("aria-current", a.getAttribute("href") === `#${wanted}`);
  for (const a of document.querySelectorAll("#nav a")) if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  $("#unack").hidden = !can("act_on_alarms");
  if (wanted === "fleet") return showFleet();
  if (wanted === "counties") return showCounties();
  if (can("respond")) return showStation();
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
    if (change === "new" || (first && can("respond"))) {
      beep();
      announce(`${t("newAlarm")}: ${alarm.location || alarm.camera_id} ${label("kinds", alarm.kind)}`);
    }
    if (alarm.status === "new") state.unack.add(alarm.id); else state.unack.delete(alarm.id);
    if (state.view === "alarms" && can("respond")) {
      $("#unack-count").textContent = state.unack.size;
      showStation();
    } else {
      refreshAlarms(alarm.id, change === "new");
      refreshCounties();
    }
  });
  source.addEventListener("resync", () => route());
  // The center ends the stream with the session (the user disabled, idle too long): the
  // browser's reconnection is refused and it gives up. Ask who is logged in: a 401 shows the
  // log-in page; otherwise listen again.
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED && state.events === source) {
      api("/api/me").then(() => setTimeout(() => { if (state.events === source) listen(); }, 5000), () => {});
    }
  });
  state.events = source;
}

// ── Wiring ───────────────────────────────────────────────────────────────────────────────
onUnauthorized(() => showLogin());
$("#lang").addEventListener("click", () => { toggleLanguage(); if (state.me) route(); else showLogin(); });
$("#logout").addEventListener("click", async () => { await post("/api/logout", {}).catch(() => {}); showLogin(); });
window.addEventListener("hashchange", route);
applyLanguage();
api("/api/me").then(start, () => showLogin());
