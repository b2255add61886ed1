// The web console (spec/http-api.md, "Web console"; docs/console.md) in a
// real Chromium driven by playwright-core, against the real binary: the
// security headers of /ui/; sign-in with a wrong and the right admin token
// (kept in sessionStorage, never a cookie); the System log showing events of
// real token requests, narrowed by a SCIM filter, the server's message for a
// bad one, paging and the event drawer; the download; the live trace table
// (new rows with their severity, filters, pause); exporters added, tested,
// paused and deleted from the form; a system paused and an access policy
// switched off from their pages, seen denying in the trace and the API; and
// hostile user and scope names shown as text, never markup.
//
// One server and one browser serve every test (each test opens its own
// browser context, so sessionStorage starts empty); the tests run in order
// and undo what they change in the policy.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { eventually, ok } from './lib/check.mjs';
import { ALICE, assertOAuthError, CC, devIdToken, GITHUB_AUD, GITHUB_RESOURCE, TE, tokenRequest, TT_ID_JAG, TT_ID_TOKEN } from './lib/oauth.mjs';
import { assertCleanExit, logServersOnFailure, request, startServer, tempDir } from './lib/server.mjs';

logServersOnFailure();

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
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
    : false;

const T = 30_000; // every test's bound
const WAIT = 8_000; // what the page gets to show something (ASan builds are slower)
const XSS = '<img src=x onerror=alert(1)>';

const AGENT = 'desktop-agent';

let env;
let browser;
let scratch;

/**
 * A server with a small policy: github (ID-JAGs, alice holds repo:read) and docs
 * (access tokens, audience the server itself), one client for both. One client
 * secret only: hashing secrets is slow on purpose, and slower still under ASan.
 */
async function startConsoleServer() {
  const srv = await startServer();
  try {
    const issuer = srv.url;
    const e = { srv, issuer, docsResource: `${issuer}/mcp/docs`, secret: `agent-secret-${crypto.randomUUID()}` };
    ok(
      await srv.api('POST', '/api/v1/apply', {
        systems: [
          { id: 'github', name: 'GitHub MCP', audience: GITHUB_AUD, resource_urls: [GITHUB_RESOURCE], scopes: [{ name: 'repo:read', enabled: true }, { name: 'repo:write', enabled: false }], token_type: 'id-jag' },
          { id: 'docs', name: 'Docs MCP', audience: issuer, resource_urls: [e.docsResource], scopes: [{ name: 'docs:read', enabled: true }], token_type: 'access_token' },
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
async function openPage(t) {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', async (d) => {
    problems.push(`dialog: ${d.type()} ${d.message()}`);
    await d.dismiss();
  });
  t.after(async () => {
    await context.close();
    assert.deepEqual(problems, [], 'the console raised errors or dialogs');
  });
  return page;
}

/** openPage, then sign in with the admin token and wait for the console. */
async function signedIn(t, hash = '') {
  const page = await openPage(t);
  await page.goto(`${env.srv.url}/ui/${hash}`);
  await page.getByLabel('Admin token').fill(env.srv.token);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.locator('#nav').waitFor({ state: 'visible' });
  return page;
}

/** Token exchange for an ID-JAG to github, as `user` (alice holds repo:read; anyone else: no_grant). */
async function exchange(user = ALICE, scope = 'repo:read') {
  const idt = await devIdToken(env.srv, user, ['engineering']);
  return tokenRequest(
    env.srv,
    { grant_type: TE, requested_token_type: TT_ID_JAG, audience: GITHUB_AUD, resource: GITHUB_RESOURCE, scope, subject_token: idt, subject_token_type: TT_ID_TOKEN },
    { basic: [AGENT, env.secret] },
  );
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

/** Opens the trace page and waits until its stream is open (entries are not retained). */
async function liveTrace(page) {
  await page.getByRole('link', { name: 'MCP Authorization Tracing' }).click();
  await page.locator('#trace-status[data-state="live"]').waitFor();
}

/** The trace row whose message contains `text`, once it is there. */
function traceRow(page, text) {
  return page.locator('#trace-table tbody tr').filter({ hasText: text }).first();
}

describe('web console', { skip, timeout: 120_000 }, () => {
  before(async () => {
    env = await startConsoleServer();
    assert.equal((await exchange()).status, 200); // warms the secret cache
    scratch = await tempDir('mcpauth-e2e-ui-');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
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
    await page.locator('#log-table tbody tr').first().waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('mcpauth.adminToken')), env.srv.token);
    assert.deepEqual(await page.context().cookies(), [], 'the token is never a cookie');
    assert.ok(!page.url().includes(env.srv.token), 'the token is never in the URL');

    // a reload in the same tab keeps the session
    await page.reload();
    await page.locator('#nav').waitFor({ state: 'visible' });

    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.locator('#signin').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(await page.locator('#view').isVisible(), false);
  });

  test('System log: events of real token requests; a SCIM filter narrows them; a bad filter shows the server\'s message; paging; the event drawer', { timeout: T }, async (t) => {
    assert.equal((await exchange()).status, 200);
    assertOAuthError(await exchange('bob@example.com'), 'no_grant');
    for (let i = 0; i < 10; i++) assert.equal((await clientCredentials()).status, 200); // enough for pages
    const page = await signedIn(t, '#/logs');
    const table = page.locator('#log-table');
    await table.locator('td.user', { hasText: 'bob@example.com' }).first().waitFor();
    await table.locator('td.user', { hasText: ALICE }).first().waitFor();

    // narrowed by a filter: exactly the events the API selects
    const filter = 'outcome eq "denied" and reason eq "no_grant"';
    await page.getByLabel('Filter (SCIM)').fill(filter);
    await page.getByLabel('Per page').selectOption('250');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const want = (await apiEvents(filter)).map((e) => e.id);
    assert.ok(want.length >= 1);
    await eventually(async () => (await rowIds(page)).join() === want.join(), { timeoutMs: WAIT });
    assert.deepEqual(await rowIds(page), want);
    for (const o of await table.locator('tbody tr td:nth-child(3)').allTextContents()) assert.equal(o, 'denied');

    // a bad filter: the server's 400 message, with its column, shown as it is
    const bad = 'user eq "x" and';
    const api = await env.srv.api('GET', `/api/v1/logs?filter=${encodeURIComponent(bad)}`);
    assert.equal(api.status, 400);
    await page.getByLabel('Filter (SCIM)').fill(bad);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const alert = page.locator('#view .notice.error');
    await alert.waitFor({ state: 'visible' });
    assert.equal(await alert.textContent(), api.json.error.message);
    assert.match(api.json.error.message, /column \d+/);

    // paging through the Link rel="next" header: pages of 10, newest first
    await page.getByLabel('Filter (SCIM)').fill('');
    await page.getByLabel('Per page').selectOption('10');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const all = (await apiEvents(null)).map((e) => e.id);
    assert.ok(all.length > 20, `the log has ${all.length} events`);
    await eventually(async () => (await rowIds(page)).join() === all.slice(0, 10).join(), { timeoutMs: WAIT });
    await page.getByRole('button', { name: 'Next →', exact: true }).click();
    await eventually(async () => (await rowIds(page)).join() === all.slice(10, 20).join(), { timeoutMs: WAIT });
    assert.deepEqual(await rowIds(page), all.slice(10, 20));
    await page.getByRole('button', { name: '← Previous', exact: true }).click();
    await eventually(async () => (await rowIds(page)).join() === all.slice(0, 10).join(), { timeoutMs: WAIT });

    // the drawer shows the event's JSON; Escape closes it and focus returns
    const first = table.locator('tbody tr').first();
    const id = await first.getAttribute('data-id');
    await first.locator('button.link').click();
    const drawer = page.getByRole('dialog');
    await drawer.waitFor({ state: 'visible' });
    const shown = JSON.parse(await drawer.locator('pre').textContent());
    assert.equal(shown.id, id);
    assert.deepEqual(shown, (await apiEvents(`id eq "${id}"`))[0]);
    await page.keyboard.press('Escape');
    await drawer.waitFor({ state: 'hidden' });
  });

  test('Download: the selection as a file (fetched with the token, saved from a Blob)', { timeout: T }, async (t) => {
    const page = await signedIn(t, '#/logs');
    const filter = 'type eq "token.request"';
    await page.getByLabel('Filter (SCIM)').fill(filter);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.getByLabel('Download format').selectOption('jsonl');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download', exact: true }).click()]);
    assert.match(download.suggestedFilename(), /^mcpauth-log-.*\.jsonl$/);
    const text = await fsp.readFile(await download.path(), 'utf8');
    const lines = text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const want = await apiEvents(filter);
    assert.deepEqual(lines.map((e) => e.id).sort(), want.map((e) => e.id).sort());
    assert.ok(lines.every((e) => e.type === 'token.request'));
    assert.ok(lines.some((e) => e.user === ALICE));

    const [csv] = await Promise.all([page.waitForEvent('download'), (async () => {
      await page.getByLabel('Download format').selectOption('csv');
      await page.getByRole('button', { name: 'Download', exact: true }).click();
    })()]);
    assert.match(csv.suggestedFilename(), /\.csv$/);
    const rows = (await fsp.readFile(await csv.path(), 'utf8')).trim().split('\n');
    assert.match(rows[0], /^id,seq,time,type,/);
    assert.equal(rows.length, want.length + 1);
  });

  test('Tracing: a live row within seconds of a token request, with its severity; filters; pause and resume', { timeout: T }, async (t) => {
    const page = await signedIn(t);
    await liveTrace(page);
    const t0 = Date.now();
    assert.equal((await exchange()).status, 200);
    const granted = traceRow(page, 'granted repo:read');
    await granted.waitFor({ timeout: 5000 });
    assert.ok(Date.now() - t0 < 5000);
    const cells = await granted.locator('td').allTextContents();
    assert.equal(cells[1], '127.0.0.1');
    assert.equal(cells[2], 'token');
    assert.equal(cells[3], 'desktop-agent');
    assert.equal(cells[4], 'github');
    assert.match(cells[5], /^desktop-github\s+active$/);
    assert.equal(await granted.locator('.sev').getAttribute('class'), 'sev sev-info');

    assertOAuthError(await exchange('mallory@example.com'), 'no_grant');
    // the row of that denial: a warning whose message names the reason
    const warn = page.locator('#trace-table tbody tr').filter({ has: page.locator('.sev-warning') }).first();
    await warn.waitFor({ timeout: 5000 });
    assert.match(await warn.locator('td.message').textContent(), /No grant/i);

    // minimum severity warning: a granted request no longer shows, a denied one does
    await page.getByLabel('Minimum severity').selectOption('warning');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.locator('#trace-status[data-state="live"]').waitFor();
    await page.getByRole('button', { name: 'Clear', exact: true }).click();
    assert.equal((await exchange()).status, 200);
    assertOAuthError(await exchange('eve@example.com'), 'no_grant');
    await page.locator('#trace-table tbody tr .sev-warning').first().waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#trace-table tbody tr .sev-info').count(), 0);

    // paused: entries are held, not shown; resumed: they appear
    await page.getByRole('button', { name: 'Pause', exact: true }).click();
    assertOAuthError(await exchange('trudy@example.com'), 'no_grant');
    await page.locator('.held', { hasText: '1 new while paused' }).waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#trace-table tbody tr').count(), 1);
    await page.getByRole('button', { name: 'Resume', exact: true }).click();
    assert.equal(await page.locator('#trace-table tbody tr').count(), 2);

    // filter by system: requests for another system do not show
    await page.getByLabel('Minimum severity').selectOption('info');
    await page.getByLabel('System', { exact: true }).fill('docs');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.locator('#trace-status[data-state="live"]').waitFor();
    await page.getByRole('button', { name: 'Clear', exact: true }).click();
    assert.equal((await exchange()).status, 200); // github
    const cc = await clientCredentials();
    assert.equal(cc.status, 200, cc.text);
    await traceRow(page, 'granted docs:read').waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#trace-table tbody tr').count(), 1);
  });

  test('Tracing: the stream carries the token in a header only; a dropped frame shows a banner with its count', { timeout: T }, async (t) => {
    const page = await signedIn(t);
    const seen = [];
    const entry = { time: '2026-11-22T09:14:03.512384Z', client_ip: '10.0.0.7', endpoint: 'token', access_policy: null, client_workload: null, resource: null, server_workload: 'github', severity: 'error', message: 'No client workload matched', event_id: null };
    await page.route('**/api/v1/trace*', async (route) => {
      seen.push({ url: route.request().url(), auth: route.request().headers().authorization });
      // CRLF line ends, a comment, an entry, a marker of 7 dropped entries
      const body = `: hello\r\n\r\nevent: trace\r\ndata: ${JSON.stringify(entry)}\r\n\r\nevent: dropped\ndata: {"count": 7}\n\n`;
      await route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body });
    });
    await page.getByRole('link', { name: 'MCP Authorization Tracing' }).click();
    const banner = page.locator('#trace-dropped');
    await banner.waitFor({ state: 'visible' });
    assert.match(await banner.textContent(), /^The server dropped (7|14|21) entries/);
    const row = page.locator('#trace-table tbody tr').first();
    assert.equal(await row.locator('td').nth(1).textContent(), '10.0.0.7');
    assert.equal(await row.locator('.sev').getAttribute('class'), 'sev sev-error');
    assert.equal(seen[0].auth, `Bearer ${env.srv.token}`);
    assert.ok(!seen[0].url.includes(env.srv.token));
  });

  test('Exporters: add a file exporter from the form, see its status, test it, pause, delete; secrets stay write-only', { timeout: T }, async (t) => {
    const page = await signedIn(t, '#/settings/exporters');
    await page.getByRole('heading', { name: 'Exporters' }).waitFor();
    const out = path.join(scratch, 'ui-export.jsonl');

    // a bad filter: the server's message under the form, nothing added
    await page.getByLabel('ID', { exact: true }).fill('ui-file');
    await page.getByLabel('Type', { exact: true }).selectOption('file');
    await page.getByLabel('URL', { exact: true }).fill(`file://${out}`);
    await page.getByLabel('Filter (SCIM, optional)').fill('type eq');
    await page.getByRole('button', { name: 'Add exporter', exact: true }).click();
    const formErr = page.locator('form.add .notice.error');
    await formErr.waitFor({ state: 'visible' });
    assert.match(await formErr.textContent(), /^filter: column \d+/);
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
    await eventually(async () => {
      await page.getByRole('button', { name: 'Refresh', exact: true }).click();
      return (await row.locator('td').nth(8).textContent()) === String(tokens);
    }, { timeoutMs: WAIT, intervalMs: 300 });

    // test: one event sent now, "delivered"
    await row.getByRole('button', { name: 'Test', exact: true }).click();
    const msg = page.locator('#view .notice.status');
    await msg.filter({ hasText: 'delivered' }).waitFor();
    const eventId = /event ([0-9a-f-]{36})/.exec(await msg.textContent())[1];
    await eventually(async () => fs.existsSync(out) && (await fsp.readFile(out, 'utf8')).includes(eventId), { timeoutMs: WAIT });

    // pause and resume
    await row.getByRole('button', { name: 'Pause', exact: true }).click();
    await row.getByRole('button', { name: 'Resume', exact: true }).waitFor();
    assert.equal(ok(await env.srv.api('GET', '/api/v1/exporters/ui-file')).paused, true);
    await row.getByRole('button', { name: 'Resume', exact: true }).click();
    await row.getByRole('button', { name: 'Pause', exact: true }).waitFor();
    assert.equal(ok(await env.srv.api('GET', '/api/v1/exporters/ui-file')).paused, false);

    // an http exporter with an auth token typed in a password field: never shown again
    const secret = 'ui-secret-token-9f3c';
    await page.getByLabel('ID', { exact: true }).fill('ui-hook');
    await page.getByLabel('Type', { exact: true }).selectOption('http');
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
    assert.equal(ok(await env.srv.api('GET', '/api/v1/exporters/ui-hook')).profile, 'webhook');
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
  });

  test('Systems: pausing github from the page denies its token requests (server_paused), in the trace and the API', { timeout: T }, async (t) => {
    const page = await signedIn(t, '#/systems');
    const row = page.locator('#systems-table tbody tr[data-id="github"]');
    await row.getByRole('button', { name: 'Pause', exact: true }).click();
    await row.getByRole('button', { name: 'Resume', exact: true }).waitFor();
    assert.match(await row.textContent(), /paused/);
    assert.equal(ok(await env.srv.api('GET', '/api/v1/systems/github')).paused, true);

    await liveTrace(page);
    assertOAuthError(await exchange(), 'server_paused');
    const denied = traceRow(page, 'paused');
    await denied.waitFor({ timeout: 5000 });
    assert.equal(await denied.locator('.sev').getAttribute('class'), 'sev sev-warning');
    assert.equal(await denied.locator('td').nth(4).textContent(), 'github');
    const [ev] = await apiEvents('reason eq "server_paused"', 1);
    assert.equal(ev.system, 'github');
    assert.equal(ev.outcome, 'denied');

    await page.getByRole('link', { name: 'Systems' }).click();
    await row.getByRole('button', { name: 'Resume', exact: true }).click();
    await row.getByRole('button', { name: 'Pause', exact: true }).waitFor();
    assert.equal(ok(await env.srv.api('GET', '/api/v1/systems/github')).paused, false);
    assert.equal((await exchange()).status, 200);

    // Clients: the policy at a glance
    await page.getByRole('link', { name: 'Clients' }).click();
    await page.locator('#clients-table tbody tr[data-id="desktop-agent"]').waitFor();
    assert.match(await page.locator('#clients-table tbody tr[data-id="desktop-agent"]').textContent(), /client_secret_basic/);
  });

  test('Access policies: deactivating desktop-github denies (no_access_policy); activating restores', { timeout: T }, async (t) => {
    const page = await signedIn(t, '#/access-policies');
    const row = page.locator('#access-policies-table tbody tr[data-id="desktop-github"]');
    await row.getByRole('button', { name: 'Deactivate', exact: true }).click();
    await row.getByRole('button', { name: 'Activate', exact: true }).waitFor();
    assert.match(await row.textContent(), /inactive/);
    assert.equal(ok(await env.srv.api('GET', '/api/v1/access-policies/desktop-github')).active, false);
    assertOAuthError(await exchange(), 'no_access_policy');

    await row.getByRole('button', { name: 'Activate', exact: true }).click();
    await row.getByRole('button', { name: 'Deactivate', exact: true }).waitFor();
    assert.equal(ok(await env.srv.api('GET', '/api/v1/access-policies/desktop-github')).active, true);
    assert.equal((await exchange()).status, 200);

    // the server's validation message for a refused change is shown (the policy changed behind the page)
    ok(await env.srv.api('DELETE', '/api/v1/access-policies/desktop-docs'), 204);
    await page.locator('#access-policies-table tbody tr[data-id="desktop-docs"]').getByRole('button', { name: 'Deactivate', exact: true }).click();
    const err = page.locator('#view .notice.error');
    await err.waitFor({ state: 'visible' });
    assert.match(await err.textContent(), /desktop-docs/);
  });

  test('hostile user and scope names render as text in the log, the drawer and the trace', { timeout: T }, async (t) => {
    const page = await signedIn(t);
    await liveTrace(page);
    const r = await exchange(XSS, `repo:read ${'<svg/onload=alert(2)>'}`);
    assert.equal(r.status, 400, r.text); // no grant for that user
    const trow = page.locator('#trace-table tbody tr').first();
    await trow.waitFor({ timeout: 5000 });
    assert.match(await trow.locator('td.message').textContent(), /<svg\/onload=alert\(2\)>/);

    await page.getByRole('link', { name: 'System log' }).click();
    await page.getByLabel('Filter (SCIM)').fill('user sw "<img"');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const cell = page.locator('#log-table td.user').first();
    await cell.waitFor();
    assert.equal(await cell.textContent(), XSS);
    assert.match(await page.locator('#log-table td.scopes').first().textContent(), /<svg\/onload=alert\(2\)>/);
    await page.locator('#log-table tbody tr button.link').first().click();
    assert.ok((await page.getByRole('dialog').locator('pre').textContent()).includes(XSS));

    // no element came from the data: not an <img>, not an <svg>, and nothing ran
    assert.equal(await page.locator('img, svg').count(), 0);
    assert.equal(await page.evaluate(() => document.querySelectorAll('[onerror], [onload]').length), 0);
  });
});
