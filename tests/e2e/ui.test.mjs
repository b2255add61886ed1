// The web console (spec/http-api.md, "Web console"; docs/console.md) in a
// real Chromium driven by playwright-core, against the real binary. Chromium
// runs headless with the flags that keep it off the network (no proxy, no
// background, component or safe-browsing traffic, every host name but
// 127.0.0.1 unresolvable).
//
// What is checked: the security headers of /ui/; sign-in with a wrong and the
// right admin token (kept in sessionStorage, never a cookie or a URL) and
// sign-out; a denied token request made with curl appearing live in the
// tracing page with the right columns and severity, its link opening the
// audit event in the System log's side panel, found again with the filter
// fields, downloaded as CSV (rows parsed and checked) and in every other
// format; paging, a bad filter's message and the side panel's token fields;
// the live trace's filters, pause and dropped banner; a file exporter added,
// tested and edited, an http one whose secrets survive an edit, client-side
// validation and the server's 400; a system paused and the next request
// denied with "Server paused"; an access policy switched off; grants created
// and deleted; signing keys created, activated and retired (and the 409 for
// the last active key); the narrow-screen layout and the keyboard; hostile
// user and scope names shown as text, never markup.
//
// Every page is saved as a 1280×800 screenshot under tests/e2e/out/ui/
// (git-ignored). With UI_SCREENSHOTS_TO_DOCS=1 they are also copied to
// docs/img/console-*.png, the pictures of docs/console.md:
//
//   cd tests/e2e && UI_SCREENSHOTS_TO_DOCS=1 MCPAUTH_BIN=../../build/mcpauth node --test ui.test.mjs
//
// One server and one browser serve every test (each test opens its own
// browser context, so sessionStorage starts empty); the tests run in order
// and undo what they change in the policy, except the signing keys (last).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { eventually, ok } from './lib/check.mjs';
import { parseCsv } from './lib/csv.mjs';
import { ALICE, assertOAuthError, CC, devIdToken, GITHUB_AUD, GITHUB_RESOURCE, TE, tokenRequest, TT_ID_JAG, TT_ID_TOKEN } from './lib/oauth.mjs';
import { assertCleanExit, logServersOnFailure, repoRoot, request, startServer, tempDir } from './lib/server.mjs';

logServersOnFailure();

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const CURL = process.env.CURL_BIN || '/usr/bin/curl';
let chromium = null;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  /* reported by `skip` below */
}
const skip = !chromium
  ? 'playwright-core is not installed (scripts/deps.sh test installs it)'
  : !fs.existsSync(CHROMIUM)
    ? `${CHROMIUM} is missing (scripts/deps.sh test installs Debian's chromium)`
    : !fs.existsSync(CURL)
      ? `${CURL} is missing (scripts/deps.sh installs curl)`
      : false;

/** Chromium kept off the network: nothing but this machine's loopback server is reachable. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--headless=new',
  '--no-proxy-server',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--no-first-run',
  '--disable-domain-reliability',
  '--disable-client-side-phishing-detection',
  '--metrics-recording-only',
  '--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];

// The machine running these may be busy (and the binary may be an ASan build):
// generous bounds, but every wait is for a specific thing to show.
const T = 90_000; // a test's bound
const WAIT = 15_000; // what the page gets to show something
const LIVE = 10_000; // a trace entry's way from the request to the table
const XSS = '<img src=x onerror=alert(1)>';
const VIEWPORT = { width: 1280, height: 800 };

const SHOTS = path.join(here, 'out', 'ui');
const DOCS_IMG = process.env.UI_SCREENSHOTS_TO_DOCS === '1' ? path.join(repoRoot, 'docs', 'img') : null;
const DOCS_MAX_BYTES = 200 * 1024;

const AGENT = 'desktop-agent';

let env;
let browser;
let scratch;

/**
 * A server with a small policy: github (ID-JAGs, alice holds repo:read,
 * repo:write not enabled, tokens at most 120 s) and docs (access tokens,
 * audience the server itself, ES256), one client for both. One client secret
 * only: hashing secrets is slow on purpose, and slower still under ASan.
 */
async function startConsoleServer() {
  const srv = await startServer();
  try {
    const issuer = srv.url;
    const e = { srv, issuer, docsResource: `${issuer}/mcp/docs`, secret: `agent-secret-${crypto.randomUUID()}` };
    ok(
      await srv.api('POST', '/api/v1/apply', {
        systems: [
          { id: 'github', name: 'GitHub MCP', audience: GITHUB_AUD, resource_urls: [GITHUB_RESOURCE], scopes: [{ name: 'repo:read', enabled: true }, { name: 'repo:write', enabled: false }], token_type: 'id-jag', max_lifetime: '120s' },
          { id: 'docs', name: 'Docs MCP', audience: issuer, resource_urls: [e.docsResource], scopes: [{ name: 'docs:read', enabled: true }], token_type: 'access_token', signing_alg: 'ES256' },
        ],
        clients: [{ id: AGENT, name: 'Desktop agent', auth: 'client_secret_basic', secret: e.secret, grant_types: [TE, CC] }],
        access_policies: [
          { id: 'desktop-github', client: AGENT, system: 'github', active: true },
          { id: 'desktop-docs', client: AGENT, system: 'docs', active: true },
        ],
        grants: [
          { subject: `user:${ALICE}`, system: 'github', scopes: ['repo:read', 'repo:write'] },
          { subject: `client:${AGENT}`, system: 'docs', scopes: ['docs:read'] },
        ],
      }),
    );
    return e;
  } catch (err) {
    await srv.close();
    throw err;
  }
}

/** A page of a fresh browser context (empty sessionStorage), failing the test on a page error. */
async function openPage(t, viewport = VIEWPORT) {
  const context = await browser.newContext({ acceptDownloads: true, viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', async (d) => {
    problems.push(`dialog: ${d.type()} ${d.message()}`);
    await d.dismiss();
  });
  // nothing but the server under test: a request anywhere else is a failure
  await context.route(/^(?!http:\/\/127\.0\.0\.1:\d+\/|data:|blob:)/, (route) => {
    problems.push(`request off the server: ${route.request().url()}`);
    return route.abort();
  });
  t.after(async () => {
    await context.close();
    assert.deepEqual(problems, [], 'the console raised errors or dialogs');
  });
  return page;
}

/** openPage, then sign in with the admin token and wait for the console. */
async function signedIn(t, hash = '', viewport = VIEWPORT) {
  const page = await openPage(t, viewport);
  await page.goto(`${env.srv.url}/ui/${hash}`);
  await page.getByLabel('Admin token').fill(env.srv.token);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.locator('#nav').waitFor({ state: 'attached' });
  await page.locator('#signout').waitFor({ state: 'visible' });
  return page;
}

/**
 * Saves the page as it is now (the viewport, 1280×800) under out/ui/NAME.png
 * once no table is still loading, and to docs/img/console-NAME.png when asked.
 */
async function shot(page, name, { docs = true } = {}) {
  await page.locator('tr.state.loading').first().waitFor({ state: 'detached' }).catch(() => {});
  await page.mouse.move(0, 0);
  await fsp.mkdir(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  const png = await page.screenshot({ path: file, animations: 'disabled', caret: 'hide' });
  assert.ok(png.length > 1000, `${file} is a real picture`);
  if (DOCS_IMG && docs) {
    await fsp.mkdir(DOCS_IMG, { recursive: true });
    assert.ok(png.length <= DOCS_MAX_BYTES, `console-${name}.png is ${png.length} bytes (at most ${DOCS_MAX_BYTES} for docs/img)`);
    await fsp.writeFile(path.join(DOCS_IMG, `console-${name}.png`), png);
  }
}

/** A subject token for `user` from the development IdP. */
const idToken = (user) => devIdToken(env.srv, user, ['engineering']);

/** Token exchange for an ID-JAG to github, as `user` (alice holds repo:read; anyone else: no_grant). */
async function exchange(user = ALICE, scope = 'repo:read') {
  return tokenRequest(
    env.srv,
    { grant_type: TE, requested_token_type: TT_ID_JAG, audience: GITHUB_AUD, resource: GITHUB_RESOURCE, scope, subject_token: await idToken(user), subject_token_type: TT_ID_TOKEN },
    { basic: [AGENT, env.secret] },
  );
}

/**
 * The same token exchange made by curl (a real client, its own connection and
 * User-Agent): {status, json}. No proxy, whatever the environment says.
 */
async function curlExchange(user, scope = 'repo:read') {
  const subject = await idToken(user);
  const args = ['-sS', '--noproxy', '*', '--max-time', '30', '-o', '-', '-w', '\n%{http_code}', '-u', `${AGENT}:${env.secret}`];
  for (const [k, v] of Object.entries({ grant_type: TE, requested_token_type: TT_ID_JAG, audience: GITHUB_AUD, resource: GITHUB_RESOURCE, scope, subject_token: subject, subject_token_type: TT_ID_TOKEN })) {
    args.push('--data-urlencode', `${k}=${v}`);
  }
  args.push(`${env.issuer}/oauth/token`);
  const child = spawn(CURL, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH || '/usr/bin:/bin' } });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (c) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c) => (err += c));
  const code = await new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  assert.equal(code, 0, `curl failed (${code}): ${err}`);
  const nl = out.lastIndexOf('\n');
  return { status: Number(out.slice(nl + 1)), json: JSON.parse(out.slice(0, nl)) };
}

/** A client_credentials token for docs (no user). */
function clientCredentials() {
  return tokenRequest(env.srv, { grant_type: CC, resource: env.docsResource, scope: 'docs:read' }, { basic: [AGENT, env.secret] });
}

/** The events the API selects for a SCIM filter (newest first). */
async function apiEvents(filter, limit = 1000) {
  const q = new URLSearchParams({ limit: String(limit), sortOrder: 'DESCENDING' });
  if (filter) q.set('filter', filter);
  return ok(await env.srv.api('GET', `/api/v1/logs?${q}`));
}

/** The data-id of every row of the log table. */
const rowIds = (page) => page.locator('#log-table tbody tr[data-id]').evaluateAll((trs) => trs.map((tr) => tr.dataset.id));

/** The rows of the log table once they are exactly `ids`. */
async function logRowsAre(page, ids) {
  const same = await eventually(async () => (await rowIds(page)).join() === ids.join(), { timeoutMs: WAIT, intervalMs: 100 });
  assert.ok(same, `the log table shows ${JSON.stringify(await rowIds(page))}, the API ${JSON.stringify(ids)}`);
}

/** Opens the trace page and waits until its stream is open (entries are not retained). */
async function liveTrace(page) {
  await page.getByRole('link', { name: 'MCP Authorization Tracing' }).click();
  await page.locator('#trace-status[data-state="live"]').waitFor();
}

/** The entry rows of the trace table. */
const traceRows = (page) => page.locator('#trace-table tbody tr.entry');

/** The trace row whose text contains `text`, once it is there. */
function traceRow(page, text) {
  return traceRows(page).filter({ hasText: text }).first();
}

/** Clicks a log download button; {name, text} of the file saved. */
async function download(page, label) {
  const [d] = await Promise.all([page.waitForEvent('download', { timeout: WAIT }), page.getByRole('group', { name: 'Download the selection' }).getByRole('button', { name: label, exact: true }).click()]);
  return { name: d.suggestedFilename(), text: await fsp.readFile(await d.path(), 'utf8') };
}

/** A text value as the CSV download writes it: null empty; a leading = + - @ TAB or CR neutralized with a quote. */
const csvText = (v) => (v === null || v === undefined ? '' : /^[=+\-@\t\r]/.test(v) ? `'${v}` : String(v));

/** The CSV download as objects keyed by its header. */
function csvObjects(text) {
  const rows = parseCsv(text);
  const [header, ...data] = rows;
  for (const r of data) assert.equal(r.length, header.length, 'every CSV row has every column');
  return { header, rows: data.map((r) => Object.fromEntries(header.map((k, i) => [k, r[i]]))) };
}

describe('web console', { skip, timeout: 900_000 }, () => {
  before(async () => {
    env = await startConsoleServer();
    assert.equal((await exchange()).status, 200); // warms the secret cache
    scratch = await tempDir('mcpauth-e2e-ui-');
    const launchEnv = { ...process.env };
    for (const k of Object.keys(launchEnv)) if (/^(https?|all|no|ftp)_proxy$/i.test(k)) delete launchEnv[k];
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, env: launchEnv, timeout: 60_000 });
  });

  after(async () => {
    if (browser) await browser.close();
    if (scratch) await fsp.rm(scratch, { recursive: true, force: true });
    if (env) assertCleanExit(assert, await env.srv.close());
  });

  test('/ui/ serves the embedded files publicly, with a strict CSP; the data stays behind the token', { timeout: T }, async () => {
    const r = await request(`${env.srv.url}/ui/`);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/html; charset=utf-8$/);
    const csp = r.headers['content-security-policy'] || '';
    for (const d of ["default-src 'self'", "connect-src 'self'", "img-src 'self' data:", "style-src 'self'", "script-src 'self'", "frame-ancestors 'none'"]) {
      assert.ok(csp.split(/;\s*/).includes(d), `CSP lacks ${d}: ${csp}`);
    }
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['referrer-policy'], 'no-referrer');
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal(r.headers['x-frame-options'], 'DENY');
    // API answers are never cached either
    const sys = await env.srv.api('GET', '/api/v1/systems');
    assert.equal(sys.headers['cache-control'], 'no-store');
    // no file of the console names another origin (no CDN, no external font or script)
    for (const f of ['index.html', 'app.js', 'api.js', 'dom.js', 'logs.js', 'trace.js', 'exporters.js', 'objects.js', 'style.css']) {
      const a = await request(`${env.srv.url}/ui/${f}`);
      assert.equal(a.status, 200, f);
      assert.doesNotMatch(a.text, /(?:src|href|url)\s*[=(]\s*["']?(?:https?:)?\/\//i, `${f} loads nothing from elsewhere`);
      assert.doesNotMatch(a.text, /\.(?:innerHTML|outerHTML)\s*=|insertAdjacentHTML\(|document\.write\(/, `${f} builds no markup from strings`);
    }
    assert.match(r.text, /<script type="module" src="app.js"><\/script>/);
    assert.doesNotMatch(r.text, /<script>|<style>| on[a-z]+=|style="/, 'no inline script, style or handler (the CSP forbids them)');

    const js = await request(`${env.srv.url}/ui/app.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers['content-type'], /^text\/javascript\b/);
    assert.ok(js.headers['content-security-policy']);
    const css = await request(`${env.srv.url}/ui/style.css`);
    assert.match(css.headers['content-type'], /^text\/css\b/);

    const bare = await request(`${env.srv.url}/ui`);
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.location, '/ui/');
    assert.equal((await request(`${env.srv.url}/ui/nope.js`)).status, 404);
    assert.equal((await request(`${env.srv.url}/ui/../api/v1/systems`)).status !== 200, true);
    const post = await request(`${env.srv.url}/ui/`, { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } });
    assert.equal(post.status, 405);
    // nothing but assets is public
    assert.equal((await env.srv.api('GET', '/api/v1/systems', undefined, { token: null })).status, 401);
    const metrics = await request(`${env.srv.url}/metrics`);
    assert.match(metrics.text, /mcpauth_http_requests_total\{route="ui",code="200"\}/);
  });

  test('sign-in: a wrong token is refused with a clear error; the right one opens the console; sign-out forgets it', { timeout: T }, async (t) => {
    const page = await openPage(t);
    await page.goto(`${env.srv.url}/ui/`);
    await page.getByLabel('Admin token').waitFor();
    await shot(page, 'sign-in');
    await page.getByLabel('Admin token').fill('not-the-admin-token');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    const err = page.locator('#signin-error');
    await err.waitFor({ state: 'visible' });
    assert.match(await err.textContent(), /not accepted \(401\)/);
    assert.equal(await page.locator('#nav').isVisible(), false);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);

    await page.getByLabel('Admin token').fill(env.srv.token);
    await page.getByLabel('Admin token').press('Enter'); // the keyboard is enough
    await page.locator('#nav').waitFor({ state: 'visible' });
    await page.locator('#log-table tbody tr[data-id]').first().waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('mcpauth.adminToken')), env.srv.token);
    assert.deepEqual(await page.context().cookies(), [], 'the token is never a cookie');
    assert.ok(!page.url().includes(env.srv.token), 'the token is never in the URL');
    assert.equal(await page.evaluate(() => localStorage.length), 0, 'nor in localStorage');

    // a reload in the same tab keeps the session
    await page.reload();
    await page.locator('#nav').waitFor({ state: 'visible' });

    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.locator('#signin').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(await page.locator('#view').isVisible(), false);
    // signed out, the console asks again after a reload
    await page.reload();
    await page.locator('#signin').waitFor({ state: 'visible' });
  });

  test('a denied token request made with curl: live in the tracing page (columns, severity), its link opens the audit event, the filter fields find it, the CSV download holds it', { timeout: T }, async (t) => {
    const page = await signedIn(t);
    await liveTrace(page);
    assert.equal(await page.locator('#trace-table tbody tr.state.empty').count(), 1, 'an empty table says it is waiting');

    const user = `carol-${crypto.randomUUID().slice(0, 8)}@example.com`;
    const r = await curlExchange(user);
    assert.equal(r.status, 400);
    assert.equal(r.json.error, 'invalid_scope');
    assert.match(r.json.error_description, /^No grant for the scope: repo:read/);
    const [ev] = await apiEvents(`user eq "${user}"`);
    assert.ok(ev, 'the request is in the log');
    assert.match(ev.request.user_agent, /^curl\//);

    // live: the row of that request, its columns and severity
    const row = page.locator(`#trace-table tbody tr.entry[data-event-id="${ev.id}"]`);
    await row.waitFor({ timeout: LIVE });
    const cells = await row.locator('td').allTextContents();
    assert.deepEqual(await page.locator('#trace-table thead th').allTextContents(), ['Time', 'Client IP', 'Endpoint', 'Access policy', 'Redirect URI / client workload', 'Resource server / server workload', 'Severity', 'Message', 'Audit event']);
    assert.equal(await row.locator('td').first().getAttribute('title'), ev.time);
    assert.equal(cells[1], '127.0.0.1');
    assert.equal(cells[2], 'token');
    assert.match(cells[3], /^desktop-github\s+active$/);
    assert.equal(await row.locator('td.client-wl .wl').textContent(), AGENT);
    assert.equal(await row.locator('td.server-wl .wl').textContent(), 'github');
    assert.equal(await row.locator('td.server-wl small.sub').textContent(), GITHUB_RESOURCE);
    assert.equal(cells[6], 'warning');
    assert.equal(await row.locator('.sev').getAttribute('class'), 'sev sev-warning');
    assert.match(await row.getAttribute('class'), /\bsev-row-warning\b/);
    assert.match(cells[7], /No grant/i);
    assert.match(cells[7], /repo:read/);
    // severity colors: a warning badge is amber, an error badge red, an info badge blue
    const color = (loc) => loc.evaluate((el) => getComputedStyle(el).color);
    assert.equal(await color(row.locator('.sev')), 'rgb(138, 83, 0)');
    // a granted request (info, blue) and one for no known system (error, red) on top of it
    assert.equal((await exchange()).status, 200);
    const unknown = await tokenRequest(env.srv, { grant_type: CC, resource: 'https://mcp.unknown.example/mcp', scope: 'x:read' }, { basic: [AGENT, env.secret] });
    assertOAuthError(unknown, 'unknown_system');
    await traceRows(page).nth(2).waitFor({ timeout: LIVE });
    const info = traceRows(page).filter({ has: page.locator('.sev-info') }).first();
    const error = traceRows(page).filter({ has: page.locator('.sev-error') }).first();
    assert.equal(await color(info.locator('.sev')), 'rgb(36, 86, 199)');
    assert.equal(await color(error.locator('.sev')), 'rgb(179, 38, 30)');
    assert.equal(await error.locator('td.client-wl .wl').textContent(), AGENT);
    assert.equal(await error.locator('td.server-wl').textContent(), 'no matchhttps://mcp.unknown.example/mcp');
    assert.match(await error.locator('td.message').textContent(), /^No server workload matched/);
    await shot(page, 'trace');

    // the link: the System log filtered by the event's id, its side panel open
    await row.getByRole('link', { name: 'Event' }).click();
    await page.waitForURL(/#\/logs\?id=/);
    const panel = page.getByRole('dialog');
    await panel.waitFor({ state: 'visible' });
    assert.equal(await page.getByLabel('Filter (SCIM)').inputValue(), `id eq "${ev.id}"`);
    await logRowsAre(page, [ev.id]);
    assert.equal(await panel.locator('#drawer-title').textContent(), `Event ${ev.seq} · token.request`);
    assert.equal(await panel.locator('dd.hash').textContent(), ev.hash);
    assert.ok((await panel.textContent()).includes('No token was issued.'));
    assert.deepEqual(JSON.parse(await panel.locator('details.raw pre').textContent()), ev);
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'hidden' });

    // the filter fields, composed into one SCIM filter with the free box
    await page.getByRole('button', { name: 'Reset', exact: true }).click();
    await page.getByLabel('Outcome').selectOption('denied');
    await page.getByLabel('User', { exact: true }).fill(user);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await logRowsAre(page, [ev.id]);
    assert.equal(await page.locator('#log-effective-filter').textContent(), `outcome eq "denied" and user eq "${user}"`);
    await page.getByLabel('Filter (SCIM)').fill('reason eq "no_grant" or reason eq "server_paused"');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    assert.equal(await page.locator('#log-effective-filter').textContent(), `(reason eq "no_grant" or reason eq "server_paused") and outcome eq "denied" and user eq "${user}"`);
    await logRowsAre(page, [ev.id]);
    const logRow = page.locator(`#log-table tbody tr[data-id="${ev.id}"]`);
    assert.deepEqual(await page.locator('#log-table thead th').allTextContents(), ['Time', 'Outcome', 'Severity', 'User', 'Client', 'System', 'Scopes', 'Status detail']);
    const lc = await logRow.locator('td').allTextContents();
    assert.deepEqual(lc.slice(1, 6), ['denied', 'warning', user, AGENT, 'github']);
    assert.match(lc[6], /✗ repo:read \(denied: no_grant\)/);
    assert.equal(lc[7], ev.status_detail);

    // the CSV download of that selection: the header and the one row, field by field
    const csv = await download(page, 'CSV');
    assert.match(csv.name, /^mcpauth-log-.*\.csv$/);
    const { header, rows } = csvObjects(csv.text);
    assert.deepEqual(header.slice(0, 8), ['id', 'seq', 'time', 'type', 'outcome', 'severity', 'reason', 'status_detail']);
    assert.equal(rows.length, 1, csv.text);
    assert.deepEqual(
      { id: rows[0].id, seq: rows[0].seq, type: rows[0].type, outcome: rows[0].outcome, severity: rows[0].severity, reason: rows[0].reason, status_detail: rows[0].status_detail, user: rows[0].user, client: rows[0].client, system: rows[0].system, ip: rows[0]['request.client_ip'], hash: rows[0].hash },
      { id: ev.id, seq: String(ev.seq), type: 'token.request', outcome: 'denied', severity: 'warning', reason: 'no_grant', status_detail: ev.status_detail, user, client: AGENT, system: 'github', ip: '127.0.0.1', hash: csvText(ev.hash) },
    );
    assert.equal(rows[0].scopes, 'repo:read=denied:no_grant');
    assert.match(rows[0]['request.user_agent'], /^curl\//);
  });

  test('System log: events of real token requests; a bad filter shows the server\'s message; paging; the side panel with the token', { timeout: T }, async (t) => {
    assert.equal((await exchange()).status, 200);
    assertOAuthError(await exchange('bob@example.com'), 'no_grant');
    for (let i = 0; i < 10; i++) assert.equal((await clientCredentials()).status, 200); // enough for pages
    const page = await signedIn(t, '#/logs');
    const table = page.locator('#log-table');
    await table.locator('td.user', { hasText: 'bob@example.com' }).first().waitFor();
    await table.locator('td.user', { hasText: ALICE }).first().waitFor();

    // narrowed by the free filter: exactly the events the API selects
    const filter = 'outcome eq "denied" and reason eq "no_grant"';
    await page.getByLabel('Filter (SCIM)').fill(filter);
    await page.getByLabel('Per page').selectOption('250');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const want = (await apiEvents(filter)).map((e) => e.id);
    assert.ok(want.length >= 2);
    await logRowsAre(page, want);
    for (const o of await table.locator('tbody tr td.outcome').allTextContents()) assert.equal(o, 'denied');

    // no match: the empty state
    await page.getByLabel('Filter (SCIM)').fill('user eq "nobody-at-all"');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await table.locator('tbody tr.state.empty').waitFor();
    assert.equal(await table.locator('tbody tr.state.empty').textContent(), 'No events match this selection.');

    // a bad filter: the server's 400 message, with its column, shown as it is; the table says so
    const bad = 'user eq "x" and';
    const api = await env.srv.api('GET', `/api/v1/logs?filter=${encodeURIComponent(bad)}`);
    assert.equal(api.status, 400);
    await page.getByLabel('Filter (SCIM)').fill(bad);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const alert = page.locator('#view .notice.error');
    await alert.waitFor({ state: 'visible' });
    assert.equal(await alert.textContent(), api.json.error.message);
    assert.match(api.json.error.message, /column \d+/);
    await table.locator('tbody tr.state.error').waitFor();

    // paging through the Link rel="next" header: pages of 10, newest first
    await page.getByLabel('Filter (SCIM)').fill('');
    await page.getByLabel('Per page').selectOption('10');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const all = (await apiEvents(null)).map((e) => e.id);
    assert.ok(all.length > 20, `the log has ${all.length} events`);
    await logRowsAre(page, all.slice(0, 10));
    await page.getByRole('button', { name: 'Next →', exact: true }).click();
    await logRowsAre(page, all.slice(10, 20));
    assert.equal(await page.locator('.page-label').textContent(), 'Page 2');
    await page.getByRole('button', { name: '← Previous', exact: true }).click();
    await logRowsAre(page, all.slice(0, 10));

    // a time range: the last 24 hours hold them all; the Type field selects granted token requests
    await page.getByLabel('Time range').selectOption('-24h');
    assert.equal(await page.getByLabel('Since').inputValue(), '-24h');
    await page.getByLabel('Type', { exact: true }).selectOption('token.request');
    await page.getByLabel('Outcome').selectOption('granted');
    await page.getByLabel('System', { exact: true }).fill('github');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const granted = await apiEvents('type eq "token.request" and outcome eq "granted" and system eq "github"', 10);
    await logRowsAre(page, granted.map((e) => e.id));
    await shot(page, 'system-log');

    // the side panel: token id, key id, algorithm, lifetime, request, hash; Escape closes it, focus returns
    const ev = granted[0];
    const open = table.locator(`tbody tr[data-id="${ev.id}"] button.link`);
    await open.click();
    const panel = page.getByRole('dialog');
    await panel.waitFor({ state: 'visible' });
    assert.equal(await panel.locator('dd.token-id').textContent(), ev.token.id);
    assert.equal(await panel.locator('dd.key-id').textContent(), ev.token.key_id);
    assert.equal(await panel.locator('dd.alg').textContent(), ev.token.alg);
    assert.equal(await panel.locator('dd.lifetime').textContent(), `${ev.token.lifetime} s`);
    assert.ok(ev.token.lifetime <= 120, 'github tokens live at most 120 s');
    assert.equal(await panel.locator('dd.hash').textContent(), ev.hash);
    const text = await panel.textContent();
    for (const v of [ev.request.client_ip, ev.request.grant_type, ev.request.subject_token_sha256, ev.request.target_url ?? GITHUB_RESOURCE]) assert.ok(text.includes(v), `the panel shows ${v}`);
    assert.deepEqual(JSON.parse(await panel.locator('details.raw pre').textContent()), (await apiEvents(`id eq "${ev.id}"`))[0]);
    await shot(page, 'system-log-event');
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'hidden' });
    assert.equal(await open.evaluate((el) => el === document.activeElement), true, 'focus returns to the event');
  });

  test('Downloads: one button per export format, each the whole selection; the CSV rows are the API\'s events', { timeout: T }, async (t) => {
    const page = await signedIn(t, '#/logs');
    const filter = 'type eq "token.request"';
    await page.getByLabel('Type', { exact: true }).selectOption('token.request');
    await page.getByLabel('Per page').selectOption('10');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const want = await apiEvents(filter);
    await logRowsAre(page, want.slice(0, 10).map((e) => e.id));
    const ids = want.map((e) => e.id).sort();
    assert.ok(ids.length > 10, 'more events than one page: the download is the whole selection');
    const lines = (text) => text.split('\n').filter(Boolean);
    const formats = [
      ['JSON lines', /\.jsonl$/, (x) => lines(x).map((l) => JSON.parse(l).id)],
      ['CSV', /\.csv$/, (x) => csvObjects(x).rows.map((r) => r.id)],
      ['CEF', /\.cef$/, (x) => lines(x).map((l) => / externalId=([0-9a-f-]+)/.exec(l)[1])],
      ['OCSF', /\.ocsf\.jsonl$/, (x) => lines(x).map((l) => JSON.parse(l).metadata.uid)],
      ['RFC 5424', /\.log$/, (x) => lines(x).map((l) => /\[mcpauth@32473 id="([0-9a-f-]+)"/.exec(l)[1])],
    ];
    for (const [label, ext, idsOf] of formats) {
      const d = await download(page, label);
      assert.match(d.name, ext, label);
      assert.deepEqual(idsOf(d.text).sort(), ids, `${label}: the selection's events`);
      await page.locator('#view .notice.status', { hasText: `Downloaded ${d.name}` }).waitFor();
    }
    // the CSV rows, field by field, against the API's events
    const { rows } = csvObjects((await download(page, 'CSV')).text);
    const byId = new Map(want.map((e) => [e.id, e]));
    for (const r of rows) {
      const e = byId.get(r.id);
      assert.equal(r.type, 'token.request');
      assert.equal(r.seq, String(e.seq));
      assert.equal(r.outcome, e.outcome);
      assert.equal(r.user, csvText(e.user));
      assert.equal(r.client, csvText(e.client));
      assert.equal(r.status_detail, csvText(e.status_detail));
      assert.equal(r.hash, csvText(e.hash));
    }
    assert.ok(rows.some((r) => r.user === ALICE && r.outcome === 'granted'));
  });

  test('Tracing: a live row within seconds of a token request; filters; pause and resume', { timeout: T }, async (t) => {
    const page = await signedIn(t);
    await liveTrace(page);
    assert.equal((await exchange()).status, 200);
    const granted = traceRow(page, 'granted repo:read');
    await granted.waitFor({ timeout: LIVE });
    const cells = await granted.locator('td').allTextContents();
    assert.equal(cells[1], '127.0.0.1');
    assert.equal(cells[2], 'token');
    assert.match(cells[3], /^desktop-github\s+active$/);
    assert.equal(await granted.locator('td.client-wl .wl').textContent(), 'desktop-agent');
    assert.equal(await granted.locator('td.server-wl .wl').textContent(), 'github');
    assert.equal(await granted.locator('.sev').getAttribute('class'), 'sev sev-info');
    assert.equal(await granted.getByRole('link', { name: 'Event' }).count(), 1);

    assertOAuthError(await exchange('mallory@example.com'), 'no_grant');
    const warn = traceRows(page).filter({ has: page.locator('.sev-warning') }).first();
    await warn.waitFor({ timeout: LIVE });
    assert.match(await warn.locator('td.message').textContent(), /No grant/i);

    // minimum severity warning: a granted request no longer shows, a denied one does
    await page.getByLabel('Minimum severity').selectOption('warning');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.locator('#trace-status[data-state="live"]').waitFor();
    await page.getByRole('button', { name: 'Clear', exact: true }).click();
    assert.equal((await exchange()).status, 200);
    assertOAuthError(await exchange('eve@example.com'), 'no_grant');
    await traceRows(page).locator('.sev-warning').first().waitFor({ timeout: LIVE });
    assert.equal(await traceRows(page).locator('.sev-info').count(), 0);

    // paused: entries are held, not shown; resumed: they appear
    await page.getByRole('button', { name: 'Pause', exact: true }).click();
    assertOAuthError(await exchange('trudy@example.com'), 'no_grant');
    await page.locator('.held', { hasText: '1 new while paused' }).waitFor({ timeout: LIVE });
    assert.equal(await traceRows(page).count(), 1);
    await page.getByRole('button', { name: 'Resume', exact: true }).click();
    assert.equal(await traceRows(page).count(), 2);

    // filter by system: requests for another system do not show
    await page.getByLabel('Minimum severity').selectOption('info');
    await page.getByLabel('System', { exact: true }).fill('docs');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.locator('#trace-status[data-state="live"]').waitFor();
    await page.getByRole('button', { name: 'Clear', exact: true }).click();
    assert.equal((await exchange()).status, 200); // github
    const cc = await clientCredentials();
    assert.equal(cc.status, 200, cc.text);
    await traceRow(page, 'granted docs:read').waitFor({ timeout: LIVE });
    assert.equal(await traceRows(page).count(), 1);
  });

  test('Tracing: the stream carries the token in a header only; a dropped frame shows a banner with its count; a redirect URI shows with the client workload', { timeout: T }, async (t) => {
    const page = await signedIn(t);
    const seen = [];
    const entry = { time: '2026-11-22T09:14:03.512384Z', client_ip: '10.0.0.7', endpoint: 'token', access_policy: null, client_workload: null, resource: null, server_workload: 'github', severity: 'error', message: 'No client workload matched', event_id: null };
    const authz = { ...entry, client_ip: '10.0.0.8', endpoint: 'authorize', client_workload: 'gateway', redirect_uri: 'https://gw.example/callback', access_policy: { id: 'gw-github', active: true }, severity: 'info', message: 'granted', event_id: '01a2018c-a19e-71ae-8e18-196199ceaab3' };
    await page.route('**/api/v1/trace*', async (route) => {
      seen.push({ url: route.request().url(), auth: route.request().headers().authorization });
      // CRLF line ends, a comment, two entries, a marker of 7 dropped entries
      const body = `: hello\r\n\r\nevent: trace\r\ndata: ${JSON.stringify(entry)}\r\n\r\nevent: trace\ndata: ${JSON.stringify(authz)}\n\nevent: dropped\ndata: {"count": 7}\n\n`;
      await route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body });
    });
    await page.getByRole('link', { name: 'MCP Authorization Tracing' }).click();
    const banner = page.locator('#trace-dropped');
    await banner.waitFor({ state: 'visible' });
    assert.match(await banner.textContent(), /^The server dropped (7|14|21) entries/);
    const err = traceRows(page).filter({ hasText: '10.0.0.7' }).first();
    assert.equal(await err.locator('.sev').getAttribute('class'), 'sev sev-error');
    assert.equal(await err.locator('td.client-wl').textContent(), 'no match');
    assert.equal(await err.locator('td').last().textContent(), '–', 'no audit event, no link');
    const ok2 = traceRows(page).filter({ hasText: '10.0.0.8' }).first();
    assert.equal(await ok2.locator('td.client-wl .wl').textContent(), 'gateway');
    assert.equal(await ok2.locator('td.client-wl small.sub').textContent(), 'https://gw.example/callback');
    assert.equal(await ok2.getByRole('link', { name: 'Event' }).getAttribute('href'), `#/logs?id=${authz.event_id}`);
    assert.equal(seen[0].auth, `Bearer ${env.srv.token}`);
    assert.ok(!seen[0].url.includes(env.srv.token));
  });

  test('Exporters: the form checks before saving; add a file exporter, see its status, send a test event, edit it; secrets stay write-only and survive an edit; pause, delete', { timeout: T }, async (t) => {
    const page = await signedIn(t, '#/settings/exporters');
    await page.getByRole('heading', { name: 'Exporters' }).waitFor();
    await page.locator('#exporters-table tbody tr.state.empty').waitFor();
    const posts = [];
    page.on('request', (r) => {
      if (r.url().includes('/api/v1/exporters') && ['POST', 'PATCH', 'PUT'].includes(r.method())) posts.push(`${r.method()} ${new URL(r.url()).pathname}`);
    });
    const out = path.join(scratch, 'ui-export.jsonl');
    const form = page.locator('#exporter-form');
    const formErr = form.locator('.notice.error');

    // checked in the form, before anything is sent: the URL's scheme must be the type's
    await page.getByLabel('ID', { exact: true }).fill('ui-file');
    await page.getByLabel('Type', { exact: true }).selectOption('file');
    assert.equal(await page.getByLabel('URL', { exact: true }).getAttribute('placeholder'), 'file:///var/log/mcpauth/audit.jsonl');
    assert.equal(await page.getByLabel('Profile').isVisible(), false, 'a profile only for http');
    assert.equal(await page.getByLabel('Auth token (write-only)').isVisible(), false, 'a file exporter has no credentials');
    await page.getByLabel('URL', { exact: true }).fill('http://127.0.0.1:9/x');
    await page.getByRole('button', { name: 'Add exporter', exact: true }).click();
    await formErr.waitFor({ state: 'visible' });
    assert.equal(await formErr.textContent(), "URL: a file exporter's url is file:///ABSOLUTE/PATH.");
    assert.equal(await page.getByLabel('URL', { exact: true }).getAttribute('aria-invalid'), 'true');
    assert.equal(await page.getByLabel('URL', { exact: true }).evaluate((el) => el === document.activeElement), true);
    await page.getByLabel('ID', { exact: true }).fill('');
    await page.getByLabel('URL', { exact: true }).fill(`file://${out}`);
    await page.getByRole('button', { name: 'Add exporter', exact: true }).click();
    await formErr.filter({ hasText: 'ID: required.' }).waitFor();
    assert.deepEqual(posts, [], 'nothing was sent');

    // the server's 400 (a bad filter), under the form; nothing added
    await page.getByLabel('ID', { exact: true }).fill('ui-file');
    await page.getByLabel('Filter (SCIM, optional)').fill('type eq');
    await page.getByRole('button', { name: 'Add exporter', exact: true }).click();
    await formErr.filter({ hasText: /^filter: column \d+/ }).waitFor();
    assert.deepEqual(ok(await env.srv.api('GET', '/api/v1/exporters')), []);

    await page.getByLabel('Filter (SCIM, optional)').fill('type eq "token.request"');
    await page.getByLabel('Start', { exact: true }).selectOption('beginning');
    await page.getByRole('button', { name: 'Add exporter', exact: true }).click();
    const row = page.locator('#exporters-table tbody tr[data-id="ui-file"]');
    await row.waitFor();
    const doc = ok(await env.srv.api('GET', '/api/v1/exporters/ui-file'));
    assert.equal(doc.url, `file://${out}`);
    assert.equal(doc.start, 'beginning');
    assert.equal(doc.filter, 'type eq "token.request"');

    // its status: the state from /status, and the backlog delivered (start: beginning)
    const state = row.locator('td.state');
    await eventually(async () => !['…', ''].includes(await state.textContent()), { timeoutMs: WAIT });
    const tokens = (await apiEvents('type eq "token.request"')).length;
    const caught = await eventually(async () => {
      await page.getByRole('button', { name: 'Refresh', exact: true }).click();
      return (await row.locator('td.delivered').textContent()) === String(tokens);
    }, { timeoutMs: WAIT, intervalMs: 500 });
    assert.ok(caught, `delivered ${await row.locator('td.delivered').textContent()}, want ${tokens}`);
    assert.equal(await row.locator('td.failures').textContent(), '0');
    assert.match(await row.locator('td.lag').textContent(), /^0 events, /);

    // test: one event sent now, "delivered", and in the file
    await row.getByRole('button', { name: 'Test', exact: true }).click();
    const msg = page.locator('#view .notice.status');
    await msg.filter({ hasText: 'delivered' }).waitFor();
    const eventId = /event ([0-9a-f-]{36})/.exec(await msg.textContent())[1];
    await eventually(async () => fs.existsSync(out) && (await fsp.readFile(out, 'utf8')).includes(eventId), { timeoutMs: WAIT });
    await shot(page, 'exporters');

    // edit: the form filled with the exporter, ID fixed; only the changes are sent (PATCH)
    await row.getByRole('button', { name: 'Edit', exact: true }).click();
    await form.getByRole('heading', { name: 'Edit exporter ui-file' }).waitFor();
    assert.equal(await page.getByLabel('ID', { exact: true }).inputValue(), 'ui-file');
    assert.equal(await page.getByLabel('ID', { exact: true }).getAttribute('readonly'), '');
    assert.equal(await page.getByLabel('URL', { exact: true }).inputValue(), `file://${out}`);
    assert.equal(await page.getByLabel('Filter (SCIM, optional)').inputValue(), 'type eq "token.request"');
    // the server's 400 for an edit, shown under the form; nothing changed
    await page.getByLabel('Filter (SCIM, optional)').fill('outcome eq');
    await page.getByRole('button', { name: 'Save changes', exact: true }).click();
    await formErr.filter({ hasText: /^filter: column \d+/ }).waitFor();
    assert.equal(ok(await env.srv.api('GET', '/api/v1/exporters/ui-file')).filter, 'type eq "token.request"');
    posts.length = 0;
    await page.getByLabel('Filter (SCIM, optional)').fill('type eq "token.request" and outcome eq "denied"');
    await page.getByLabel('Format').selectOption('cef');
    await page.getByRole('button', { name: 'Save changes', exact: true }).click();
    await msg.filter({ hasText: 'Exporter ui-file saved.' }).waitFor();
    assert.deepEqual(posts, ['PATCH /api/v1/exporters/ui-file']);
    const edited = ok(await env.srv.api('GET', '/api/v1/exporters/ui-file'));
    assert.equal(edited.format, 'cef');
    assert.equal(edited.filter, 'type eq "token.request" and outcome eq "denied"');
    assert.equal(edited.url, `file://${out}`);
    assert.equal(edited.start, 'beginning');
    await form.getByRole('heading', { name: 'Add an exporter' }).waitFor();
    await eventually(async () => (await row.locator('td').nth(3).textContent()) === 'cef', { timeoutMs: WAIT });

    // pause and resume
    await row.getByRole('button', { name: 'Pause', exact: true }).click();
    await row.getByRole('button', { name: 'Resume', exact: true }).waitFor();
    assert.equal(ok(await env.srv.api('GET', '/api/v1/exporters/ui-file')).paused, true);
    await row.getByRole('button', { name: 'Resume', exact: true }).click();
    await row.getByRole('button', { name: 'Pause', exact: true }).waitFor();
    assert.equal(ok(await env.srv.api('GET', '/api/v1/exporters/ui-file')).paused, false);

    // an http exporter: its fields (profile, credentials) appear for the type; secrets in password fields, never shown again
    const secret = 'ui-secret-token-9f3c';
    await page.getByLabel('ID', { exact: true }).fill('ui-hook');
    await page.getByLabel('Type', { exact: true }).selectOption('http');
    assert.equal(await page.getByLabel('URL', { exact: true }).getAttribute('placeholder'), 'https://collector.example.com/ingest');
    await page.getByLabel('Profile').selectOption('webhook');
    await page.getByLabel('URL', { exact: true }).fill('http://127.0.0.1:9/hook');
    assert.equal(await page.getByLabel('Auth token (write-only)').getAttribute('type'), 'password');
    await page.getByLabel('Auth token (write-only)').fill(secret);
    await page.getByLabel('HMAC secret (write-only)').fill(`${secret}-hmac`);
    await page.getByRole('button', { name: 'Add exporter', exact: true }).click();
    const hook = page.locator('#exporters-table tbody tr[data-id="ui-hook"]');
    await hook.waitFor();
    assert.equal(await page.getByLabel('Auth token (write-only)').inputValue(), '');
    const list = await env.srv.api('GET', '/api/v1/exporters');
    assert.ok(!list.text.includes(secret), list.text);
    assert.ok(!(await page.content()).includes(secret));
    const hookDoc = ok(await env.srv.api('GET', '/api/v1/exporters/ui-hook'));
    assert.equal(hookDoc.profile, 'webhook');
    assert.equal(hookDoc.auth_set, true);

    // edited with the secret fields left blank: the stored credentials stay as they were
    await hook.getByRole('button', { name: 'Edit', exact: true }).click();
    await form.getByRole('heading', { name: 'Edit exporter ui-hook' }).waitFor();
    assert.match(await form.locator('.creds-hint').textContent(), /Leave these fields blank to keep them/);
    assert.equal(await page.getByLabel('Auth token (write-only)').inputValue(), '');
    await page.getByLabel('URL', { exact: true }).fill('http://127.0.0.1:9/hook2');
    await page.getByRole('button', { name: 'Save changes', exact: true }).click();
    await msg.filter({ hasText: 'Exporter ui-hook saved.' }).waitFor();
    const hook2 = ok(await env.srv.api('GET', '/api/v1/exporters/ui-hook'));
    assert.equal(hook2.url, 'http://127.0.0.1:9/hook2');
    assert.equal(hook2.auth_set, true);
    // the change recorded touched the url, not the sealed credentials
    const change = (await apiEvents('type eq "admin.change"', 50)).find((e) => e.object === 'exporter:ui-hook' && e.action === 'update');
    assert.ok(change, 'the edit is an admin.change event');
    assert.equal(change.actor, 'admin-token');
    assert.deepEqual(Object.keys(change.changes.after).sort(), ['url']);

    // a failed test shows the sink's error
    await hook.getByRole('button', { name: 'Test', exact: true }).click();
    await page.locator('#view .notice.error', { hasText: 'Test of ui-hook failed' }).waitFor();

    // delete asks for a second press
    await hook.getByRole('button', { name: 'Delete', exact: true }).click();
    await hook.getByRole('button', { name: 'Confirm delete', exact: true }).click();
    await hook.waitFor({ state: 'detached' });
    assert.equal((await env.srv.api('GET', '/api/v1/exporters/ui-hook')).status, 404);
    await row.getByRole('button', { name: 'Delete', exact: true }).click();
    await row.getByRole('button', { name: 'Confirm delete', exact: true }).click();
    await row.waitFor({ state: 'detached' });
    await page.locator('#exporters-table tbody tr.state.empty').waitFor();
  });

  test('Systems: scopes, algorithm, lifetime and target URLs; pausing github with one click denies the next request with "Server paused" (curl, trace, log); the change is audited', { timeout: T }, async (t) => {
    const page = await signedIn(t, '#/systems');
    const row = page.locator('#systems-table tbody tr[data-id="github"]');
    await row.waitFor();
    assert.deepEqual(await page.locator('#systems-table thead th').allTextContents(), ['ID', 'Name', 'Audience', 'Target URLs', 'Scopes', 'Algorithm', 'Lifetime', 'Token type', 'Status', 'Actions']);
    const cells = await row.locator('td').allTextContents();
    assert.equal(cells[3], GITHUB_RESOURCE);
    assert.equal(await row.locator('li.scope.granted').textContent(), 'repo:read enabled');
    assert.equal(await row.locator('li.scope.disabled').textContent(), 'repo:write disabled');
    assert.equal(cells[5], 'inherit (ES256)');
    assert.equal(cells[6], '120s');
    assert.equal(cells[8], 'serving');
    const docs = await page.locator('#systems-table tbody tr[data-id="docs"] td').allTextContents();
    assert.equal(docs[3], env.docsResource);
    assert.equal(docs[5], 'ES256');
    assert.equal(docs[6], 'default (300s)');
    await shot(page, 'systems');

    await row.getByRole('button', { name: 'Pause', exact: true }).click();
    await row.getByRole('button', { name: 'Resume', exact: true }).waitFor();
    assert.equal(await row.locator('td').nth(8).textContent(), 'paused');
    assert.equal(ok(await env.srv.api('GET', '/api/v1/systems/github')).paused, true);
    const [change] = await apiEvents('type eq "admin.change"', 1);
    assert.equal(change.object, 'system:github');
    assert.equal(change.actor, 'admin-token');
    assert.deepEqual(change.changes, { before: { paused: false }, after: { paused: true } });

    // the next request, with curl: denied, "Server paused", a warning in the trace and the log
    await liveTrace(page);
    const user = `paused-${crypto.randomUUID().slice(0, 8)}@example.com`;
    const r = await curlExchange(user);
    assert.equal(r.status, 400);
    assert.equal(r.json.error, 'invalid_target');
    assert.match(r.json.error_description, /^Server paused/);
    const [ev] = await apiEvents(`user eq "${user}"`);
    assert.equal(ev.reason, 'server_paused');
    assert.match(ev.status_detail, /^Server paused: github/);
    const denied = page.locator(`#trace-table tbody tr.entry[data-event-id="${ev.id}"]`);
    await denied.waitFor({ timeout: LIVE });
    assert.match(await denied.locator('td.message').textContent(), /Server paused/);
    assert.equal(await denied.locator('.sev').getAttribute('class'), 'sev sev-warning');
    assert.equal(await denied.locator('td.server-wl .wl').textContent(), 'github');
    await shot(page, 'trace-paused', { docs: false });
    // its audit event, from the trace's link: the status detail says so
    await denied.getByRole('link', { name: 'Event' }).click();
    await page.getByRole('dialog').waitFor({ state: 'visible' });
    await logRowsAre(page, [ev.id]);
    assert.equal(await page.locator(`#log-table tr[data-id="${ev.id}"] td.detail`).textContent(), ev.status_detail);

    await page.getByRole('link', { name: 'Systems' }).click();
    await row.getByRole('button', { name: 'Resume', exact: true }).click();
    await row.getByRole('button', { name: 'Pause', exact: true }).waitFor();
    assert.equal(ok(await env.srv.api('GET', '/api/v1/systems/github')).paused, false);
    assert.equal((await exchange()).status, 200);

    // Clients: the policy at a glance
    await page.getByRole('link', { name: 'Clients' }).click();
    const client = page.locator('#clients-table tbody tr[data-id="desktop-agent"]');
    await client.waitFor();
    assert.match(await client.textContent(), /client_secret_basic/);
    await shot(page, 'clients');
  });

  test('Access policies: deactivating desktop-github denies (no_access_policy); activating restores; a refused change shows the server\'s message', { timeout: T }, async (t) => {
    const page = await signedIn(t, '#/access-policies');
    const row = page.locator('#access-policies-table tbody tr[data-id="desktop-github"]');
    await row.waitFor();
    await shot(page, 'access-policies');
    await row.getByRole('button', { name: 'Deactivate', exact: true }).click();
    await row.getByRole('button', { name: 'Activate', exact: true }).waitFor();
    assert.match(await row.textContent(), /inactive/);
    assert.equal(ok(await env.srv.api('GET', '/api/v1/access-policies/desktop-github')).active, false);
    assertOAuthError(await exchange(), 'no_access_policy');

    await row.getByRole('button', { name: 'Activate', exact: true }).click();
    await row.getByRole('button', { name: 'Deactivate', exact: true }).waitFor();
    assert.equal(ok(await env.srv.api('GET', '/api/v1/access-policies/desktop-github')).active, true);
    assert.equal((await exchange()).status, 200);

    // the server's message for a refused change is shown (the policy changed behind the page)
    const saved = ok(await env.srv.api('GET', '/api/v1/access-policies/desktop-docs'));
    ok(await env.srv.api('DELETE', '/api/v1/access-policies/desktop-docs'), 204);
    t.after(async () => ok(await env.srv.api('POST', '/api/v1/access-policies', saved), 201));
    await page.locator('#access-policies-table tbody tr[data-id="desktop-docs"]').getByRole('button', { name: 'Deactivate', exact: true }).click();
    const err = page.locator('#view .notice.error');
    await err.waitFor({ state: 'visible' });
    assert.match(await err.textContent(), /desktop-docs/);
  });

  test('Grants: the list; a grant created from the form lets dave have repo:read; deleted, he is denied again', { timeout: T }, async (t) => {
    const dave = 'dave@example.com';
    assertOAuthError(await exchange(dave), 'no_grant');
    const page = await signedIn(t, '#/grants');
    const table = page.locator('#grants-table');
    const alice = table.locator(`tbody tr[data-id="github:user:${ALICE}"]`);
    await alice.waitFor();
    assert.deepEqual((await alice.locator('td').allTextContents()).slice(0, 4), [`github:user:${ALICE}`, `user:${ALICE}`, 'github', 'repo:readrepo:write']);
    await page.getByLabel('System', { exact: true }).selectOption('github');
    await page.locator('#grant-form small.hint', { hasText: 'Scopes of github: repo:read repo:write' }).waitFor();

    // the form checks before saving
    const formErr = page.locator('#grant-form .notice.error');
    await page.getByRole('button', { name: 'Create grant', exact: true }).click();
    await formErr.filter({ hasText: 'Subject: required.' }).waitFor();

    await page.getByLabel('Subject type').selectOption('user');
    await page.getByLabel('Subject', { exact: true }).fill(dave);
    await page.getByLabel('Scopes').fill('repo:read');
    await page.getByRole('button', { name: 'Create grant', exact: true }).click();
    const row = table.locator(`tbody tr[data-id="github:user:${dave}"]`);
    await row.waitFor();
    assert.deepEqual(ok(await env.srv.api('GET', `/api/v1/grants/github:user:${dave}`)).scopes, ['repo:read']);
    assert.equal((await exchange(dave)).status, 200);
    await shot(page, 'grants');

    // the same again: the server's 409, under the form
    await page.getByLabel('Subject', { exact: true }).fill(dave);
    await page.getByLabel('Scopes').fill('repo:read');
    await page.getByRole('button', { name: 'Create grant', exact: true }).click();
    await formErr.filter({ hasText: 'already exists' }).waitFor();

    await row.getByRole('button', { name: 'Delete', exact: true }).click();
    await row.getByRole('button', { name: 'Confirm delete', exact: true }).click();
    await row.waitFor({ state: 'detached' });
    assert.equal((await env.srv.api('GET', `/api/v1/grants/github:user:${dave}`)).status, 404);
    assertOAuthError(await exchange(dave), 'no_grant');
    const [del] = await apiEvents('type eq "admin.change"', 1);
    assert.equal(del.action, 'delete');
    assert.equal(del.object, `grant:github:user:${dave}`);
  });

  test('Signing keys: retiring the only active key shows the server\'s 409; a new key created, activated; the old one retired; tokens are signed by the new one', { timeout: T }, async (t) => {
    const page = await signedIn(t, '#/keys');
    const keys = ok(await env.srv.api('GET', '/api/v1/keys'));
    const old = keys.find((k) => k.alg === 'ES256' && k.status === 'active');
    assert.ok(old, JSON.stringify(keys));
    const oldRow = page.locator(`#keys-table tbody tr[data-id="${old.kid}"]`);
    await oldRow.waitFor();
    assert.deepEqual((await oldRow.locator('td').allTextContents()).slice(0, 3), [old.kid, 'ES256', 'active']);
    assert.equal(await oldRow.getByRole('button', { name: 'Activate', exact: true }).count(), 0);

    // the only active ES256 key (the default algorithm): the server refuses, and says why
    await oldRow.getByRole('button', { name: 'Retire', exact: true }).click();
    await oldRow.getByRole('button', { name: 'Confirm retire', exact: true }).click();
    const err = page.locator('#view > .notice.error');
    await err.waitFor({ state: 'visible' });
    const refused = await env.srv.api('POST', `/api/v1/keys/${old.kid}/retire`);
    assert.equal(refused.status, 409);
    assert.equal(await err.textContent(), refused.json.error.message);
    assert.match(refused.json.error.message, /only active ES256 key/);
    assert.equal(ok(await env.srv.api('GET', `/api/v1/keys/${old.kid}`)).status, 'active');

    // create: published (ES256 already has an active key)
    await page.getByLabel('Algorithm').selectOption('ES256');
    await page.getByRole('button', { name: 'Create key', exact: true }).click();
    const created = page.locator('#view .notice.status', { hasText: /^Key es256-.* created \(published\)\.$/ });
    await created.waitFor();
    const kid = /^Key (\S+) created/.exec(await created.textContent())[1];
    const newRow = page.locator(`#keys-table tbody tr[data-id="${kid}"]`);
    await newRow.waitFor();
    assert.equal(await newRow.locator('td').nth(2).textContent(), 'published');

    // activate the new key: the old one is published
    await newRow.getByRole('button', { name: 'Activate', exact: true }).click();
    await page.locator('#view .notice.status', { hasText: `Key ${kid} activated.` }).waitFor();
    await eventually(async () => (await newRow.locator('td').nth(2).textContent()) === 'active', { timeoutMs: WAIT });
    assert.equal(ok(await env.srv.api('GET', `/api/v1/keys/${kid}`)).status, 'active');
    assert.equal(ok(await env.srv.api('GET', `/api/v1/keys/${old.kid}`)).status, 'published');
    await eventually(async () => (await oldRow.locator('td').nth(2).textContent()) === 'published', { timeoutMs: WAIT });
    await shot(page, 'keys');

    // retire the old one now: allowed
    await oldRow.getByRole('button', { name: 'Retire', exact: true }).click();
    await oldRow.getByRole('button', { name: 'Confirm retire', exact: true }).click();
    await page.locator('#view .notice.status', { hasText: `Key ${old.kid} retired.` }).waitFor();
    await eventually(async () => (await oldRow.locator('td').nth(2).textContent()) === 'retired', { timeoutMs: WAIT });
    assert.equal(ok(await env.srv.api('GET', `/api/v1/keys/${old.kid}`)).status, 'retired');
    assert.equal(await oldRow.getByRole('button').count(), 0, 'a retired key has no actions');

    // tokens are now signed by the new key; each step was a key.rotate event
    const r = await exchange();
    assert.equal(r.status, 200, r.text);
    const header = JSON.parse(Buffer.from(r.json.access_token.split('.')[0], 'base64url').toString());
    assert.equal(header.kid, kid);
    const rotations = (await apiEvents('type eq "key.rotate"', 10)).map((e) => `${e.action} ${e.object}`);
    for (const s of [`create key:${kid}`, `activate key:${kid}`, `publish key:${old.kid}`, `retire key:${old.kid}`]) assert.ok(rotations.includes(s), `${s} in ${rotations}`);
  });

  test('a narrow screen: the nav is a menu, forms stack, tables scroll inside their frame; the keyboard reaches everything', { timeout: T }, async (t) => {
    const narrow = await signedIn(t, '#/systems', { width: 390, height: 844 });
    await narrow.locator('#systems-table tbody tr[data-id]').first().waitFor();
    const menu = narrow.getByRole('button', { name: 'Menu', exact: true });
    assert.equal(await menu.isVisible(), true);
    assert.equal(await narrow.getByRole('link', { name: 'Grants' }).isVisible(), false, 'the nav is folded');
    await menu.click();
    assert.equal(await menu.getAttribute('aria-expanded'), 'true');
    await narrow.getByRole('link', { name: 'Grants' }).waitFor({ state: 'visible' });
    await shot(narrow, 'narrow-menu', { docs: false });
    await narrow.getByRole('link', { name: 'System log' }).click();
    await narrow.locator('#log-table tbody tr[data-id]').first().waitFor();
    assert.equal(await menu.getAttribute('aria-expanded'), 'false', 'the menu closes on navigation');
    const m = await narrow.evaluate(() => {
      const s = document.querySelector('#view .scroll');
      const wide = [...document.querySelectorAll('body *')]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1 && !el.closest('table'))
        .map((el) => `${el.tagName.toLowerCase()}.${el.className}`);
      return { page: document.documentElement.scrollWidth, vw: window.innerWidth, frame: s.clientWidth, table: s.scrollWidth, wide };
    });
    assert.ok(m.page <= m.vw, `the page does not scroll sideways (${m.page} > ${m.vw}: ${m.wide.slice(0, 8).join(' ')})`);
    assert.ok(m.table > m.frame, 'the table scrolls inside its frame');
    await shot(narrow, 'narrow-log', { docs: false });

    // 1280×800, keyboard only: Tab reaches the skip link, every page of the nav, sign-out and the events
    const page = await signedIn(t, '#/logs');
    await page.locator('#log-table tbody tr[data-id]').first().waitFor();
    assert.equal(await page.getByRole('button', { name: 'Menu', exact: true }).isVisible(), false);
    await page.reload(); // focus starts at the top of the document
    await page.locator('#log-table tbody tr[data-id]').first().waitFor();
    const nav = await page.locator('#nav').boundingBox();
    assert.ok(nav.height < 60, 'the nav is one line at 1280 pixels');
    const reached = new Set();
    let onEvent = false;
    for (let i = 0; i < 80 && !onEvent; i++) {
      await page.keyboard.press('Tab');
      const f = await page.evaluate(() => {
        const el = document.activeElement;
        return { text: (el.textContent || '').trim(), event: el.matches('#log-table button.link') };
      });
      reached.add(f.text);
      onEvent = f.event;
    }
    for (const s of ['Skip to content', 'System log', 'MCP Authorization Tracing', 'Systems', 'Clients', 'Access policies', 'Grants', 'Signing keys', 'Settings', 'Sign out', 'Search', 'CSV']) assert.ok(reached.has(s), `Tab reaches ${s}`);
    assert.ok(onEvent, 'Tab reaches the events');
    await page.keyboard.press('Enter');
    await page.getByRole('dialog').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Close');
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement.matches('#log-table button.link')), true);
  });

  test('hostile user and scope names render as text in the log, the side panel and the trace', { timeout: T }, async (t) => {
    const page = await signedIn(t);
    await liveTrace(page);
    const r = await exchange(XSS, `repo:read ${'<svg/onload=alert(2)>'}`);
    assert.equal(r.status, 400, r.text); // no grant for that user
    const trow = traceRows(page).first();
    await trow.waitFor({ timeout: LIVE });
    assert.match(await trow.locator('td.message').textContent(), /<svg\/onload=alert\(2\)>/);

    await page.getByRole('link', { name: 'System log' }).click();
    await page.getByLabel('User', { exact: true }).fill(XSS);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const cell = page.locator('#log-table td.user').first();
    await cell.waitFor();
    assert.equal(await cell.textContent(), XSS);
    assert.equal(await page.locator('#log-effective-filter').textContent(), `user eq ${JSON.stringify(XSS)}`);
    assert.match(await page.locator('#log-table td.scopes').first().textContent(), /<svg\/onload=alert\(2\)>/);
    await page.locator('#log-table tbody tr button.link').first().click();
    assert.ok((await page.getByRole('dialog').locator('details.raw pre').textContent()).includes(XSS));
    assert.ok((await page.getByRole('dialog').textContent()).includes(XSS));

    // no element came from the data: not an <img>, not an <svg>, and nothing ran
    assert.equal(await page.locator('img, svg').count(), 0);
    assert.equal(await page.evaluate(() => document.querySelectorAll('[onerror], [onload]').length), 0);
  });
});
