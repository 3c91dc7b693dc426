// Building the page: elements, the screen reader's announcements, the new-alarm tone, and an
// alarm's picture with its text alternative.

import { fmtTime, label, t } from "./i18n.js";

export const $ = (sel, root = document) => root.querySelector(sel);

/** Builds an element: el("button", {type: "button", onclick}, "text", child...). */
export function el(tag, attrs = {}, ...children) {
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

/** A short tone for a new alarm (no sound file: nothing to download). */
export function beep() {
  try {
    const ctx = beep.ctx || (beep.ctx = new AudioContext());
    const osc = ctx.createOscillator(); const gain = ctx.createGain();
    osc.frequency.value = 880; gain.gain.value = 0.15;
    osc.connect(gain).connect(ctx.destination); osc.start(); osc.stop(ctx.currentTime + 0.25);
  } catch { /* no audio device: the visual cue remains */ }
}

export function announce(text) { $("#announce").textContent = text; }

/** The alarm's snapshot, described for those who cannot see it; or why there is none. */
export function snapshot(a) {
  if (!a.snapshot_bytes || a.snapshot_expired) return el("p", { class: "muted" }, t("noSnapshot"));
  const alt = `${t("snapshotOf")}: ${a.location || a.camera_id} ${label("kinds", a.kind)} ${fmtTime(a.event_time_ms)}`;
  return el("div", { class: "snapshot" }, el("img", { id: "detail-snapshot", src: `/api/alarms/${encodeURIComponent(a.id)}/snapshot`, alt }));
}
