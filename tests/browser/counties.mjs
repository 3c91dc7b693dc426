// The console at a tier above (a province), as its duty officer sees it in a real browser
// (Chromium through playwright-core): run by tests/tiers.rs once every county's events arrived.
//
// Checked: the counties' view opens first, a row per county with its boxes online as its center
// reported them and its events counted as the API counts them; another time counts again (a
// day in 2000: none; since 2000: the same); a county's name opens the alarm list filtered to
// that county and time, with only its events; an event opens with where it came from, the
// county's steps and this center's own, and offers only a dispatch of this center's own units
// (the county's duty officers run the case); nothing failed on the page.
//
// Prints `fail: …` (and exits 1) on the first thing a user would see wrong, `done` otherwise.

import { chromium } from 'playwright-core';

const say = (line) => process.stdout.write(`${line}\n`);
const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (!value) {
    say(`fail: ${name} is not set (tests/tiers.rs sets it)`);
    process.exit(2);
  }
  return value;
};

const BASE = env('XL_URL').replace(/\/$/, '');
const USER = env('XL_USER');
const PASSWORD = env('XL_PASSWORD');
const CHROMIUM = env('XL_CHROMIUM', '/usr/bin/chromium');
/** The counties the province hears of, and each one's events as its API counts them. */
const COUNTIES = env('XL_COUNTIES').split(',');
const EVENTS = Object.fromEntries(env('XL_EVENTS').split(',').map((e) => e.split(':')).map(([c, n]) => [c, Number(n)]));
/** Each county's boxes. */
const BOXES_EACH = Number(env('XL_BOXES_EACH'));

class Failure extends Error {}
const fail = (why) => { throw new Failure(why); };
const errors = [];

setTimeout(() => { say('fail: the browser test took over 60 s'); process.exit(1); }, 60_000).unref();

let browser;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--lang=zh-CN', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await (await browser.newContext({ locale: 'zh-CN' })).newPage();
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${BASE}/`);
  await page.fill('#login-user', USER);
  await page.fill('#login-password', PASSWORD);
  await page.click('#login-submit');

  // The first view: the counties.
  await page.waitForSelector('#county-table', { state: 'visible' }).catch(() => fail('no counties table (#county-table) after log-in: the counties view is not the first'));
  const heading = (await page.textContent('#nav a[aria-current]'))?.trim();
  if (heading !== '区县') fail(`the current view is "${heading}", not 区县`);
  const rows = await page.$$eval('#county-table tbody tr', (trs) => trs.map((tr) => ({
    county: tr.dataset.county,
    boxes: tr.querySelector('[data-count=boxes]').firstChild.textContent.trim(),
    events: Number(tr.querySelector('[data-count=events]').textContent),
    statuses: [...tr.querySelectorAll('td[data-status]')].reduce((n, td) => n + Number(td.textContent), 0),
    kinds: tr.querySelector('td.kinds').textContent,
  })));
  if (rows.map((r) => r.county).join(',') !== COUNTIES.join(',')) fail(`the counties' rows are ${rows.map((r) => r.county).join(', ') || 'none'}, not ${COUNTIES.join(', ')}`);
  for (const r of rows) {
    if (r.events !== EVENTS[r.county]) fail(`county ${r.county} shows ${r.events} events, not ${EVENTS[r.county]}`);
    if (r.statuses !== r.events) fail(`county ${r.county}'s status columns add up to ${r.statuses}, not its ${r.events} events`);
    if (!r.kinds.includes('区域入侵')) fail(`county ${r.county}'s kinds read "${r.kinds}", without 区域入侵`);
    const [online, total] = r.boxes.split('/').map((n) => Number(n.trim()));
    if (total !== BOXES_EACH || !(online >= 0 && online <= total)) fail(`county ${r.county}'s boxes read "${r.boxes}", not n / ${BOXES_EACH}`);
  }
  say(`counties: ${rows.map((r) => `${r.county} ${r.events} events, boxes ${r.boxes}`).join('; ')}`);

  // Another time: a day in 2000 has no events; since 2000, the same counts.
  const count = async (from, to) => {
    await page.fill('#county-from', from);
    await page.fill('#county-to', to);
    const before = await page.textContent('#county-span');
    await page.click('#county-window button[type=submit]');
    await page.waitForFunction((was) => document.querySelector('#county-span')?.textContent !== was, before);
    const span = await page.textContent('#county-span');
    if (!span.startsWith(from.slice(0, 4))) fail(`counted from ${from}, the view says it counts ${span}`);
    return page.$$eval('#county-table tbody tr', (trs) => trs.map((tr) => Number(tr.querySelector('[data-count=events]').textContent)));
  };
  const none = await count('2000-01-01T00:00', '2000-01-02T00:00');
  if (none.some((n) => n > 0)) fail(`a day in 2000 shows events: ${none.join(', ')}`);
  const since = await count('2000-01-01T00:00', '');
  if (since.join(',') !== rows.map((r) => r.events).join(',')) fail(`since 2000 the counties show ${since.join(', ')} events, not ${rows.map((r) => r.events).join(', ')}`);
  say(`a day in 2000: ${none.length ? none.join(', ') : 'no county'}; since 2000: ${since.join(', ')} events`);

  // Drill-down: the second county's name opens its events only.
  const county = COUNTIES[1];
  await page.click(`#county-table tr[data-county="${county}"] button`);
  await page.waitForSelector('#alarm-list tbody tr', { state: 'visible' }).catch(() => fail(`no alarm list after choosing county ${county}`));
  const filter = await page.inputValue('#filter-county');
  if (filter !== county) fail(`the alarm list's county filter reads "${filter}", not ${county}`);
  const fromFilter = await page.inputValue('#filter-from');
  if (fromFilter !== '2000-01-01T00:00') fail(`the alarm list's from filter reads "${fromFilter}", not the counties' 2000-01-01T00:00`);
  const rowsOf = await page.$$eval('#alarm-list tbody tr', (trs) => trs.map((tr) => ({ id: tr.dataset.alarmId, county: tr.querySelector('td[data-county]')?.textContent })));
  const ids = rowsOf.map((r) => r.id);
  const others = rowsOf.filter((r) => r.county !== county);
  if (others.length) fail(`county ${county}'s list shows ${others.length} events of other counties or none (${others[0].id} of "${others[0].county}", …)`);
  say(`county ${county}: ${ids.length} events listed, all its own`);

  // An event: where it came from, and nothing to act on here.
  await page.click('#alarm-list tbody tr');
  const from = (await page.waitForSelector('#detail-forwarded').catch(() => fail('an event from below shows no #detail-forwarded line'))).textContent();
  if (!(await from).includes(county)) fail(`the event's origin line reads "${await from}", without ${county}`);
  const steps = await page.$$eval('#detail button[data-action]', (bs) => bs.map((b) => b.dataset.action));
  if (steps.join(',') !== 'dispatch') fail(`an event forwarded from below offers the steps ${steps.join(', ') || 'none'} at the province, not only 派警 (its own units)`);
  if (!(await page.$('#own-timeline'))) fail('an event forwarded from below shows no list of this center\'s own dispatches (#own-timeline)');
  say(`event ${ids[0]}: "${await from}", only dispatch offered`);

  if (errors.length) fail(`the page threw: ${errors.join('; ')}`);
  say('done');
} catch (e) {
  say(`fail: ${e instanceof Failure ? e.message : String(e.message).split('\n')[0]}`);
  process.exitCode = 1;
} finally {
  await browser?.close();
}
