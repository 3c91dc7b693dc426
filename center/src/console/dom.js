// Building the page: elements, the screen reader's announcements, the new-alarm tone, an
// alarm's picture with its text alternative, its event's video clips, and where its event
// stands (the list, the detail and the station show it alike).

import { fmtDuration, fmtTime, label, t } from "./i18n.js";

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
  // data-sha names the picture: an update with a better one changes it, any other change not.
  // So does the address: a page shows the picture it already has for an address (the center's
  // no-store notwithstanding), and the center ignores the query.
  const sha = a.snapshot_sha256 || "";
  const src = `/api/alarms/${encodeURIComponent(a.id)}/snapshot${sha ? `?v=${sha.slice(0, 16)}` : ""}`;
  return el("div", { class: "snapshot" }, el("img", { id: "detail-snapshot", src, alt, "data-sha": `${sha}:${a.snapshot_bytes}` }));
}

/**
 * The event's video clips, each a player (the center serves it by byte ranges, so it starts at
 * once and seeks) and a download link with its SHA-256 (short; all of it in the title), which
 * lets a copy be checked against the one the box signed. Nothing if there are none.
 */
export function clips(a) {
  if (!a.clips?.length) return a.clips_expired ? el("p", { class: "muted" }, t("clipsExpired")) : null;
  return el("div", { class: "clips" }, el("h3", {}, t("clips")), ...a.clips.map((c) => {
    // By its event: an event forwarded from below has its clips fetched from there.
    const src = `/api/alarms/${encodeURIComponent(a.id)}/clips/${encodeURIComponent(c.clip_id)}`;
    const what = `${t("clipOf")}: ${a.location || c.camera_id} ${label("kinds", a.kind)} ${fmtTime(c.start_time_ms)}`;
    return el("figure", { class: "clip" },
      el("video", { controls: true, preload: "metadata", src, "aria-label": what, "data-clip-id": c.clip_id }),
      el("figcaption", { class: "muted" },
        `${fmtTime(c.start_time_ms)} · ${fmtDuration(c.duration_ms)} · ${c.width}×${c.height} · ${label("streams", c.stream)}`,
        c.masked ? ` · ${t("clipMasked")}` : "", " ",
        el("a", { href: `${src}?download=1`, download: `${c.clip_id}.mp4`, title: `SHA-256 ${c.sha256}` },
          `${t("clipDownload")} (SHA-256 ${c.sha256.slice(0, 12)}…)`)));
  }));
}

/** Puts back into `root` the players of `old` (by clip), so a redraw neither reloads nor stops them. */
export function keepPlayers(root, old) {
  for (const video of root.querySelectorAll("video[data-clip-id]")) {
    const playing = old.get(video.dataset.clipId);
    if (playing) video.replaceWith(playing);
  }
}

/** The units this center sent `a` to: of an event forwarded from below, its own (the county's are the county's). */
export const unitsHere = (a) => (a.forwarded ? a.own?.dispatched_to : a.dispatched_to) || [];

/** The steps this center took on `a`: of an event forwarded from below, its own. */
export const stepsHere = (a) => (a.forwarded ? a.own?.timeline : a.timeline) || [];

/** The players under `root`, by clip. */
export const players = (root) => new Map([...(root?.querySelectorAll("video[data-clip-id]") || [])].map((v) => [v.dataset.clipId, v]));

/**
 * Where the alarm's event stands, from the center's record: 持续中 (ongoing) or 已结束 (ended),
 * how long it has lasted as its agent last said (duration_ms), the most people or objects seen
 * at once, and 仍在持续 while it goes on after a reminder.
 */
export function eventState(a) {
  if (!a.state) return null;
  const people = a.detections?.length > 0 && a.detections.every((d) => d.class === "person");
  return el("span", { class: "event", "data-state": a.state },
    el("span", { class: "event-state" }, label("states", a.state)),
    a.duration_ms > 0 ? [" ", el("span", { class: "event-duration" }, fmtDuration(a.duration_ms))] : null,
    a.peak_count > 0 ? [" ", el("span", { class: "event-peak" }, t("peak")(a.peak_count, people))] : null,
    a.state === "ongoing" && a.reminders > 0
      ? [" ", el("span", { class: "badge event-reminder", title: t("reminders")(a.reminders) }, t("reminder"))] : null);
}
