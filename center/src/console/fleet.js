// The fleet: every agent with its cameras, health and config version; for an administrator,
// the form that makes a new box's one-time enrolment token.

import { api, post } from "./api.js";
import { $, el } from "./dom.js";
import { fmtTime, t } from "./i18n.js";
import { can } from "./state.js";

export async function showFleet() {
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
  $("#main").replaceChildren(el("h1", {}, t("fleet")), table, can("administer") ? enrolForm() : "");
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
