// A responder unit's dispatches, phone-sized: each alarm dispatched to the unit, whether its
// event still goes on, its video clips, and the unit's next steps on it as the center allows
// them (from /api/vocabulary). Redrawn on every change (an ongoing event changes every few
// seconds), so the feedback being typed, its focus, the pictures already loaded and the clips'
// players are kept.

import { loadAlarms, post } from "./api.js";
import { $, clips, el, eventState, keepPlayers, players, snapshot, stepsHere } from "./dom.js";
import { fmtTime, label, t } from "./i18n.js";
import { state } from "./state.js";

/** The unit's last step on its dispatch of `a`, or "none" before its first. */
function progressOf(a) {
  const mine = stepsHere(a).filter((s) => state.vocabulary.unit_steps.includes(s.action) && s.units?.includes(state.me.unit));
  return mine.length ? mine[mine.length - 1].action : "none";
}

export async function showStation() {
  if (!$("#station-list")) {
    $("#main").replaceChildren(el("section", { class: "station" }, el("h1", {}, t("dispatches")), el("div", { id: "station-list" })));
    await loadAlarms(new URLSearchParams({ limit: "100" }));
  }
  const playing = players($("#station-list"));
  const pictures = new Map([...document.querySelectorAll("#station-list article[data-alarm-id] img")].map((i) => [i.closest("article").dataset.alarmId, i]));
  const active = document.activeElement;
  const typing = active?.name === "feedback" ? { id: active.closest("article")?.dataset.alarmId, from: active.selectionStart, to: active.selectionEnd } : null;
  $("#station-list").replaceChildren(...state.order.map((id) => state.alarms.get(id)).filter(Boolean).map((a) => {
    const done = progressOf(a);
    // The steps allowed next, the usual next one first.
    const allowed = state.vocabulary.unit_steps_allowed[done] || [];
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
      a.state ? el("p", { class: "event-line" }, eventState(a)) : null,
      snapshot(a),
      clips(a),
      el("p", {}, `${t("progress")}: `, el("span", { class: "progress", "data-progress": done }, label("progresses", done))),
      el("ol", { class: "steps" }, ...stepsHere(a).filter((s) => s.units?.includes(state.me.unit)).map((s) =>
        el("li", { "data-action": s.action }, `${fmtTime(s.at_ms)} ${label("actions", s.action)}${s.note ? ": " + s.note : ""}`))),
      allowed.length ? feedback : null,
      el("div", { class: "actions" }, ...state.vocabulary.unit_steps.map((action) => el("button", {
        type: "button", "data-action": action, class: allowed[0] === action ? "primary" : null,
        disabled: !allowed.includes(action), onclick: () => step(action),
      }, label("actions", action)))),
      el("p", { class: "error", role: "alert" }));
    // The picture already shown stays (no reload, no flicker) unless an update brought a better one.
    const img = article.querySelector("img");
    const shown = pictures.get(a.id);
    if (img && shown?.dataset.sha === img.dataset.sha) img.replaceWith(shown);
    keepPlayers(article, playing);
    return article;
  }));
  const again = typing?.id && $(`article[data-alarm-id="${CSS.escape(typing.id)}"] textarea[name="feedback"]`);
  if (again) { again.focus({ preventScroll: true }); again.setSelectionRange(typing.from, typing.to); }
}
