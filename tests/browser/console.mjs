// The center's web console in a real browser (Debian's Chromium, driven by playwright-core).
// Run by tests/console.rs, which starts the center and answers this script's requests:
//
//   stdout, one line each:  need-alarm ID   publish alarm ID now (as agent village-a)
//                           need-event ID PEOPLE
//                                           publish alarm ID opening an event, PEOPLE people seen
//                           need-update ID SEQ PEAK DURATION_MS ongoing|ended [picture] [reminder]
//                                           publish update SEQ of event ID (with a better,
//                                           400 px wide picture; as a reminder)
//                           need-clip ID    publish a clip of stored alarm ID (a 4 s H.264 MP4,
//                                           320×240, in signed chunks, as ID's agent)
//                           shot PATH       a screenshot was written
//                           fail: WHY       the test failed (what a user would see)
//                           done            every check passed
//                           anything else   progress, printed by the Rust side
//   environment:            XL_URL, XL_SHOTS, XL_DUTY_USER, XL_DUTY_PASSWORD, XL_POLICE_USER,
//                           XL_POLICE_PASSWORD, XL_ADMIN_USER, XL_ADMIN_PASSWORD, XL_EARLIER_ALARM
//                           (stored before login, routed to nobody), XL_ENDED_EVENT (an event
//                           opened, updated and ended before login, 3 people at most, lasting 1 s),
//                           XL_CHROMIUM (default /usr/bin/chromium)
//
// Checked, besides the alarm's and the event's ways through the console: a clip published for
// the alarm the duty officer has open appears in its detail without a reload and plays to its
// end (a real duration of over 3 s, the clip's own), with a download link giving its SHA-256
// and bringing the very bytes of that hash; the police station's card of that dispatched alarm
// has its player and plays it too, while the clip of the alarm not dispatched to the station is
// neither shown to it nor served to it.
//
// By hand, against a center you started: XL_URL=http://127.0.0.1:8080 ... node console.mjs
// (it then waits for someone to publish the alarms it asks for).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const say = (line) => process.stdout.write(`${line}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A failed check, worded as what the user would see. */
class Failure extends Error {}
const fail = (why) => {
  throw new Failure(why);
};

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (!value) {
    say(`fail: ${name} is not set (tests/console.rs sets it)`);
    process.exit(2);
  }
  return value;
}

const BASE = env('XL_URL').replace(/\/$/, '');
const SHOTS = env('XL_SHOTS');
const DUTY = { user: env('XL_DUTY_USER'), password: env('XL_DUTY_PASSWORD') };
const POLICE = { user: env('XL_POLICE_USER'), password: env('XL_POLICE_PASSWORD') };
const EARLIER = env('XL_EARLIER_ALARM', 'village-b-000');
const ENDED = env('XL_ENDED_EVENT', 'village-d-cam-0-00000');
const CHROMIUM = env('XL_CHROMIUM', '/usr/bin/chromium');
/** The alarm this script asks for; tests/console.rs publishes it for agent village-a. */
const ALARM = 'village-a-001';
/** The events this script opens, updates and ends (as agent village-a). */
const EVENT = 'village-a-evt-1';
const EVENT2 = 'village-a-evt-2';
/** The snapshots' widths (tests/console.rs): they tell which alarm a picture is. */
const WIDTH = { [ALARM]: 320, [EARLIER]: 160, [EVENT]: 320, better: 400 };
/** routing.toml's name of village A's cameras' place. */
const PLACE = 'A村水库';
const FEEDBACK = '已到场，系村民钓鱼，已劝离水库';
/** This script gives up (and says where it was) before tests/console.rs does. */
const OWN_DEADLINE_MS = 85_000;

let stage = 'starting';
const pages = {}; // name → page, for screenshots when a check fails
const pageErrors = [];
const assetErrors = [];
const shots = [];

// --- helpers ---------------------------------------------------------------------------------

/** Polls `probe` (→ { ok, seen }) until ok; fails after `ms` with `what` and what was seen last. */
async function until(ms, what, probe) {
  const t0 = Date.now();
  let seen = '';
  for (;;) {
    try {
      const r = await probe();
      if (r.ok) return r;
      seen = r.seen ?? seen;
    } catch (e) {
      seen = String(e.message).split('\n')[0];
    }
    if (Date.now() - t0 >= ms) fail(seen ? `${what} (${seen})` : what);
    await sleep(50);
  }
}

/** In the page: what `selector` finds, or null. */
function inspect(page, selector) {
  return page.evaluate((sel) => {
    const e = document.querySelector(sel);
    if (!e) return null;
    return {
      text: e.textContent.trim().replace(/\s+/g, ' '),
      shown: e.checkVisibility({ visibilityProperty: true }),
      attrs: Object.fromEntries([...e.attributes].map((a) => [a.name, a.value])),
      img: e instanceof HTMLImageElement ? { complete: e.complete, width: e.naturalWidth, src: e.currentSrc } : null,
      checked: e instanceof HTMLInputElement ? e.checked : null,
    };
  }, selector);
}

async function waitShown(page, selector, ms, what) {
  await until(ms, what, async () => {
    const e = await inspect(page, selector);
    return { ok: e?.shown, seen: e ? `${selector} is there but hidden` : `no ${selector} in the page` };
  });
}

async function isShown(page, selector) {
  return (await inspect(page, selector))?.shown ?? false;
}

/** Waits until `selector`'s text (trimmed) is `expected`. */
async function waitText(page, selector, expected, ms, what) {
  await until(ms, what, async () => {
    const e = await inspect(page, selector);
    return { ok: e?.text === expected, seen: e ? `it says "${e.text}"` : `no ${selector}` };
  });
}

/** Waits until the picture `selector` has loaded, `width` pixels wide, with a non-empty alt. */
async function waitPicture(page, selector, width, ms, what) {
  const e = await until(ms, what, async () => {
    const e = await inspect(page, selector);
    if (!e) return { ok: false, seen: `no ${selector}` };
    const { complete, width: w, src } = e.img ?? {};
    return { ok: complete && w === width, seen: `naturalWidth ${w}, complete ${complete}, src ${src}`, e };
  });
  if (!(e.e.attrs.alt ?? '').trim()) fail(`${what}: the picture has no text alternative (alt is empty)`);
}

async function unackCount(page, what) {
  const { n } = await until(5000, what, async () => {
    const e = await inspect(page, '#unack-count');
    const n = e && /^\d+$/.test(e.text) ? Number(e.text) : NaN;
    return { ok: Number.isInteger(n), n, seen: e ? `#unack-count says "${e.text}"` : 'no #unack-count' };
  });
  return n;
}

async function screenshot(page, name) {
  const path = join(SHOTS, name);
  await page.screenshot({ path, fullPage: true });
  shots.push(path);
  say(`shot ${path}`);
}

async function open(context, name) {
  const page = await context.newPage();
  page.setDefaultTimeout(5000);
  page.setDefaultNavigationTimeout(10_000);
  pages[name] = page;
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && console.error(`[${name}] console: ${m.text()}${m.location()?.url ? ` (${m.location().url})` : ''}`));
  page.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    // The API's refusals are checked where they matter; the browser's own favicon request is no file of the console.
    if (r.status() >= 400 && !path.startsWith('/api/') && path !== '/favicon.ico') assetErrors.push(`${path} answered ${r.status()}`);
  });
  const resp = await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
  if (!resp?.ok()) fail(`GET ${BASE}/ answered ${resp?.status()}: the console is not served`);
  return page;
}

async function logIn(page, { user, password }) {
  await waitShown(page, '#login-form', 10_000, `no login form (#login-form) at ${BASE}/ within 10 s`);
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
}

/** Every control in view is reachable with Tab; every picture has a text alternative. */
async function checkKeyboardAndPictures(page, view) {
  const found = await page.evaluate(() => {
    const describe = (e) => {
      const id = e.id ? `#${e.id}` : '';
      const action = e.dataset.action ? `[data-action=${e.dataset.action}]` : '';
      const label = (e.textContent || e.value || e.getAttribute('aria-label') || e.name || '').trim().slice(0, 24);
      return `${e.tagName.toLowerCase()}${id}${action}${label ? ` "${label}"` : ''}`;
    };
    const out = { negative: [], noHref: [], disabled: 0, targets: [], noAlt: [] };
    document.querySelectorAll('button, a, input, select, textarea').forEach((e, i) => {
      e.dataset.xlTab = String(i);
      if (!e.checkVisibility({ visibilityProperty: true }) || (e.tagName === 'INPUT' && e.type === 'hidden')) return;
      if (Number(e.getAttribute('tabindex')) < 0) out.negative.push(describe(e));
      if (e.tagName === 'A' && !e.hasAttribute('href')) out.noHref.push(describe(e));
      if (e.disabled) {
        out.disabled += 1;
        return;
      }
      out.targets.push({ i: String(i), name: describe(e), radio: e.type === 'radio' ? e.name : null });
    });
    document.querySelectorAll('img').forEach((e) => {
      if (!(e.getAttribute('alt') ?? '').trim()) out.noAlt.push(`img src=${e.getAttribute('src')}`);
    });
    return out;
  });
  if (found.negative.length) fail(`in the ${view}, Tab skips these controls (tabindex=-1): ${found.negative.join(', ')}`);
  if (found.noHref.length) fail(`in the ${view}, these links have no href, so the keyboard cannot reach them: ${found.noHref.join(', ')}`);
  if (found.noAlt.length) fail(`in the ${view}, these pictures have no text alternative (alt): ${found.noAlt.join(', ')}`);
  if (!found.targets.length) fail(`the ${view} shows no control at all`);

  await page.evaluate(() => document.activeElement?.blur());
  const reached = new Set();
  for (let n = 0; n < found.targets.length * 2 + 20; n += 1) {
    await page.keyboard.press('Tab');
    const at = await page.evaluate(() => document.activeElement?.dataset?.xlTab ?? null);
    if (at !== null) reached.add(at);
  }
  const reachedRadio = new Set(found.targets.filter((t) => t.radio && reached.has(t.i)).map((t) => t.radio));
  const missed = found.targets.filter((t) => !reached.has(t.i) && !(t.radio && reachedRadio.has(t.radio)));
  if (missed.length) fail(`in the ${view}, Tab never reaches: ${missed.map((t) => t.name).join(', ')}`);
  say(`${view}: ${found.targets.length} controls reached with Tab (${found.disabled} disabled skipped)`);
}

// --- the test --------------------------------------------------------------------------------

async function main(browser) {
  // 1. A wrong password.
  stage = 'logging in with a wrong password';
  const desk = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'zh-CN' });
  const duty = await open(desk, 'duty');
  await waitShown(duty, '#login-form', 10_000, `no login form (#login-form) at ${BASE}/ within 10 s`);
  await until(3000, 'the console does not open in Chinese', async () => {
    const l = await duty.evaluate(() => document.documentElement.lang);
    return { ok: l === 'zh-CN', seen: `html[lang="${l}"]` };
  });
  await logIn(duty, { user: DUTY.user, password: `${DUTY.password}-wrong` });
  await waitText(duty, '#login-error', '用户名或密码错误', 5000, 'after a wrong password, #login-error does not say 用户名或密码错误');
  // The language can be chosen before logging in.
  await duty.click('#lang');
  await waitText(duty, '#login-submit', 'Log in', 3000, 'on the login page, #lang does not switch to English');
  await duty.click('#lang');
  await waitText(duty, '#login-submit', '登录', 3000, 'on the login page, #lang does not switch back to Chinese');
  const error = await inspect(duty, '#login-error');
  if (!error.shown) fail('after a wrong password, the error #login-error is not shown');
  if (error.attrs.role !== 'alert') fail(`#login-error is not announced (role="${error.attrs.role ?? ''}", not "alert")`);

  // 2. The duty officer logs in; a new alarm arrives live.
  stage = 'logging in as the duty officer';
  const stream = duty
    .waitForResponse((r) => new URL(r.url()).pathname === '/api/events', { timeout: 10_000 })
    .catch(() => null);
  await logIn(duty, DUTY);
  await waitShown(duty, '#alarm-list', 10_000, `after logging in as ${DUTY.user}, no alarm list (#alarm-list) within 10 s`);
  if (await isShown(duty, '#login-form')) fail('after logging in, the login form is still shown');
  const events = await stream;
  if (!events) fail('the console opened no live event stream (GET /api/events) within 10 s of logging in');
  if (events.status() !== 200) fail(`the console's live event stream GET /api/events answered ${events.status()}`);
  await waitShown(duty, `tr[data-alarm-id="${EARLIER}"]`, 5000, `alarm ${EARLIER}, stored before logging in, is not in the list within 5 s`);
  const unackBefore = await unackCount(duty, 'the unacknowledged counter #unack-count shows no number');
  await duty.evaluate(() => {
    window.xlNotReloaded = true;
  });

  stage = `waiting for alarm ${ALARM} to arrive live`;
  const row = duty.locator(`tr[data-alarm-id="${ALARM}"]`);
  // What is measured: from this script writing the request line to the row being visible in the
  // page. That includes the Rust side reading the line, sealing and publishing the alarm over
  // MQTT, the center's ingest and store, the server-sent event and the console's render: an
  // upper bound on the publish-to-screen time, which must be under 2 s.
  say(`need-alarm ${ALARM}`);
  const asked = performance.now();
  try {
    await row.waitFor({ state: 'visible', timeout: 15_000 });
  } catch {
    fail(`no alarm row for ${ALARM} within 2 s (nor 15 s) of asking for it: the list did not update without a reload`);
  }
  const took = Math.round(performance.now() - asked);
  if (took > 2000) fail(`the alarm row for ${ALARM} appeared ${(took / 1000).toFixed(1)} s after asking for it (more than 2 s)`);
  say(`alarm row for ${ALARM} shown ${took} ms after asking for it`);
  if (!(await duty.evaluate(() => window.xlNotReloaded))) fail(`the page reloaded to show ${ALARM}`);
  const status = await row.getAttribute('data-status');
  if (status !== 'new') fail(`the new alarm's row has data-status="${status}", not "new"`);
  const { n: unackNew } = await until(2000, `the unacknowledged counter did not go up from ${unackBefore} when ${ALARM} arrived`, async () => {
    const n = Number((await inspect(duty, '#unack-count'))?.text);
    return { ok: n >= unackBefore + 1, n, seen: `it says ${n}` };
  });
  await screenshot(duty, 'list.png');

  // 3. Opened by keyboard and by mouse; acknowledged, dispatched.
  stage = 'opening an alarm with the keyboard';
  const earlierRow = duty.locator(`tr[data-alarm-id="${EARLIER}"]`);
  await earlierRow.focus();
  if (!(await earlierRow.evaluate((e) => document.activeElement === e))) {
    fail(`the alarm row ${EARLIER} cannot take keyboard focus (a row needs tabindex="0")`);
  }
  await duty.keyboard.press('Enter');
  await waitShown(duty, '#detail', 3000, `Enter on the focused row ${EARLIER} opened no detail pane (#detail)`);
  await waitPicture(duty, '#detail-snapshot', WIDTH[EARLIER], 5000, `after Enter on the row ${EARLIER}, the detail pane does not show its picture`);

  stage = `opening alarm ${ALARM} with the mouse`;
  await row.click();
  await waitPicture(duty, '#detail-snapshot', WIDTH[ALARM], 5000, `after clicking the row ${ALARM}, the detail pane does not show its picture`);
  await waitStatus(duty, 'new');

  stage = `acknowledging ${ALARM}`;
  await duty.fill('#action-note', '已看到，正在核实');
  await duty.click('#detail button[data-action="acknowledge"]');
  await waitStatus(duty, 'acknowledged');
  await waitShown(duty, '#timeline li[data-action="acknowledge"]', 3000, 'the timeline shows no acknowledge step');
  await until(3000, `the row of ${ALARM} does not say acknowledged`, async () => {
    const s = await row.getAttribute('data-status', { timeout: 500 });
    return { ok: s === 'acknowledged', seen: `data-status="${s}"` };
  });
  await until(3000, `the unacknowledged counter did not go down from ${unackNew} after acknowledging`, async () => {
    const n = Number((await inspect(duty, '#unack-count'))?.text);
    return { ok: n === unackNew - 1, seen: `it says ${n}` };
  });

  stage = `dispatching ${ALARM}`;
  const units = await duty.evaluate(() =>
    [...document.querySelectorAll('input[name="unit"]')].map((e) => ({ id: e.value, checked: e.checked })),
  );
  const offered = units.map((u) => `${u.id} ${u.checked ? '☑' : '☐'}`).join(', ') || 'none';
  for (const unit of ['pcs-a', 'patrol-a']) {
    if (!units.find((u) => u.id === unit)?.checked) fail(`unit ${unit}, which routing suggests, is not pre-checked (units offered: ${offered})`);
  }
  await duty.fill('#action-note', '请A镇派出所出警');
  await duty.click('#detail button[data-action="dispatch"]');
  await waitStatus(duty, 'dispatched');
  await waitShown(duty, '#timeline li[data-action="dispatch"]', 3000, 'the timeline shows no dispatch step');

  // The clips: one of the earlier alarm (not the station's), then one of the alarm open here.
  stage = `the clip of ${ALARM} arriving in its open detail`;
  say(`need-clip ${EARLIER}`);
  say(`need-clip ${ALARM}`);
  const clipAsked = performance.now();
  const player = '#detail video[data-clip-id]';
  await waitShown(duty, player, 15_000, `no clip player (${player}) in the open detail of ${ALARM} within 15 s of asking for its clip: it did not arrive without a reload`);
  say(`clip player of ${ALARM} shown in its open detail ${Math.round(performance.now() - clipAsked)} ms after asking for it`);
  if (!(await duty.evaluate(() => window.xlNotReloaded))) fail(`the page reloaded to show the clip of ${ALARM}`);
  const shown = await duty.evaluate(() => document.querySelectorAll('#detail video[data-clip-id]').length);
  if (shown !== 1) fail(`the open detail of ${ALARM} shows ${shown} clip players, not 1`);
  const clipOf = async (page, id) => until(10_000, `the center's record of ${id} lists no clip within 10 s`, async () => {
    const r = await page.evaluate(async (id) => {
      const resp = await fetch(`/api/alarms/${encodeURIComponent(id)}`);
      return resp.ok ? (await resp.json()).clips ?? [] : `GET /api/alarms/${id} answered ${resp.status}`;
    }, id);
    return { ok: Array.isArray(r) && r.length === 1, seen: Array.isArray(r) ? `${r.length} clips` : r, clip: r[0] };
  }).then((r) => r.clip);
  const clip = await clipOf(duty, ALARM);
  const clipId = (await inspect(duty, player)).attrs['data-clip-id'];
  if (clipId !== clip.clip_id) fail(`the detail's player is of clip ${clipId}, not of ${ALARM}'s clip ${clip.clip_id}`);
  await checkDownload(duty, `#detail figure.clip`, clip, `the duty officer's detail of ${ALARM}`);
  stage = `playing the clip of ${ALARM} in the duty officer's detail`;
  const played = await playToEnd(duty, player, clip, 1, `the clip of ${ALARM} in the duty officer's detail`);
  say(`the clip of ${ALARM} played to its end in the detail: ${played}`);
  await screenshot(duty, 'detail.png');
  const earlierClip = await clipOf(duty, EARLIER);

  // 4. The police station, on a phone.
  stage = `station ${POLICE.user} working ${ALARM} on a phone`;
  const phone = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    locale: 'zh-CN',
  });
  const station = await open(phone, 'station');
  await logIn(station, POLICE);
  await waitShown(station, '#station-list', 10_000, `after logging in as ${POLICE.user}, no station view (#station-list) within 10 s`);
  if (await isShown(station, '#alarm-list')) fail(`${POLICE.user} (police) sees the duty officers' alarm list`);
  const card = `article[data-alarm-id="${ALARM}"]`;
  await waitShown(station, card, 5000, `the station view does not list ${ALARM}, dispatched to its unit, within 5 s`);
  if (await station.locator(`article[data-alarm-id="${EARLIER}"]`).count()) {
    fail(`the station view lists ${EARLIER}, which was never dispatched to its unit`);
  }
  await waitPicture(station, `${card} img`, WIDTH[ALARM], 5000, `the station's card of ${ALARM} does not show its picture`);
  stage = `the station playing the clip of ${ALARM}`;
  const stationPlayer = `${card} video[data-clip-id="${clip.clip_id}"]`;
  await waitShown(station, stationPlayer, 5000, `the station's card of ${ALARM} shows no player of its clip ${clip.clip_id}`);
  // As many players as alarms dispatched to the station with clips (the center's own list, as
  // the duty officer sees it): none of the earlier alarm's clip, which is not the station's.
  const dispatchedWithClips = await duty.evaluate(async () => {
    const page = await (await fetch('/api/alarms?limit=100')).json();
    return page.alarms.filter((a) => a.dispatched_to?.includes('pcs-a') && a.clips?.length).map((a) => a.id);
  });
  if (!dispatchedWithClips.includes(ALARM)) fail(`the center does not list ${ALARM} as dispatched to pcs-a with a clip (it lists ${dispatchedWithClips.join(', ') || 'none'})`);
  const stationPlayers = await station.evaluate(() => [...document.querySelectorAll('video')].map((v) => v.dataset.clipId ?? v.currentSrc));
  if (stationPlayers.length !== dispatchedWithClips.length) {
    fail(`the station shows ${stationPlayers.length} clip players (${stationPlayers.join(', ')}), not one for each of the ${dispatchedWithClips.length} alarms dispatched to it with clips (${dispatchedWithClips.join(', ')})`);
  }
  if (stationPlayers.includes(earlierClip.clip_id)) fail(`the station shows the clip of ${EARLIER}, never dispatched to it`);
  const refused = await station.evaluate(async (id) => (await fetch(`/api/clips/${id}`, { headers: { Range: 'bytes=0-99' } })).status, earlierClip.clip_id);
  if (refused !== 403 && refused !== 404) fail(`the center serves the station the clip of ${EARLIER}, never dispatched to it (GET /api/clips/${earlierClip.clip_id} answered ${refused})`);
  await checkDownload(station, `${card} figure.clip`, clip, `the station's card of ${ALARM}`);
  const playedThere = await playToEnd(station, stationPlayer, clip, 4, `the clip of ${ALARM} in the station's card`);
  say(`the clip of ${ALARM} played to its end in the station's card (4× speed): ${playedThere}`);
  const location = (await inspect(station, `${card} .location`))?.text ?? '';
  if (!location.includes(PLACE)) fail(`the station's card says the place is "${location}", not ${PLACE}`);
  const wide = await station.evaluate(() => document.documentElement.scrollWidth);
  if (wide > 390) fail(`the station view is ${wide} px wide on a 390 px phone screen (it scrolls sideways)`);
  await waitProgress(station, card, 'none');
  await station.locator(`${card} button[data-action="receive"]`).tap();
  await waitProgress(station, card, 'receive');
  await station.locator(`${card} button[data-action="on-scene"]`).tap();
  await waitProgress(station, card, 'on-scene');
  await station.locator(`${card} textarea[name="feedback"]`).fill(FEEDBACK);
  await station.locator(`${card} button[data-action="close"]`).tap();
  await waitProgress(station, card, 'close');
  await screenshot(station, 'station.png');

  // 5. The duty officer's page, not reloaded, shows it.
  stage = "the duty officer's open page following the station";
  await waitShown(duty, '#timeline li[data-action="close"]', 3000, `the duty officer's open page shows no close step (#timeline li[data-action=close]) within 3 s of the station closing ${ALARM}`);
  for (const action of ['receive', 'on-scene']) {
    if (!(await isShown(duty, `#timeline li[data-action="${action}"]`))) fail(`the duty officer's timeline shows no ${action} step`);
  }
  if (!(await inspect(duty, '#detail'))?.text.includes(FEEDBACK)) fail(`the duty officer's detail pane does not show the station's feedback "${FEEDBACK}"`);
  if (!(await duty.evaluate(() => window.xlNotReloaded))) fail("the duty officer's page reloaded");

  // 6. An event: it opens, its updates change its one row in place, it ends; the state filter.
  await eventLifecycle(duty);
  await stateFilter(duty);

  // 7. Keyboard and pictures, in the alarms view (detail open) and the fleet view.
  stage = 'checking keyboard access';
  await checkKeyboardAndPictures(duty, 'alarms view');
  await duty.click('a[href="#fleet"]');
  await waitShown(duty, '#fleet-table', 5000, 'the fleet link shows no fleet table (#fleet-table)');
  for (const agent of ['village-a', 'village-b']) {
    await waitShown(duty, `#fleet-table tr[data-agent-id="${agent}"]`, 5000, `the fleet table has no row for registered agent ${agent}`);
  }
  // The GB/T 28181 platform above, which nobody plays: listed, and not registered.
  await waitShown(duty, '#gb28181-table tr[data-platform-id="34020000002000000002"]', 5000, 'the fleet view does not list the GB/T 28181 platform above (#gb28181-table)');
  const platform = await duty.textContent('#gb28181-table tr[data-platform-id="34020000002000000002"]');
  if (!platform.includes('市雪亮平台') || !/注册中|无法连接/.test(platform)) fail(`the GB/T 28181 platform's row says ${platform}`);
  await checkKeyboardAndPictures(duty, 'fleet view');
  if (await isShown(duty, '#enrol-form')) fail('the duty officer sees the enrolment form, which is for administrators');
  await duty.click('a[href="#alarms"]');
  await waitShown(duty, '#alarm-list', 5000, 'the alarms link does not bring the alarm list back');

  // 8. The language toggle (#lang, in the header), and the login page in the language chosen.
  stage = 'switching the language';
  await duty.click('#lang');
  await until(3000, 'after pressing #lang, the page is not in English', async () => {
    const l = await duty.evaluate(() => document.documentElement.lang);
    return { ok: l === 'en', seen: `html[lang="${l}"]` };
  });
  await waitText(duty, '#logout', 'Log out', 3000, 'after switching to English, the log-out button does not say "Log out"');
  await waitText(duty, 'a[href="#alarms"]', 'Alarms', 3000, 'after switching to English, the alarms link does not say "Alarms"');
  await waitText(duty, `tr[data-alarm-id="${EVENT}"] .event-state`, 'Ended', 3000, `after switching to English, the row of event ${EVENT} does not say "Ended"`);
  await waitText(duty, `tr[data-alarm-id="${EVENT}"] .event-duration`, '2 min 10 s', 3000, `after switching to English, the row of event ${EVENT} does not give its duration as "2 min 10 s"`);
  await screenshot(duty, 'english.png');

  stage = 'logging out';
  await duty.click('#logout');
  await waitShown(duty, '#login-form', 5000, 'after pressing #logout, no login form');
  const me = await duty.evaluate(async () => (await fetch('/api/me')).status);
  if (me !== 401) fail(`after logging out, GET /api/me answers ${me}, not 401: the session goes on`);
  await waitText(duty, '#login-submit', 'Log in', 3000, 'after logging out in English, the login button does not say "Log in"');
  const lang = await duty.evaluate(() => document.documentElement.lang);
  if (lang !== 'en') fail(`after logging out in English, the login page is in "${lang}"`);

  // 9. An administrator enrols a new box from the fleet page, in Chinese.
  stage = 'creating an enrolment token as the administrator';
  const office = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'zh-CN' });
  const admin = await open(office, 'admin');
  await logIn(admin, { user: env('XL_ADMIN_USER'), password: env('XL_ADMIN_PASSWORD') });
  await admin.click('a[href="#fleet"]');
  await waitShown(admin, '#enrol-form', 5000, 'the administrator\'s fleet page has no enrolment form (#enrol-form)');
  await waitText(admin, '#enrol-form h2', '登记新设备', 3000, 'the enrolment form is not titled 登记新设备');
  await admin.fill('#enrol-agent', 'village-c');
  await admin.click('#enrol-submit');
  await waitShown(admin, '#enrol-token', 5000, 'no token (#enrol-token) after pressing 生成登记码');
  const token = (await admin.textContent('#enrol-token')).trim();
  if (!/^[A-Z2-9]{5}(-[A-Z2-9]{5}){3}$/.test(token)) fail(`the token shown is not 4 groups of 5 letters and digits: "${token}"`);
  const command = (await admin.textContent('#enrol-command')).trim();
  if (!command.startsWith('xl-agent enroll --center http') || !/ --token [A-Z2-9-]+ --center-key-fingerprint [0-9a-f]{4}(-[0-9a-f]{4}){3}$/.test(command) || !command.includes(`--token ${token} `)) fail(`the command shown is not the enrol command with the token and the center key's fingerprint: "${command}"`);
  say(`enrolment-token ${token}`);
  await screenshot(admin, 'enrol.png');

  if (pageErrors.length) fail(`the console threw in the browser: ${pageErrors.join('; ')}`);
  if (assetErrors.length) fail(`the console's files failed to load: ${assetErrors.join('; ')}`);
}

// --- clips -----------------------------------------------------------------------------------

/**
 * The download link under `figure` gives the clip's SHA-256 (its start; all of it in the title)
 * and fetches it as a file: an attachment, all of it, hashing to that SHA-256.
 */
async function checkDownload(page, figure, clip, where) {
  const link = await inspect(page, `${figure} a[download]`);
  if (!link) fail(`${where}: the clip has no download link (${figure} a[download])`);
  if (!link.text.includes(`SHA-256 ${clip.sha256.slice(0, 12)}`)) fail(`${where}: the clip's download link says "${link.text}", not the start of its SHA-256 ${clip.sha256.slice(0, 12)}`);
  if (!link.attrs.href?.endsWith('?download=1')) fail(`${where}: the clip's download link goes to "${link.attrs.href}", which does not end with ?download=1`);
  if (!link.attrs.title?.includes(clip.sha256)) fail(`${where}: the clip's download link's title "${link.attrs.title}" does not give its whole SHA-256`);
  const got = await page.evaluate(async (href) => {
    const resp = await fetch(href);
    const bytes = await resp.arrayBuffer();
    const hash = [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((b) => b.toString(16).padStart(2, '0')).join('');
    return { status: resp.status, disposition: resp.headers.get('content-disposition') ?? '', size: bytes.byteLength, hash };
  }, link.attrs.href);
  if (got.status !== 200 || !got.disposition.startsWith('attachment')) fail(`${where}: the clip's download link answers ${got.status}, Content-Disposition "${got.disposition}", not 200 and an attachment`);
  if (got.size !== clip.size || got.hash !== clip.sha256) fail(`${where}: the clip downloaded is ${got.size} bytes hashing to ${got.hash}, not the ${clip.size} bytes of SHA-256 ${clip.sha256} its agent signed`);
}

/**
 * Plays the video `selector` of `clip` (muted, at `rate`) until it has ended at its end: a real
 * duration, finite, over 3 s and the clip's own within 0.2 s, the position within 0.2 s of it.
 * Fails, saying what the player says, if it cannot play, stops short, or takes over twice as
 * long as the clip should.
 */
async function playToEnd(page, selector, clip, rate, what) {
  const started = await page.evaluate(async ({ selector, rate }) => {
    const v = document.querySelector(selector);
    if (!v) return `there is no ${selector}`;
    v.muted = true;
    v.playbackRate = rate;
    v.defaultPlaybackRate = rate;
    try {
      await v.play();
    } catch (e) {
      return `play() was refused: ${e.name}: ${e.message}${v.error ? ` (MediaError ${v.error.code}: ${v.error.message})` : ''}`;
    }
    return null;
  }, { selector, rate });
  if (started) fail(`${what} does not play: ${started}`);
  const t0 = Date.now();
  const { v } = await until((2 * clip.duration_ms) / rate + 5000, `${what} does not play to its end`, async () => {
    const v = await page.evaluate((selector) => {
      const v = document.querySelector(selector);
      return v && { ended: v.ended, paused: v.paused, time: v.currentTime, duration: v.duration, ready: v.readyState, network: v.networkState, error: v.error && `MediaError ${v.error.code}: ${v.error.message}` };
    }, selector);
    if (!v) return { ok: false, seen: `no ${selector} any more` };
    // A failure inside the probe would only be retried: a broken player ends the wait.
    return { ok: v.ended || Boolean(v.error), v, seen: `at ${v.time.toFixed(2)} s of ${v.duration} s, ${v.paused ? 'paused' : 'playing'}, readyState ${v.ready}, networkState ${v.network}` };
  });
  if (v.error) fail(`${what} fails while playing: ${v.error} (at ${v.time.toFixed(2)} s of ${v.duration} s)`);
  if (!Number.isFinite(v.duration) || v.duration <= 3) fail(`${what} ended, but its duration is ${v.duration} s, not a real one of over 3 s`);
  if (Math.abs(v.duration - clip.duration_ms / 1000) > 0.2) fail(`${what} lasts ${v.duration.toFixed(2)} s, not the ${clip.duration_ms / 1000} s its agent said`);
  if (Math.abs(v.duration - v.time) > 0.2) fail(`${what} ended at ${v.time.toFixed(2)} s, not at its end (${v.duration.toFixed(2)} s)`);
  return `${v.duration.toFixed(2)} s in ${((Date.now() - t0) / 1000).toFixed(1)} s`;
}

// --- events ----------------------------------------------------------------------------------

/** What the row of alarm `id` shows of its event, and how many rows the list has for it. */
async function eventRow(page, id) {
  return page.evaluate((id) => {
    const rows = document.querySelectorAll(`#alarm-list tbody tr[data-alarm-id="${CSS.escape(id)}"]`);
    const row = rows[0];
    const text = (sel) => row?.querySelector(sel)?.textContent.trim() ?? null;
    return {
      rows: rows.length,
      state: text('.event-state'),
      duration: text('.event-duration'),
      peak: text('.event-peak'),
      reminder: text('.event-reminder'),
      selected: row?.getAttribute('aria-selected') ?? null,
      index: row ? [...row.parentElement.children].indexOf(row) : -1,
      same: row?.xlSameRow === true,
      shown: row ? row.checkVisibility({ visibilityProperty: true }) : false,
    };
  }, id);
}

/** Waits until the one row of event `id` shows `want` (state, duration, peak; null: none shown). */
async function waitEventRow(page, id, want, ms, what) {
  return until(ms, what, async () => {
    const r = await eventRow(page, id);
    const ok = r.rows === 1 && r.shown && Object.entries(want).every(([k, v]) => r[k] === v);
    const seen = r.rows === 1
      ? `its row says state "${r.state}", duration "${r.duration}", peak "${r.peak}"`
      : `${r.rows} rows for ${id}`;
    return { ok, seen, r };
  });
}

async function eventLifecycle(duty) {
  stage = `event ${EVENT} opening`;
  say(`need-event ${EVENT} 2`);
  const { r: opened } = await waitEventRow(duty, EVENT, { state: '持续中', duration: null, peak: '最多 2 人', reminder: null }, 5000,
    `the event ${EVENT} just opened does not show as one row saying 持续中, 最多 2 人, within 5 s`);
  await duty.click(`tr[data-alarm-id="${EVENT}"]`);
  await waitPicture(duty, '#detail-snapshot', WIDTH[EVENT], 5000, `after clicking the row of event ${EVENT}, the detail pane does not show its picture`);
  await until(3000, `the detail pane of ${EVENT} does not say 持续中`, async () => {
    const e = await inspect(duty, '#detail-event');
    return { ok: e?.text.includes('持续中') && e.text.includes('最多 2 人'), seen: e ? `#detail-event says "${e.text}"` : 'no #detail-event' };
  });
  // The officer is writing a note and has unticked a unit when the agent's update arrives.
  const NOTE = '正在调取附近监控';
  await duty.fill('#action-note', NOTE);
  await duty.uncheck('input[name="unit"][value="patrol-a"]');
  await duty.focus('#action-note');
  await duty.evaluate((id) => {
    document.querySelector(`#alarm-list tr[data-alarm-id="${CSS.escape(id)}"]`).xlSameRow = true;
    document.querySelector('#announce').textContent = '';
  }, EVENT);
  const pictureBefore = await duty.evaluate(() => document.querySelector('#detail-snapshot')?.dataset.sha);

  stage = `event ${EVENT} updated`;
  say(`need-update ${EVENT} 1 5 65000 ongoing picture reminder`);
  const { r: updated } = await waitEventRow(duty, EVENT, { state: '持续中', duration: '1分05秒', peak: '最多 5 人', reminder: '仍在持续' }, 5000,
    `after the agent's update of ${EVENT} (5 people, 65 s, a reminder), its row does not say 持续中 1分05秒 最多 5 人 仍在持续 within 5 s`);
  await checkInPlace(duty, opened, updated, 'its update');
  const kept = await duty.evaluate(() => ({
    note: document.querySelector('#action-note')?.value,
    focused: document.activeElement?.id,
    patrol: document.querySelector('input[name="unit"][value="patrol-a"]')?.checked,
    announced: document.querySelector('#announce').textContent,
  }));
  if (kept.note !== NOTE) fail(`the update of ${EVENT} wiped the officer's note (it says "${kept.note}", not "${NOTE}")`);
  if (kept.focused !== 'action-note') fail(`the update of ${EVENT} took the focus from the note box (it is on "${kept.focused || 'nothing'}")`);
  if (kept.patrol !== false) fail(`the update of ${EVENT} ticked patrol-a again, which the officer had unticked`);
  if (kept.announced) fail(`the update of ${EVENT} was announced again like a new alarm: "${kept.announced}"`);
  await until(3000, `the detail pane of ${EVENT} does not show the update (1分05秒, 最多 5 人)`, async () => {
    const e = await inspect(duty, '#detail-event');
    return { ok: e?.text.includes('持续中') && e.text.includes('1分05秒') && e.text.includes('最多 5 人'), seen: e ? `#detail-event says "${e.text}"` : 'no #detail-event' };
  });
  await waitPicture(duty, '#detail-snapshot', WIDTH.better, 5000, `the detail pane of ${EVENT} does not show the better picture the update brought`);
  const pictureAfter = await duty.evaluate(() => document.querySelector('#detail-snapshot')?.dataset.sha);
  if (pictureAfter === pictureBefore) fail(`the detail pane's picture of ${EVENT} did not change with the update's better one`);
  await screenshot(duty, 'event-ongoing.png');

  stage = `event ${EVENT} ending`;
  say(`need-update ${EVENT} 2 5 130500 ended`);
  const { r: ended } = await waitEventRow(duty, EVENT, { state: '已结束', duration: '2分10秒', peak: '最多 5 人', reminder: null }, 5000,
    `after the end of ${EVENT} (lasting 130.5 s), its row does not say 已结束 2分10秒 最多 5 人 (and no longer 仍在持续) within 5 s`);
  await checkInPlace(duty, opened, ended, 'its end');
  await until(3000, `the detail pane of ${EVENT} does not say 已结束 2分10秒 with its end time`, async () => {
    const e = await inspect(duty, '#detail-event');
    return { ok: e?.text.includes('已结束') && e.text.includes('2分10秒') && e.text.includes('结束于') && !e.text.includes('仍在持续'), seen: e ? `#detail-event says "${e.text}"` : 'no #detail-event' };
  });
  const announced = await duty.evaluate(() => document.querySelector('#announce').textContent);
  if (announced) fail(`the end of ${EVENT} was announced like a new alarm: "${announced}"`);
  await screenshot(duty, 'event-ended.png');
}

/** The row after an update is the row before it, where it was, still selected. */
async function checkInPlace(duty, before, after, what) {
  if (after.rows !== 1) fail(`after ${what}, the list has ${after.rows} rows for ${EVENT}, not one`);
  if (!after.same) fail(`after ${what}, the row of ${EVENT} was replaced, not updated in place`);
  if (after.index !== before.index) fail(`after ${what}, the row of ${EVENT} moved from place ${before.index + 1} to ${after.index + 1}`);
  if (after.selected !== 'true') fail(`after ${what}, the row of ${EVENT} is no longer selected (aria-selected="${after.selected}")`);
}

/** Applies the state filter (全部 "", 持续中 ongoing, 已结束 ended) and waits for the list. */
async function filterState(duty, value) {
  const asked = duty.waitForRequest((r) => {
    const u = new URL(r.url());
    return u.pathname === '/api/alarms' && (u.searchParams.get('state') ?? '') === value && !u.searchParams.has('cursor');
  }, { timeout: 5000 }).catch(() => null);
  await duty.selectOption('#filter-state', value);
  await duty.click('#filters button[type="submit"]');
  if (!(await asked)) fail(`choosing ${value || 'all'} in the state filter (#filter-state) and pressing 筛选 asked the center for no /api/alarms?state=${value}`);
}

async function expectRows(duty, shown, hidden, ms, what) {
  await until(ms, what, async () => {
    const present = await duty.evaluate((ids) => ids.filter((id) => {
      const row = document.querySelector(`#alarm-list tbody tr[data-alarm-id="${CSS.escape(id)}"]`);
      return row && row.checkVisibility({ visibilityProperty: true });
    }), [...shown, ...hidden]);
    const missing = shown.filter((id) => !present.includes(id));
    const extra = hidden.filter((id) => present.includes(id));
    return { ok: !missing.length && !extra.length, seen: `${missing.length ? `missing ${missing.join(', ')}` : ''}${extra.length ? ` listed ${extra.join(', ')}` : ''}`.trim() };
  });
}

async function stateFilter(duty) {
  stage = 'filtering events by state';
  const labels = await duty.evaluate(() => [...document.querySelectorAll('#filter-state option')].map((o) => `${o.value}=${o.textContent}`));
  if (labels.join(',') !== '=全部,ongoing=持续中,ended=已结束') fail(`the state filter offers ${labels.join(', ')}, not 全部, 持续中, 已结束`);
  await waitEventRow(duty, ENDED, { state: '已结束', duration: '1秒', peak: '最多 3 人' }, 3000,
    `the event ${ENDED}, ended by its agent before logging in, does not say 已结束 1秒 最多 3 人`);
  say(`need-event ${EVENT2} 1`);
  await waitEventRow(duty, EVENT2, { state: '持续中', peak: '最多 1 人' }, 5000, `the second event ${EVENT2} does not show as 持续中 within 5 s`);

  await filterState(duty, 'ongoing');
  await expectRows(duty, [EVENT2], [EVENT, ENDED, ALARM, EARLIER], 5000, 'with the state filter on 持续中, the list does not show just the ongoing event');
  await screenshot(duty, 'event-filter.png');
  // An event that ends while the officer looks at the ongoing ones leaves that list.
  say(`need-update ${EVENT2} 1 1 3000 ended`);
  await expectRows(duty, [], [EVENT2], 5000, `with the state filter on 持续中, ${EVENT2} stays in the list after it ended`);

  await filterState(duty, 'ended');
  await expectRows(duty, [EVENT, EVENT2, ENDED], [], 5000, 'with the state filter on 已结束, the ended events are not all listed');
  await waitEventRow(duty, EVENT2, { state: '已结束', duration: '3秒' }, 3000, `with the state filter on 已结束, ${EVENT2} does not say 已结束 3秒`);

  await filterState(duty, '');
  await expectRows(duty, [EVENT, EVENT2, ENDED, ALARM, EARLIER], [], 5000, 'with the state filter back on 全部, not every alarm is listed');
}

/** What the detail pane says for each status, in Chinese. */
const STATUS_ZH = { new: '新告警', acknowledged: '已确认', dispatched: '已派警', resolved: '已处置', false_alarm: '误报' };

async function waitStatus(page, expected) {
  await until(5000, `the detail pane's status does not become ${expected}`, async () => {
    const e = await inspect(page, '#detail-status');
    return {
      ok: e?.text === STATUS_ZH[expected] && e.attrs['data-status'] === expected,
      seen: e ? `#detail-status says "${e.text}", data-status="${e.attrs['data-status']}"` : 'no #detail-status',
    };
  });
}

async function waitProgress(page, card, expected) {
  await until(5000, `the station's progress of ${ALARM} does not become ${expected}`, async () => {
    const e = await inspect(page, `${card} .progress`);
    return { ok: e?.attrs['data-progress'] === expected, seen: e ? `data-progress="${e.attrs['data-progress']}"` : 'no .progress' };
  });
}

// --- run -------------------------------------------------------------------------------------

mkdirSync(SHOTS, { recursive: true });
setTimeout(() => {
  say(`fail: the browser test took over ${OWN_DEADLINE_MS / 1000} s (while ${stage})`);
  process.exit(1);
}, OWN_DEADLINE_MS).unref();

let browser;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Chinese date inputs; this machine's network is closed: no background fetches, no QUIC.
    args: ['--lang=zh-CN', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  await main(browser);
  say('done');
} catch (e) {
  const why = e instanceof Failure ? e.message : `while ${stage}: ${String(e.message).split('\n')[0]}`;
  if (!(e instanceof Failure)) console.error(e.stack);
  for (const [name, page] of Object.entries(pages)) {
    const path = join(SHOTS, `failure-${name}.png`);
    try {
      await page.screenshot({ path, fullPage: true, timeout: 3000 });
      say(`shot ${path}`);
    } catch {
      // the page is gone
    }
  }
  say(`fail: ${why}`);
  process.exitCode = 1;
} finally {
  await browser?.close();
}
