// What the console knows, shared by its views: who is logged in and what they may do, the
// center's vocabulary, and the alarms loaded so far.

export const state = {
  /** GET /api/me: the user, their permissions and the views they may open. */
  me: null,
  /** GET /api/vocabulary: kinds, statuses, and the steps each status allows. */
  vocabulary: null,
  alarms: new Map(), order: [], next: null, unack: new Set(), selected: null,
  units: [], events: null, view: "alarms",
  /** At a tier above: the county the alarm list is filtered to (from the counties' view), and
   * the time the counties' view counts (datetime-local values; empty: the last day). */
  county: "", countyWindow: { from: "", to: "" },
};

/** Whether the logged-in user's role has `permission` (as the center names it). */
export const can = (permission) => state.me?.permissions.includes(permission) ?? false;
