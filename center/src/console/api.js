// Talking to the center: JSON requests with the session cookie, and loading alarms.

import { state } from "./state.js";

let unauthorized = () => {};

/** What to do when the session has ended (a 401 from anything but the log-in). */
export function onUnauthorized(handler) { unauthorized = handler; }

export async function api(path, options = {}) {
  const resp = await fetch(path, { credentials: "same-origin", ...options });
  if (resp.status === 401 && path !== "/api/login") { unauthorized(); throw new Error("401"); }
  const body = resp.headers.get("content-type")?.includes("json") ? await resp.json() : null;
  // The status and body go with the error: a refusal may say more than its message (a 409's
  // confirmation, a 422's problems).
  if (!resp.ok) throw Object.assign(new Error(body?.error || resp.statusText), { status: resp.status, body });
  return body;
}

export const post = (path, body) => api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

/** A page of alarms matching `query` into the state: the first page, or with `more` the next. */
export async function loadAlarms(query, more = false) {
  if (more && state.next) query.set("cursor", state.next);
  const page = await api(`/api/alarms?${query}`);
  if (!more) { state.order = []; }
  for (const a of page.alarms) {
    // An event's update may have come live while this page was on its way: keep the newer.
    const known = state.alarms.get(a.id);
    if (!known || (known.update_seq || 0) <= (a.update_seq || 0)) state.alarms.set(a.id, a);
    if (!state.order.includes(a.id)) state.order.push(a.id);
  }
  state.next = page.next_cursor || null;
}
