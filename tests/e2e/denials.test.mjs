// The five C1 denial reasons of spec/policy.md, each provoked for real at the
// token endpoint, and the one token.request audit event it leaves, read back
// from SQLite: reason, status detail, severity, who, what, each scope's
// outcome, the subject token's fingerprint (never the token: the raw token is
// nowhere in the database files or the server's log), and every field of
// spec/audit-event.md. Then the granted event against the token it describes,
// and exactly one event per token request.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';

import * as jose from 'jose';

import { auditEvents, auditLastSeq } from './lib/audit.mjs';
import { eventually, ok } from './lib/check.mjs';
import {
  ALICE,
  CC,
  DECISION,
  GITHUB_AUD,
  GITHUB_RESOURCE,
  JB,
  TE,
  TT_ID_JAG,
  TT_ID_TOKEN,
  assertOAuthError,
  decode,
  devIdToken,
  sha256hex,
  startTokenServer,
  tokenRequest,
} from './lib/oauth.mjs';
import { assertCleanExit, logServersOnFailure, request } from './lib/server.mjs';
import { haveSqlite } from './lib/sqlite.mjs';

logServersOnFailure();

const skip = haveSqlite() ? false : 'the sqlite3 shell is not installed (scripts/deps.sh test installs it)';
const USER_AGENT = 'mcpauth-e2e-denials/1.0';
const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

// spec/audit-event.md: the fields every event has (null when they do not apply).
const EVENT_FIELDS = [
  'id', 'seq', 'time', 'type', 'outcome', 'severity', 'reason', 'status_detail', 'user', 'groups', 'client',
  'system', 'audience', 'access_policy', 'scopes', 'token', 'request', 'node', 'prev_hash', 'hash',
];
const REQUEST_FIELDS = [
  'id', 'endpoint', 'grant_type', 'requested_token_type', 'target_url', 'client_ip', 'user_agent', 'subject_token_sha256', 'subject_issuer',
];
const TOKEN_FIELDS = ['id', 'type', 'key_id', 'alg', 'lifetime', 'expires_at'];

async function setup(t) {
  const env = await startTokenServer();
  t.after(async () => assertCleanExit(assert, await env.srv.close()));
  env.basic = ['desktop-agent', env.secrets['desktop-agent']];
  return env;
}

/** A token exchange for github as desktop-agent; `over` replaces members. */
function exchangeParams(subjectToken, over = {}) {
  return {
    grant_type: TE,
    requested_token_type: TT_ID_JAG,
    audience: GITHUB_AUD,
    resource: GITHUB_RESOURCE,
    scope: 'repo:read',
    subject_token: subjectToken,
    subject_token_type: TT_ID_TOKEN,
    ...over,
  };
}

const post = (env, params, opts = {}) => tokenRequest(env.srv, params, { basic: env.basic, headers: { 'user-agent': USER_AGENT }, ...opts });

/** The token.request events after `from`. */
const tokenEvents = (env, from) => auditEvents(env.srv.dbPath, from, "type = 'token.request'");

/** Exactly one new token.request event since `from`, right after the answer (it was committed first). */
function oneEvent(env, from) {
  const evs = auditEvents(env.srv.dbPath, from);
  assert.equal(evs.length, 1, `want exactly one new event, got ${evs.length}:\n${evs.map((e) => e.raw).join('\n')}`);
  assert.equal(evs[0].type, 'token.request', evs[0].raw);
  return evs[0];
}

/** Every field of spec/audit-event.md, present and well formed, for a token.request event. */
function assertShape(e) {
  const d = e.doc;
  const where = `event ${e.seq}: ${e.raw}`;
  for (const f of EVENT_FIELDS) assert.ok(f in d, `${where}\nmissing field ${f}`);
  assert.equal(d.type, 'token.request', where);
  assert.match(d.id, UUID7, where);
  assert.equal(d.seq, e.seq, where);
  assert.match(d.time, TIME, where);
  assert.equal(typeof d.hash, 'string', where);
  assert.ok(d.request && typeof d.request === 'object', where);
  for (const f of REQUEST_FIELDS) assert.ok(f in d.request, `${where}\nmissing request.${f}`);
  assert.equal(d.request.endpoint, 'token', where);
  assert.match(d.request.id, UUID7, where);
  assert.equal(d.request.client_ip, '127.0.0.1', where);
  // The columns mirror the document.
  for (const c of ['id', 'type', 'outcome', 'severity', 'reason', 'user', 'client', 'system']) assert.equal(e[c] ?? null, d[c] ?? null, `${where}\ncolumn ${c}`);
  if (d.token !== null) {
    for (const f of TOKEN_FIELDS) assert.ok(f in d.token, `${where}\nmissing token.${f}`);
  }
}

/**
 * A denied token.request event for `reason`: the decision table's severity and
 * status text, and the given members.
 */
function assertDenied(e, reason, want) {
  const where = `event ${e.seq}: ${e.raw}`;
  assertShape(e);
  const d = e.doc;
  assert.equal(d.outcome, 'denied', where);
  assert.equal(d.reason, reason, where);
  assert.equal(d.severity, DECISION[reason].severity, where);
  assert.equal(typeof d.status_detail, 'string', where);
  assert.ok(d.status_detail.startsWith(DECISION[reason].text), `${where}\nstatus_detail should start with "${DECISION[reason].text}"`);
  assert.equal(d.token, null, `${where}\na denied request has no token`);
  for (const [k, v] of Object.entries(want)) {
    if (k === 'request') {
      for (const [rk, rv] of Object.entries(v)) assert.deepEqual(d.request[rk], rv, `${where}\nrequest.${rk}`);
    } else {
      assert.deepEqual(d[k], v, `${where}\n${k}`);
    }
  }
}

/** Every file of the data directory (the database, its WAL, ...) as bytes. */
async function dataFiles(env) {
  const out = [];
  for (const name of await fs.readdir(env.srv.dataDir)) {
    const p = path.join(env.srv.dataDir, name);
    if ((await fs.stat(p)).isFile()) out.push([name, await fs.readFile(p)]);
  }
  assert.ok(out.some(([n]) => n === 'mcpauth.db'), `no mcpauth.db in ${out.map(([n]) => n).join(', ')}`);
  return out;
}

/** A secret (a token) appears in no data file and not in the server's log, whole or by its signature. */
async function assertNowhere(env, secret, what) {
  const needles = [secret, secret.split('.')[2]].filter((s) => s && s.length >= 40);
  for (const [name, bytes] of await dataFiles(env)) {
    for (const n of needles) assert.equal(bytes.indexOf(n), -1, `${what} is in ${name}`);
  }
  for (const n of needles) {
    assert.ok(!env.srv.stderrLog.includes(n), `${what} is in the server's stderr`);
    assert.ok(!env.srv.stdoutLog.includes(n), `${what} is in the server's stdout`);
  }
}

const SUBJECT_ISSUER = (env) => `${env.issuer}/dev/idp`;

test('no_grant: a scope the user holds no grant for', { skip }, async (t) => {
  const env = await setup(t);
  const token = await devIdToken(env.srv, 'bob@example.com', ['sales']);
  const from = auditLastSeq(env.srv.dbPath);
  const r = await post(env, exchangeParams(token));
  assertOAuthError(r, 'no_grant', 'No grant for the scope: repo:read');
  assertDenied(oneEvent(env, from), 'no_grant', {
    status_detail: 'No grant for the scope: repo:read',
    user: 'bob@example.com',
    groups: ['sales'],
    client: 'desktop-agent',
    system: 'github',
    audience: GITHUB_AUD,
    access_policy: 'desktop-github',
    scopes: [{ name: 'repo:read', outcome: 'denied', reason: 'no_grant' }],
    request: {
      grant_type: TE,
      requested_token_type: TT_ID_JAG,
      target_url: GITHUB_RESOURCE,
      user_agent: USER_AGENT,
      subject_token_sha256: sha256hex(token),
      subject_issuer: SUBJECT_ISSUER(env),
    },
  });
  await assertNowhere(env, token, 'the subject token');
});

test('scope_not_enabled: repo:write is defined but disabled on github', { skip }, async (t) => {
  const env = await setup(t);
  const token = await devIdToken(env.srv, ALICE, ['engineering']);
  const from = auditLastSeq(env.srv.dbPath);
  const r = await post(env, exchangeParams(token, { scope: 'repo:write' }));
  assertOAuthError(r, 'scope_not_enabled', 'Scope not enabled: repo:write');
  assertDenied(oneEvent(env, from), 'scope_not_enabled', {
    status_detail: 'Scope not enabled: repo:write',
    user: ALICE,
    groups: ['engineering'],
    client: 'desktop-agent',
    system: 'github',
    audience: GITHUB_AUD,
    access_policy: 'desktop-github',
    scopes: [{ name: 'repo:write', outcome: 'denied', reason: 'scope_not_enabled' }],
    request: { grant_type: TE, target_url: GITHUB_RESOURCE, subject_token_sha256: sha256hex(token), subject_issuer: SUBJECT_ISSUER(env) },
  });
  await assertNowhere(env, token, 'the subject token');

  // Partly granted: granted outcome, each scope its own outcome, the detail names the denied one.
  const from2 = auditLastSeq(env.srv.dbPath);
  const r2 = await post(env, exchangeParams(token, { scope: 'repo:read repo:write' }));
  assert.equal(r2.status, 200, r2.text);
  assert.equal(r2.json.scope, 'repo:read');
  const e = oneEvent(env, from2);
  assertShape(e);
  assert.equal(e.doc.outcome, 'granted', e.raw);
  assert.equal(e.doc.severity, 'info', e.raw);
  assert.equal(e.doc.reason, null, e.raw);
  assert.equal(e.doc.status_detail, 'Scope not enabled: repo:write', e.raw);
  assert.deepEqual(e.doc.scopes, [
    { name: 'repo:read', outcome: 'granted' },
    { name: 'repo:write', outcome: 'denied', reason: 'scope_not_enabled' },
  ]);
  assert.equal(e.doc.token.id, decode(r2.json.access_token).payload.jti);
  await assertNowhere(env, r2.json.access_token, 'the issued ID-JAG');
});

test('server_paused: PATCH github {"paused": true}', { skip }, async (t) => {
  const env = await setup(t);
  const token = await devIdToken(env.srv, ALICE, ['engineering']);
  ok(await env.srv.api('PATCH', '/api/v1/systems/github', { paused: true }));
  const from = auditLastSeq(env.srv.dbPath);
  const r = await post(env, exchangeParams(token));
  assertOAuthError(r, 'server_paused');
  assert.equal(r.json.error_description, 'Server paused: github');
  assertDenied(oneEvent(env, from), 'server_paused', {
    status_detail: 'Server paused: github',
    user: ALICE,
    client: 'desktop-agent',
    system: 'github',
    audience: GITHUB_AUD,
    access_policy: 'desktop-github',
    request: { grant_type: TE, target_url: GITHUB_RESOURCE, subject_token_sha256: sha256hex(token), subject_issuer: SUBJECT_ISSUER(env) },
  });
  await assertNowhere(env, token, 'the subject token');

  // Unpaused, the same request is granted.
  ok(await env.srv.api('PATCH', '/api/v1/systems/github', { paused: false }));
  assert.equal((await post(env, exchangeParams(token))).status, 200);
});

test('target_url_not_registered: resource https://evil.example/mcp', { skip }, async (t) => {
  const env = await setup(t);
  const token = await devIdToken(env.srv, ALICE);
  const from = auditLastSeq(env.srv.dbPath);
  const r = await post(env, exchangeParams(token, { resource: 'https://evil.example/mcp' }));
  assertOAuthError(r, 'target_url_not_registered', 'Target URL not registered: https://evil.example/mcp');
  assertDenied(oneEvent(env, from), 'target_url_not_registered', {
    status_detail: 'Target URL not registered: https://evil.example/mcp',
    user: ALICE,
    groups: [],
    client: 'desktop-agent',
    system: 'github',
    audience: GITHUB_AUD,
    access_policy: 'desktop-github',
    request: { grant_type: TE, target_url: 'https://evil.example/mcp', subject_token_sha256: sha256hex(token), subject_issuer: SUBJECT_ISSUER(env) },
  });
  await assertNowhere(env, token, 'the subject token');
});

test('no_signing_key: github signs with RS256 and no RS256 key exists; then the CLI makes one', { skip }, async (t) => {
  const env = await setup(t);
  const token = await devIdToken(env.srv, ALICE, ['engineering']);
  ok(await env.srv.api('PATCH', '/api/v1/systems/github', { signing_alg: 'RS256' }));
  assert.equal(ok(await env.srv.api('GET', '/api/v1/keys')).filter((k) => k.alg === 'RS256').length, 0, 'no RS256 key yet');
  let from = auditLastSeq(env.srv.dbPath);
  const r = await post(env, exchangeParams(token));
  assertOAuthError(r, 'no_signing_key');
  assert.equal(r.json.error_description, 'No signing key for the algorithm: RS256');
  const denied = oneEvent(env, from);
  assertDenied(denied, 'no_signing_key', {
    status_detail: 'No signing key for the algorithm: RS256',
    user: ALICE,
    client: 'desktop-agent',
    system: 'github',
    audience: GITHUB_AUD,
    access_policy: 'desktop-github',
    request: { grant_type: TE, target_url: GITHUB_RESOURCE, subject_token_sha256: sha256hex(token), subject_issuer: SUBJECT_ISSUER(env) },
  });
  assert.deepEqual(denied.doc.scopes.map((s) => s.name), ['repo:read'], denied.raw);

  const c = await env.srv.cli(['keys', 'create', '--alg', 'RS256']);
  assert.equal(c.code, 0, c.stderr);
  const rs = ok(await env.srv.api('GET', '/api/v1/keys')).filter((k) => k.alg === 'RS256' && k.status === 'active');
  assert.equal(rs.length, 1);
  assert.ok(c.stdout.includes(rs[0].kid), c.stdout);

  from = auditLastSeq(env.srv.dbPath);
  const r2 = await post(env, exchangeParams(token));
  assert.equal(r2.status, 200, r2.text);
  const { protectedHeader, payload } = await jose.jwtVerify(r2.json.access_token, jose.createRemoteJWKSet(new URL(env.jwksUri)), {
    issuer: env.issuer,
    audience: GITHUB_AUD,
    typ: 'oauth-id-jag+jwt',
    algorithms: ['RS256'],
  });
  assert.equal(protectedHeader.kid, rs[0].kid);
  const e = oneEvent(env, from);
  assertShape(e);
  assert.equal(e.doc.outcome, 'granted', e.raw);
  assert.deepEqual(e.doc.token, {
    id: payload.jti,
    type: 'id-jag',
    key_id: rs[0].kid,
    alg: 'RS256',
    lifetime: 300,
    expires_at: new Date(payload.exp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
  });
  await assertNowhere(env, token, 'the subject token');
  await assertNowhere(env, r2.json.access_token, 'the issued ID-JAG');
});

test('granted events describe the token issued: token.id is its jti, token.key_id its kid', { skip }, async (t) => {
  const env = await setup(t);
  const token = await devIdToken(env.srv, 'gina@example.com', ['engineering']);

  // Token exchange to an ID-JAG for docs, then the JWT bearer grant with it.
  let from = auditLastSeq(env.srv.dbPath);
  const r = await post(env, exchangeParams(token, { audience: env.issuer, resource: env.docsResource, scope: 'docs:read' }));
  assert.equal(r.status, 200, r.text);
  const jag = decode(r.json.access_token);
  let e = oneEvent(env, from);
  assertShape(e);
  assert.deepEqual(
    { outcome: e.doc.outcome, severity: e.doc.severity, reason: e.doc.reason, status_detail: e.doc.status_detail, user: e.doc.user, groups: e.doc.groups, client: e.doc.client, system: e.doc.system, audience: e.doc.audience, access_policy: e.doc.access_policy, scopes: e.doc.scopes },
    { outcome: 'granted', severity: 'info', reason: null, status_detail: null, user: 'gina@example.com', groups: ['engineering'], client: 'desktop-agent', system: 'docs', audience: env.issuer, access_policy: 'desktop-docs', scopes: [{ name: 'docs:read', outcome: 'granted' }] },
    e.raw,
  );
  assert.equal(e.doc.token.id, jag.payload.jti);
  assert.equal(e.doc.token.key_id, jag.header.kid);
  assert.equal(e.doc.token.alg, jag.header.alg);
  assert.equal(e.doc.token.type, 'id-jag');
  assert.equal(e.doc.token.lifetime, jag.payload.exp - jag.payload.iat);
  assert.equal(e.doc.request.subject_token_sha256, sha256hex(token));

  from = auditLastSeq(env.srv.dbPath);
  const r2 = await post(env, { grant_type: JB, assertion: r.json.access_token, resource: env.docsResource });
  assert.equal(r2.status, 200, r2.text);
  const at = decode(r2.json.access_token);
  e = oneEvent(env, from);
  assertShape(e);
  assert.equal(e.doc.outcome, 'granted');
  assert.equal(e.doc.token.id, at.payload.jti);
  assert.equal(e.doc.token.key_id, at.header.kid);
  assert.equal(e.doc.token.type, 'access_token');
  assert.equal(e.doc.audience, env.docsResource, 'a granted event names the token\'s aud');
  assert.equal(e.doc.request.grant_type, JB);
  assert.equal(e.doc.request.subject_token_sha256, sha256hex(r.json.access_token), 'the assertion is fingerprinted');
  assert.equal(e.doc.request.subject_issuer, env.issuer);
  assert.equal(e.doc.user, 'gina@example.com');

  // Client credentials: no user, no subject token.
  from = auditLastSeq(env.srv.dbPath);
  const r3 = await tokenRequest(env.srv, { grant_type: CC, resource: env.docsResource, scope: 'docs:read' }, { post: ['build-bot', env.secrets['build-bot']] });
  assert.equal(r3.status, 200, r3.text);
  e = oneEvent(env, from);
  assertShape(e);
  assert.equal(e.doc.token.id, decode(r3.json.access_token).payload.jti);
  assert.equal(e.doc.user, null);
  assert.equal(e.doc.groups, null);
  assert.equal(e.doc.client, 'build-bot');
  assert.equal(e.doc.request.subject_token_sha256, null);
  assert.equal(e.doc.request.subject_issuer, null);

  for (const s of [token, r.json.access_token, r2.json.access_token, r3.json.access_token]) await assertNowhere(env, s, 'a token');
  for (const s of Object.values(env.secrets)) await assertNowhere(env, s, 'a client secret');
});

test('exactly one event per token request: 20 mixed requests, 20 events', { skip }, async (t) => {
  const env = await setup(t);
  const alice = await devIdToken(env.srv, ALICE, ['engineering']);
  const bob = await devIdToken(env.srv, 'bob@example.com');
  const jagRes = await post(env, exchangeParams(alice, { audience: env.issuer, resource: env.docsResource, scope: 'docs:read' }));
  assert.equal(jagRes.status, 200, jagRes.text);
  const jag = jagRes.json.access_token;
  const bot = { post: ['build-bot', env.secrets['build-bot']] };

  const from = auditLastSeq(env.srv.dbPath);
  const batch = [
    () => post(env, exchangeParams(alice)), // granted
    () => post(env, exchangeParams(alice, { scope: 'repo:read repo:write' })), // partly granted
    () => post(env, exchangeParams(alice, { scope: 'repo:write' })), // scope_not_enabled
    () => post(env, exchangeParams(bob)), // no_grant
    () => post(env, exchangeParams(alice, { resource: 'https://evil.example/mcp' })), // target_url_not_registered
    () => post(env, exchangeParams(alice, { audience: 'https://nobody.example/', resource: undefined })), // unknown_system
    () => post(env, exchangeParams(alice), { basic: ['desktop-agent', 'wrong'] }), // invalid_client
    () => post(env, exchangeParams(alice), { basic: undefined }), // invalid_client, no credentials
    () => post(env, exchangeParams('not.a.jwt')), // invalid_subject_token
    () => post(env, { grant_type: 'password' }), // unsupported_grant_type
    () => request(`${env.issuer}/oauth/token`, { headers: { 'user-agent': USER_AGENT } }), // GET: 405, invalid_request
    () => post(env, JSON.stringify({ grant_type: CC }), { contentType: 'application/json' }), // invalid_request
    () => post(env, `${new URLSearchParams(exchangeParams(alice))}&scope=again`), // invalid_request (repeated)
    () => post(env, { grant_type: CC, resource: env.docsResource }), // unauthorized_client
    () => post(env, { grant_type: JB, assertion: jag, resource: env.docsResource }), // granted
    () => post(env, { grant_type: JB, assertion: jag, resource: env.docsResource }), // replay
    () => tokenRequest(env.srv, { grant_type: CC, resource: env.docsResource, scope: 'docs:read' }, bot), // granted
    () => tokenRequest(env.srv, { grant_type: CC, resource: env.docsResource, scope: 'docs:write' }, bot), // no_grant
    () => tokenRequest(env.srv, { grant_type: CC, resource: `${env.issuer}/mcp/nope` }, bot), // unknown_system
    () =>
      request(`${env.issuer}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', expect: '100-continue' },
        body: `grant_type=client_credentials&x=${'a'.repeat(70 * 1024)}`,
      }), // 413
  ];
  assert.equal(batch.length, 20);
  // Half in sequence, half at once.
  const answers = [];
  for (const f of batch.slice(0, 10)) answers.push(await f());
  answers.push(...(await Promise.all(batch.slice(10).map((f) => f()))));
  const statuses = answers.map((a) => a.status);
  assert.deepEqual(statuses.filter((s) => s === 200).length, 4, statuses.join(','));
  assert.ok(statuses.includes(413) && statuses.includes(405) && statuses.includes(401) && !statuses.includes(500), statuses.join(','));

  // The 413's event is submitted without waiting; the others were committed before their answer.
  const count = () => auditEvents(env.srv.dbPath, from).length;
  await eventually(() => count() >= 20, { timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 300));
  const evs = auditEvents(env.srv.dbPath, from);
  assert.equal(evs.length, 20, evs.map((e) => `${e.seq} ${e.type} ${e.outcome} ${e.reason}`).join('\n'));
  for (const e of evs) {
    assert.equal(e.type, 'token.request', e.raw);
    assertShape(e);
  }
  const reasons = evs.map((e) => e.doc.reason ?? 'granted').sort();
  assert.deepEqual(
    reasons,
    [
      'granted', 'granted', 'granted', 'granted',
      'invalid_client', 'invalid_client',
      'invalid_request', 'invalid_request', 'invalid_request', 'invalid_request',
      'invalid_subject_token', 'invalid_subject_token',
      'no_grant', 'no_grant',
      'scope_not_enabled',
      'target_url_not_registered',
      'unauthorized_client',
      'unknown_system', 'unknown_system',
      'unsupported_grant_type',
    ].sort(),
  );
  // Each event's request.id is its own.
  assert.equal(new Set(evs.map((e) => e.doc.request.id)).size, 20);
  // Every token a client received is in the log as the token.id of a granted event.
  const granted = new Set(evs.filter((e) => e.outcome === 'granted').map((e) => e.doc.token.id));
  for (const a of answers.filter((x) => x.status === 200)) assert.ok(granted.has(decode(a.json.access_token).payload.jti));
  for (const tok of [alice, bob, jag]) await assertNowhere(env, tok, 'a subject token');
});
