// The live trace (spec/audit-event.md "Trace entry") of the authorization-code front
// door: the MCP TypeScript SDK client (@modelcontextprotocol/client) doing discovery,
// dynamic registration, PKCE authorization through the --dev sign-in page and the
// token request against the real binary, while a subscriber to GET /api/v1/trace
// checks every entry's columns and severity (spec/policy.md's table) and that its
// event_id is the audit event's id (/api/v1/logs?filter=id eq "…"). Then the
// refusals: unknown client, unregistered redirect URI, missing and plain PKCE,
// unknown, reused and mismatched-verifier codes, oversized registration and hostile
// client ID metadata URLs — each exactly one entry, warning or error, naming the
// problem. Discovery (RFC 9728 / RFC 8414 metadata) is not an authorization request
// and publishes nothing.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { eventually, ok } from './lib/check.mjs';
import {
  AC,
  authorize,
  authorizePolicy,
  codeRequest,
  devCode,
  devSignIn,
  pkce,
  redirectParams,
  tokenForm,
} from './lib/authorize.mjs';
import { assertCleanExit, logServersOnFailure, request, startServer } from './lib/server.mjs';
import { traceSubscribe } from './lib/sse.mjs';

logServersOnFailure();

const T = 60_000;
const ENTRY_FIELDS = [
  'time', 'client_ip', 'endpoint', 'access_policy', 'redirect_uri', 'client_workload', 'resource',
  'server_workload', 'severity', 'message', 'event_id',
];
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const TYPE = { token: 'token.request', authorize: 'authorize.request', register: 'client.register' };

let srv;
let docs; // the docs MCP server's resource URL
let sub; // one subscriber for the whole file: every request's entries, in order

before(async () => {
  srv = await startServer();
  ok(await srv.api('POST', '/api/v1/apply', authorizePolicy(srv.url, { confSecret: `conf-${crypto.randomUUID()}` })));
  docs = `${srv.url}/mcp/docs`;
  sub = await traceSubscribe(srv);
  assert.equal(sub.status, 200, sub.text);
});

after(async () => {
  if (sub) sub.close();
  if (srv) assertCleanExit(assert, await srv.stop());
});

/** The one entry a request published: the next one, and nothing after it. */
async function only() {
  const e = await sub.entry(5000);
  await sub.none(150);
  return e;
}

/** Every spec field and nothing else, the formats, and `want` exactly. */
function assertEntry(e, want) {
  const where = JSON.stringify(e);
  assert.deepEqual(Object.keys(e).sort(), [...ENTRY_FIELDS].sort(), where);
  assert.match(e.time, TIME, where);
  assert.equal(e.client_ip, '127.0.0.1', where);
  assert.ok(['info', 'warning', 'error'].includes(e.severity), where);
  assert.equal(typeof e.message, 'string', where);
  assert.ok(e.message.length > 0, where);
  assert.ok(!/^\s|\s$|\s\s|\s:/.test(e.message), `message spacing: ${where}`);
  for (const [k, v] of Object.entries(want)) {
    if (v instanceof RegExp) assert.match(e[k], v, `${k}: ${where}`);
    else assert.deepEqual(e[k], v, `${k}: ${where}`);
  }
}

/** The audit event the entry links to: exactly one, of the endpoint's type, same time, ip and severity. */
async function linked(e) {
  const filter = `id eq "${e.event_id}"`;
  let evs;
  await eventually(async () => {
    evs = ok(await srv.api('GET', `/api/v1/logs?${new URLSearchParams({ filter })}`));
    return evs.length > 0;
  });
  assert.equal(evs.length, 1, `events for ${filter}: ${JSON.stringify(evs)}`);
  const ev = evs[0];
  assert.equal(ev.id, e.event_id);
  assert.equal(ev.type, TYPE[e.endpoint], JSON.stringify(ev));
  assert.equal(ev.time, e.time, 'the entry is timed at receipt like its event');
  assert.equal(ev.request.client_ip, e.client_ip);
  assert.equal(ev.request.endpoint, e.endpoint);
  assert.equal(ev.severity, e.severity, `entry and event severity: ${JSON.stringify(ev)}`);
  return ev;
}

/** The entry of answer `r`: one entry, linked to the event of r's X-Request-Id. */
async function entryOf(r, want) {
  const e = await only();
  assertEntry(e, want);
  const ev = await linked(e);
  assert.equal(ev.request.id, r.headers['x-request-id'], 'the entry is the answer\'s request');
  return { e, ev };
}

function redeem(req, code, over = {}) {
  return tokenForm(srv, {
    grant_type: AC,
    code,
    redirect_uri: req.params.redirect_uri,
    code_verifier: req.verifier,
    client_id: req.params.client_id,
    resource: req.params.resource,
    ...over,
  });
}

function register(body) {
  return request(`${srv.url}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
}

/** An OAuthClientProvider for the SDK that keeps everything in memory. */
class SdkProvider {
  constructor(redirect) {
    this.redirect = redirect;
  }
  get redirectUrl() {
    return this.redirect;
  }
  get clientMetadata() {
    return {
      client_name: 'MCP SDK trace e2e',
      redirect_uris: [this.redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    this.lastState = crypto.randomBytes(16).toString('base64url');
    return this.lastState;
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(i) {
    this.info = i;
  }
  tokens() {
    return this.tok;
  }
  saveTokens(t) {
    this.tok = t;
  }
  redirectToAuthorization(url) {
    this.authUrl = url;
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
}

describe('the MCP SDK flow, entry by entry', () => {
  test('registration, authorization (request and sign-in), token: columns, severity, event_id', { timeout: T }, async () => {
    const { auth } = await import('@modelcontextprotocol/client');
    const p = new SdkProvider('http://127.0.0.1:33418/callback');

    // discovery and registration: one entry, the registration's
    assert.equal(await auth(p, { serverUrl: docs }), 'REDIRECT');
    const id = p.info.client_id;
    assert.match(id, /^dcr-/);
    const reg = await only();
    assertEntry(reg, {
      endpoint: 'register',
      client_workload: id,
      access_policy: null,
      redirect_uri: null,
      resource: null,
      server_workload: null,
      severity: 'info',
      message: `registered client ${id}`,
    });
    const regEv = await linked(reg);
    assert.equal(regEv.outcome, 'success');
    assert.equal(regEv.client, id);

    // without an access policy: the request is refused before sign-in, a warning with no policy
    const refused = await request(p.authUrl.href);
    const rq = redirectParams(refused, p.redirect);
    assert.equal(rq.error, 'unauthorized_client', JSON.stringify(rq));
    const { e: noPol, ev: noPolEv } = await entryOf(refused, {
      endpoint: 'authorize',
      client_workload: id,
      redirect_uri: p.redirect,
      resource: docs,
      server_workload: 'docs',
      access_policy: null,
      severity: 'warning',
      message: `Both workloads matched (${id}, docs); the access policy is inactive or does not exist`,
    });
    assert.equal(noPolEv.reason, 'no_access_policy');
    assert.equal(noPolEv.access_policy, null, 'no policy at all: the event names none either');
    assert.notEqual(noPol.event_id, reg.event_id);

    // an administrator connects the newly registered client (an admin change: no entry)
    ok(await srv.api('POST', '/api/v1/access-policies', { id: 'sdk-docs', client: id, system: 'docs' }), 201);
    await sub.none(150);

    // the authorization request: the sign-in page
    const page = await request(p.authUrl.href);
    assert.equal(page.status, 200, page.text);
    const want = {
      endpoint: 'authorize',
      client_workload: id,
      redirect_uri: p.redirect,
      resource: docs,
      server_workload: 'docs',
      access_policy: { id: 'sdk-docs', active: true },
      severity: 'info',
    };
    // nothing is granted before the user signs in: the entry says where the browser went
    const { e: pageE, ev: pageEv } = await entryOf(page, { ...want, message: 'sent to sign-in (development)' });
    assert.equal(pageEv.outcome, 'granted');
    assert.equal(pageEv.request.phase, 'request');
    assert.equal(pageEv.access_policy, 'sdk-docs');

    // the sign-in: the user's scopes decided
    const back = await devSignIn(srv, page.text, 'alice@example.com', 'engineering');
    const q = redirectParams(back, p.redirect);
    assert.equal(q.state, p.lastState);
    const { e: signE, ev: signEv } = await entryOf(back, { ...want, message: 'granted docs:read docs:write' });
    assert.equal(signEv.request.phase, 'sign_in');
    assert.equal(signEv.user, 'alice@example.com');
    assert.notEqual(signE.event_id, pageE.event_id);

    // the SDK redeems the code: one token entry
    assert.equal(await auth(p, { serverUrl: docs, authorizationCode: q.code, iss: q.iss }), 'AUTHORIZED');
    const tok = await only();
    assertEntry(tok, {
      endpoint: 'token',
      client_workload: id,
      redirect_uri: null,
      resource: docs,
      server_workload: 'docs',
      access_policy: { id: 'sdk-docs', active: true },
      severity: 'info',
      message: 'granted docs:read docs:write',
    });
    const tokEv = await linked(tok);
    assert.equal(tokEv.outcome, 'granted');
    assert.equal(tokEv.request.grant_type, AC);
    assert.equal(tokEv.client, id);
    // no secret in any entry
    for (const e of [reg, pageE, signE, tok]) {
      const text = JSON.stringify(e);
      for (const s of [q.code, p.verifier, p.tok.access_token]) assert.ok(!text.includes(s), text);
    }
  });
});

describe('refusals: exactly one entry each, warning or error, naming the problem', () => {
  test('unknown client (authorize): error, no client workload, the client_id named', { timeout: T }, async () => {
    const req = codeRequest(srv, { client_id: 'nobody' });
    const r = await authorize(srv, req.params);
    assert.equal(r.status, 400);
    const { ev } = await entryOf(r, {
      endpoint: 'authorize',
      severity: 'error',
      client_workload: null,
      server_workload: null,
      access_policy: null,
      redirect_uri: req.params.redirect_uri,
      resource: docs,
      message: /^No client workload matched: client_id "nobody" presented \(.*unknown client nobody\)$/,
    });
    assert.equal(ev.reason, 'invalid_client');
  });

  test('unknown client (token): error, no client workload', { timeout: T }, async () => {
    const req = codeRequest(srv, { client_id: 'ghost-app' });
    const r = await redeem(req, crypto.randomBytes(32).toString('base64url'));
    assert.equal(r.status, 401, r.text);
    const { ev } = await entryOf(r, {
      endpoint: 'token',
      severity: 'error',
      client_workload: null,
      access_policy: null,
      message: /client_id "ghost-app"/,
    });
    assert.equal(ev.reason, 'invalid_client');
  });

  test('unregistered redirect URI: error, the redirect URI in its column and the message', { timeout: T }, async () => {
    const req = codeRequest(srv, { redirect_uri: 'https://evil.example/cb' });
    const r = await authorize(srv, req.params);
    assert.equal(r.status, 400);
    assert.equal(r.headers.location, undefined);
    const { ev } = await entryOf(r, {
      endpoint: 'authorize',
      severity: 'error',
      client_workload: 'web-app',
      redirect_uri: 'https://evil.example/cb',
      access_policy: null,
      message: /redirect_uri https:\/\/evil\.example\/cb is not registered for client web-app/,
    });
    assert.equal(ev.reason, 'invalid_request');
  });

  for (const [name, over, why] of [
    ['missing PKCE', { code_challenge: undefined, code_challenge_method: undefined }, /code_challenge is required/],
    ['plain PKCE', { code_challenge_method: 'plain' }, /code_challenge_method must be S256 \(plain is not accepted\)/],
  ]) {
    test(`${name}: error naming it`, { timeout: T }, async () => {
      const req = codeRequest(srv, over);
      const r = await authorize(srv, req.params);
      const q = redirectParams(r, req.params.redirect_uri);
      assert.equal(q.error, 'invalid_request');
      const { e, ev } = await entryOf(r, {
        endpoint: 'authorize',
        severity: 'error',
        client_workload: 'web-app',
        redirect_uri: req.params.redirect_uri,
        resource: docs,
        message: why,
      });
      assert.equal(ev.reason, 'invalid_request');
      assert.ok(e.message.includes(q.error_description), `${e.message} / ${q.error_description}`);
    });
  }

  /** A code of web-app for docs, its two authorize entries (page and sign-in) taken. */
  async function code() {
    const req = codeRequest(srv);
    const q = await devCode(srv, req, 'alice@example.com', 'engineering');
    assert.ok(q.code, JSON.stringify(q));
    assertEntry(await sub.entry(5000), { endpoint: 'authorize', severity: 'info', message: 'sent to sign-in (development)' });
    assertEntry(await sub.entry(5000), { endpoint: 'authorize', severity: 'info', message: 'granted docs:read docs:write' });
    await sub.none(100);
    return { req, code: q.code };
  }

  const refusedToken = (why) => ({
    endpoint: 'token',
    severity: 'warning',
    client_workload: 'web-app',
    redirect_uri: null,
    message: why,
  });

  test('reused code: warning, "used before"', { timeout: T }, async () => {
    const c = await code();
    const first = await redeem(c.req, c.code);
    assert.equal(first.status, 200, first.text);
    await entryOf(first, { endpoint: 'token', severity: 'info', client_workload: 'web-app', access_policy: { id: 'web-docs', active: true } });
    const again = await redeem(c.req, c.code);
    assert.equal(again.status, 400, again.text);
    const { ev } = await entryOf(again, refusedToken(/used before/));
    assert.equal(ev.reason, 'invalid_subject_token');
  });

  test('mismatched verifier: warning naming it; the code is spent', { timeout: T }, async () => {
    const c = await code();
    const r = await redeem(c.req, c.code, { code_verifier: pkce().verifier });
    assert.equal(r.status, 400, r.text);
    const { e, ev } = await entryOf(r, refusedToken(/code_verifier does not match/));
    assert.equal(ev.reason, 'invalid_subject_token');
    assert.ok(!JSON.stringify(e).includes(c.code));
    const again = await redeem(c.req, c.code);
    assert.equal(again.status, 400, again.text);
    await entryOf(again, refusedToken(/used before/));
  });

  test('unknown (or expired) code: warning', { timeout: T }, async () => {
    const req = codeRequest(srv);
    const r = await redeem(req, crypto.randomBytes(32).toString('base64url'));
    assert.equal(r.status, 400, r.text);
    await entryOf(r, refusedToken(/unknown or expired/));
  });

  test('oversized registration: error, no client workload, the limit named', { timeout: T }, async () => {
    const r = await register({ redirect_uris: ['https://app.example/cb'], client_name: 'x'.repeat(17 * 1024) });
    assert.equal(r.status, 413, r.text);
    const { ev } = await entryOf(r, {
      endpoint: 'register',
      severity: 'error',
      client_workload: null,
      access_policy: null,
      message: /^registration refused: .*larger than 16 KiB/,
    });
    assert.equal(ev.outcome, 'failure');
  });

  for (const [url, why] of [
    ['https://10.0.0.1/client.json', /private address: refused/],
    ['https://169.254.169.254/latest/meta-data/', /link-local address: refused/],
    ['http://169.254.169.254/latest/meta-data/', /loopback/],
  ]) {
    test(`hostile client ID metadata URL ${url}: error, never fetched, named`, { timeout: T }, async () => {
      const req = codeRequest(srv, { client_id: url });
      const r = await authorize(srv, req.params);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.headers.location, undefined);
      const { e, ev } = await entryOf(r, {
        endpoint: 'authorize',
        severity: 'error',
        client_workload: null,
        server_workload: null,
        access_policy: null,
        message: why,
      });
      assert.ok(e.message.includes(`client_id "${url}"`), e.message);
      assert.equal(ev.reason, 'invalid_client');
    });
  }
});
