// The fleet: every agent with its cameras, health and config version; the center's
// registration with each GB/T 28181 platform above, if it reports to any; for those who configure
// boxes, the form that pushes a config (the center's refusal shown as it says it, and a
// confirmation asked for when a push would take a camera or privacy mask away); for an
// administrator, the form that makes a new box's one-time enrolment token.

import { api, post } from "./api.js";
import { $, el } from "./dom.js";
import { fmtTime, label, t } from "./i18n.js";
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
  const { platforms } = await api("/api/gb28181");
  $("#main").replaceChildren(el("h1", {}, t("fleet")), table, platformTable(platforms),
    can("configure") ? pushForm(agents.map((a) => a.agent_id)) : "",
    can("administer") ? enrolForm() : "");
}

/** The GB/T 28181 platforms above and the center's registration with each (nothing if none). */
function platformTable(platforms) {
  if (!platforms.length) return "";
  return el("section", {},
    el("h2", {}, t("gbTitle")),
    el("table", { id: "gb28181-table" },
      el("thead", {}, el("tr", {}, ...["gbPlatform", "status", "gbKeepalive", "gbSent", "gbWaiting"].map((h) => el("th", { scope: "col" }, t(h))))),
      el("tbody", {}, ...platforms.map((p) => el("tr", { "data-platform-id": p.id, class: p.state === "registered" ? null : "offline" },
        el("td", {}, p.name, el("div", { class: "muted" }, `${p.id} · ${p.address}`)),
        el("td", {}, label("gbStates", p.state), el("div", { class: "muted" }, `${t("since")} ${fmtTime(p.since_ms)}`),
          p.last_error && p.state !== "registered" ? el("div", { class: "error" }, p.last_error) : null),
        el("td", {}, p.last_keepalive_ms ? fmtTime(p.last_keepalive_ms) : ""),
        el("td", {}, String(p.alarms_sent)),
        el("td", {}, String(p.alarms_waiting)))))));
}

/** What a push would take away (an `affected` entry of the center's 409), in the console's words. */
function loss(a) {
  if (a.camera === null) return t("lossNoCamera");
  if (a.mask === null) return t("lossStopped")(a.camera);
  return t(a.change === "shrunk" ? "lossShrunk" : "lossRemoved")(a.camera, a.mask + 1);
}

/** The form that pushes a TOML config to a box (one of `agents`, or one awaiting enrolment),
 * loaded with the config it has. */
function pushForm(agents) {
  const result = el("div", { id: "push-result", role: "status" });
  const agent = el("input", { id: "push-agent", name: "agent_id", list: "push-agents", required: true, pattern: "[A-Za-z0-9_\\-]{1,64}", value: agents[0] || "" });
  const toml = el("textarea", { id: "push-toml", name: "config", rows: "16", spellcheck: "false" });
  const load = async () => {
    result.replaceChildren();
    if (!agent.checkValidity()) return;
    try {
      toml.value = (await api(`/api/agents/${encodeURIComponent(agent.value)}/config`)).config_toml;
    } catch (e) {
      toml.value = "";
      if (e.status !== 404) result.replaceChildren(el("p", { class: "error", role: "alert" }, `${t("failed")}: ${e.message}`));
    }
  };
  agent.addEventListener("change", load);
  const send = async (confirm) => {
    const query = confirm ? `?confirm=${encodeURIComponent(confirm)}` : "";
    try {
      const r = await api(`/api/agents/${encodeURIComponent(agent.value)}/config${query}`,
        { method: "PUT", headers: { "content-type": "application/toml" }, body: toml.value });
      result.replaceChildren(el("p", { id: "push-done" }, t("pushed")(r.version)));
    } catch (e) {
      if (e.status === 409 && e.body?.confirm) {
        // The center names each camera and mask; the user decides, then the same push goes again.
        const go = el("button", { id: "push-confirm", class: "primary", type: "button", onclick: () => send(e.body.confirm) }, t("pushConfirm"));
        const cancel = el("button", { type: "button", onclick: () => result.replaceChildren() }, t("pushCancel"));
        result.replaceChildren(el("div", { id: "push-ask", role: "alert" },
          el("p", {}, t("pushAsk")),
          el("ul", {}, ...(e.body.affected || []).map((a) => el("li", {}, loss(a)))),
          el("p", { class: "muted" }, e.message), go, " ", cancel));
        go.focus();
      } else if (e.status === 422) {
        // As `xl-agent check-config` prints it: FILE:LINE:COL: option: problem, and its hint.
        result.replaceChildren(el("p", { class: "error", role: "alert" }, t("pushInvalid")),
          el("pre", { id: "push-problems" }, e.message));
      } else {
        result.replaceChildren(el("p", { class: "error", role: "alert" }, `${t("failed")}: ${e.message}`));
      }
    }
  };
  const form = el("form", { id: "push-form", class: "enrol" },
    el("h2", {}, t("pushTitle")),
    el("label", {}, t("agent"), agent),
    el("datalist", { id: "push-agents" }, ...agents.map((id) => el("option", { value: id }))),
    el("label", {}, t("pushToml"), toml),
    el("button", { id: "push-submit", class: "primary", type: "submit" }, t("pushSubmit")),
    result);
  form.addEventListener("submit", (ev) => { ev.preventDefault(); send(""); });
  if (agents.length) load();
  return form;
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
