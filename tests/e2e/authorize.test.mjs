// The authorization-code front door (docs/authorization-code.md) end to end against the
// real binary in --dev mode: GET /oauth/authorize → the development sign-in page
// → the redirect back with code, state and iss → POST /oauth/token with the PKCE
// verifier → an RFC 9068 access token checked with jose; dynamic client
// registration (RFC 7591) with its size cap and rate limit; every refusal, and
// each request's audit event read back from /api/v1/logs.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';

import * as jose from 'jose';

import { assertFields, ok, sleep } from './lib/check.mjs';
import {
  AC,
  assertNoSecrets,
  authorize,
  authorizePolicy,
  codeRequest,
  devCode,
  devSignIn,
  eventOf,
  events,
  pkce,
  redirectParams,
  ticketOf,
  tokenForm,
} from './lib/authorize.mjs';
import { basicAuth } from './lib/oauth.mjs';
import { assertCleanExit, logServersOnFailure, request, startServer } from './lib/server.mjs';

logServersOnFailure();

async function setup(t, opts = {}) {
  const srv = await startServer(opts);
  t.after(async () => assertCleanExit(assert, await srv.stop()));
  const confSecret = `conf-${crypto.randomUUID()}`;
  ok(await srv.api('POST', '/api/v1/apply', authorizePolicy(srv.url, { confSecret })));
  const jwks = jose.createRemoteJWKSet(new URL(`${srv.url}/oauth/jwks`));
  return { srv, issuer: srv.url, docs: `${srv.url}/mcp/docs`, confSecret, jwks };
}

function redeem(env, req, code, over = {}, headers = {}) {
  return tokenForm(
    env.srv,
    {
      grant_type: AC,
      code,
      redirect_uri: req.params.redirect_uri,
      code_verifier: req.verifier,
      client_id: req.params.client_id,
      resource: req.params.resource,
      ...over,
    },
    headers,
  );
}

test('metadata: registration endpoint, S256 only, iss parameter, client ID metadata documents', async (t) => {
  const env = await setup(t);
  const m = ok(await request(`${env.issuer}/.well-known/oauth-authorization-server`));
  assertFields(m, {
    authorization_endpoint: `${env.issuer}/oauth/authorize`,
    registration_endpoint: `${env.issuer}/oauth/register`,
    code_challenge_methods_supported: ['S256'],
    authorization_response_iss_parameter_supported: true,
    client_id_metadata_document_supported: true,
    response_types_supported: ['code'],
  });
  assert.ok(m.grant_types_supported.includes(AC));
});

test('dev sign-in: code with state and iss, redeemed once for an RFC 9068 token for the resource', async (t) => {
  const env = await setup(t);
  const req = codeRequest(env.srv);
  const page = await authorize(env.srv, req.params);
  assert.equal(page.status, 200, page.text);
  assert.match(page.text, /DEVELOPMENT ONLY/);
  assert.match(page.headers['content-security-policy'] || '', /default-src 'none'/);
  const pageEv = await eventOf(env.srv, 'authorize.request', page);
  assertFields(pageEv, { outcome: 'granted', client: 'web-app', system: 'docs', access_policy: 'web-docs' }, 'authorize event');
  assertFields(pageEv.request, {
    endpoint: 'authorize',
    phase: 'request',
    redirect_uri: req.params.redirect_uri,
    target_url: env.docs,
    response_type: 'code',
    code_challenge_method: 'S256',
    sign_in: 'development',
  }, 'authorize event request');
  const ticket = ticketOf(page.text);

  const back = await devSignIn(env.srv, page.text, 'alice@example.com', 'engineering, ops');
  const q = redirectParams(back, 'http://127.0.0.1:45678/callback');
  assert.equal(q.state, req.params.state);
  assert.equal(q.iss, env.issuer);
  assert.match(q.code, /^[A-Za-z0-9_-]{43}$/);
  const ev = await eventOf(env.srv, 'authorize.request', back);
  assertFields(ev, {
    type: 'authorize.request',
    outcome: 'granted',
    severity: 'info',
    reason: null,
    status_detail: null,
    user: 'alice@example.com',
    groups: ['engineering', 'ops'],
    client: 'web-app',
    system: 'docs',
    audience: env.docs,
    access_policy: 'web-docs',
    scopes: [
      { name: 'docs:read', outcome: 'granted' },
      { name: 'docs:write', outcome: 'granted' },
    ],
  }, 'sign-in event');
  assertFields(ev.request, { endpoint: 'authorize', phase: 'sign_in', client_ip: '127.0.0.1' }, 'sign-in event request');
  assertNoSecrets(ev, q.code, ticket, req.verifier);
  assertNoSecrets(pageEv, ticket);

  const tok = await redeem(env, req, q.code);
  assert.equal(tok.status, 200, tok.text);
  assert.equal(tok.json.token_type, 'Bearer');
  assert.equal(tok.json.scope, 'docs:read docs:write');
  assert.equal(tok.headers['cache-control'], 'no-store');
  const { payload, protectedHeader } = await jose.jwtVerify(tok.json.access_token, env.jwks, {
    issuer: env.issuer,
    audience: env.docs,
    typ: 'at+jwt',
    requiredClaims: ['exp', 'iat', 'jti', 'sub', 'client_id', 'scope'],
  });
  assert.equal(protectedHeader.typ, 'at+jwt');
  assertFields(payload, { sub: 'alice@example.com', client_id: 'web-app', scope: 'docs:read docs:write' }, 'access token');
  const tev = await eventOf(env.srv, 'token.request', tok);
  assertFields(tev, { outcome: 'granted', user: 'alice@example.com', groups: ['engineering', 'ops'], client: 'web-app', system: 'docs' }, 'token event');
  assertFields(tev.request, { grant_type: AC, target_url: env.docs }, 'token event request');
  assertNoSecrets(tev, q.code, req.verifier);

  // a reused code is refused (invalid_grant)
  const again = await redeem(env, req, q.code);
  assert.equal(again.status, 400, again.text);
  assert.equal(again.json.error, 'invalid_grant');
  assert.match(again.json.error_description, /used before/);
  const aev = await eventOf(env.srv, 'token.request', again);
  assertFields(aev, { outcome: 'denied', reason: 'invalid_subject_token', client: 'web-app' }, 'reuse event');
});

test('partial grant: the code carries the granted scopes, the event names the denied one', async (t) => {
  const env = await setup(t);
  const req = codeRequest(env.srv, { scope: 'docs:read docs:admin' });
  const q = await devCode(env.srv, req, 'bob@example.com', 'engineering');
  assert.ok(q.code, JSON.stringify(q));
  const tok = await redeem(env, req, q.code);
  assert.equal(tok.status, 200, tok.text);
  assert.equal(tok.json.scope, 'docs:read');
  const list = await events(env.srv, 'authorize.request', 'user eq "bob@example.com"');
  assertFields(list[0], { outcome: 'granted', status_detail: 'Scope not enabled: docs:admin' }, 'event');
});

test('denied after sign-in: no grant → back to the client with invalid_scope, state and iss', async (t) => {
  const env = await setup(t);
  const req = codeRequest(env.srv, { scope: 'docs:write' });
  const q = await devCode(env.srv, req, 'carol@example.com', 'sales');
  assertFields(q, { error: 'invalid_scope', state: req.params.state, iss: env.issuer });
  assert.match(q.error_description, /^No grant for the scope: docs:write/);
  assert.equal(q.code, undefined);
  const [ev] = await events(env.srv, 'authorize.request', 'user eq "carol@example.com"');
  assertFields(ev, { outcome: 'denied', reason: 'no_grant', severity: 'warning', user: 'carol@example.com', client: 'web-app' }, 'event');
});

test('confidential client: the code is redeemed with client_secret_basic only', async (t) => {
  const env = await setup(t);
  const req = codeRequest(env.srv, { client_id: 'conf-app', redirect_uri: 'https://conf.example/cb', scope: 'docs:read' });
  const q = await devCode(env.srv, req);
  const noAuth = await redeem(env, req, q.code, { client_id: 'conf-app' });
  assert.equal(noAuth.status, 401, noAuth.text);
  assert.equal(noAuth.json.error, 'invalid_client');
  // the code was not touched by an unauthenticated caller... but it is one try: get another
  const q2 = await devCode(env.srv, req);
  const good = await redeem(env, req, q2.code, { client_id: undefined }, { authorization: basicAuth('conf-app', env.confSecret) });
  assert.equal(good.status, 200, good.text);
});

test('loopback redirect URIs match on any port; other URIs exactly', async (t) => {
  const env = await setup(t);
  for (const uri of ['http://127.0.0.1:1/callback', 'http://127.0.0.1:65000/callback', 'http://127.0.0.1/callback', 'https://app.example/cb']) {
    const r = await authorize(env.srv, codeRequest(env.srv, { redirect_uri: uri }).params);
    assert.equal(r.status, 200, `${uri}: ${r.status} ${r.text}`);
  }
  for (const uri of ['http://127.0.0.1:1/callback/', 'http://localhost:1/callback', 'https://app.example:443/cb', 'https://app.example/cb?x=1', 'https://app.example/CB']) {
    const r = await authorize(env.srv, codeRequest(env.srv, { redirect_uri: uri }).params);
    assert.equal(r.status, 400, `${uri}: ${r.status} ${r.text}`);
    assert.equal(r.headers.location, undefined, `${uri}: must not redirect`);
  }
});

test('unknown client and unregistered redirect URI: an HTML page, never a redirect', async (t) => {
  const env = await setup(t);
  const unknown = await authorize(env.srv, codeRequest(env.srv, { client_id: 'nobody' }).params);
  assert.equal(unknown.status, 400);
  assert.equal(unknown.headers.location, undefined);
  assert.match(unknown.headers['content-type'], /^text\/html/);
  assert.match(unknown.text, /unknown client nobody/);
  const uev = await eventOf(env.srv, 'authorize.request', unknown);
  assertFields(uev, { outcome: 'denied', reason: 'invalid_client', severity: 'error', client: 'nobody' }, 'unknown client event');

  const evil = await authorize(env.srv, codeRequest(env.srv, { redirect_uri: 'https://evil.example/cb' }).params);
  assert.equal(evil.status, 400);
  assert.equal(evil.headers.location, undefined);
  assert.match(evil.text, /https:\/\/evil\.example\/cb is not registered for client web-app/);
  const eev = await eventOf(env.srv, 'authorize.request', evil);
  assertFields(eev, { outcome: 'denied', reason: 'invalid_request', client: 'web-app' }, 'redirect event');
  assert.equal(eev.request.redirect_uri, 'https://evil.example/cb');

  // HTML in the parameters is escaped on the page
  const xss = await authorize(env.srv, codeRequest(env.srv, { client_id: '<script>alert(1)</script>' }).params);
  assert.equal(xss.status, 400);
  assert.ok(!xss.text.includes('<script>'), xss.text);
});

test('refusals after the redirect URI is known: back to the client with error, state and iss', async (t) => {
  const env = await setup(t);
  const cases = [
    [{ code_challenge: undefined, code_challenge_method: undefined }, 'invalid_request', 'invalid_request', /code_challenge is required/],
    [{ code_challenge_method: 'plain' }, 'invalid_request', 'invalid_request', /must be S256/],
    [{ code_challenge_method: undefined }, 'invalid_request', 'invalid_request', /must be S256/],
    [{ code_challenge: 'short' }, 'invalid_request', 'invalid_request', /base64url SHA-256/],
    [{ response_type: 'token' }, 'unsupported_response_type', 'invalid_request', /response_type must be code/],
    [{ resource: undefined }, 'invalid_request', 'invalid_request', /resource is required/],
    [{ resource: 'https://nowhere.example/mcp' }, 'invalid_target', 'unknown_system', /^No server workload matched: resource https:\/\/nowhere/],
    [{ resource: `${env.issuer}/mcp/wiki` }, 'invalid_target', 'server_paused', /^Server paused: wiki/],
    [{ resource: 'https://mcp.github.example/mcp' }, 'invalid_target', 'unknown_system', /only for systems whose audience is this issuer/],
    [{ client_id: 'te-only', redirect_uri: 'https://te.example/cb' }, 'unauthorized_client', 'unauthorized_client', /^Grant type not allowed for the client: authorization_code/],
  ];
  for (const [over, error, reason, desc] of cases) {
    const req = codeRequest(env.srv, over);
    const r = await authorize(env.srv, req.params);
    const q = redirectParams(r, req.params.redirect_uri);
    const where = `${JSON.stringify(over)}: ${JSON.stringify(q)}`;
    assert.equal(q.error, error, where);
    assert.match(q.error_description, desc, where);
    assert.equal(q.state, req.params.state, where);
    assert.equal(q.iss, env.issuer, where);
    const ev = await eventOf(env.srv, 'authorize.request', r);
    assertFields(ev, { outcome: 'denied', reason }, `event ${where}`);
    assert.equal(ev.status_detail, q.error_description, where);
  }
  // a repeated parameter is never trusted enough to redirect with
  const u = new URL('/oauth/authorize', env.issuer);
  const req = codeRequest(env.srv);
  for (const [k, v] of Object.entries(req.params)) u.searchParams.append(k, v);
  u.searchParams.append('redirect_uri', 'https://evil.example/cb');
  const dup = await request(u.href);
  assert.equal(dup.status, 400);
  assert.equal(dup.headers.location, undefined);
  assert.match(dup.text, /repeated/);
});

test('token endpoint: mismatched verifier, wrong redirect_uri, another client, wrong resource — each spends the code', async (t) => {
  const env = await setup(t);
  const bad = [
    [{ code_verifier: pkce().verifier }, /code_verifier does not match/],
    [{ redirect_uri: 'http://127.0.0.1:45679/callback' }, /redirect_uri is not the one/],
    [{ resource: 'https://nowhere.example/mcp' }, /resource .* is not the one/],
  ];
  for (const [over, why] of bad) {
    const req = codeRequest(env.srv);
    const q = await devCode(env.srv, req);
    const r = await redeem(env, req, q.code, over);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.error, 'invalid_grant', r.text);
    assert.match(r.json.error_description, why);
    const ev = await eventOf(env.srv, 'token.request', r);
    assertFields(ev, { outcome: 'denied', reason: 'invalid_subject_token', client: 'web-app' }, 'event');
    assertNoSecrets(ev, q.code, req.verifier);
    const again = await redeem(env, req, q.code);
    assert.equal(again.status, 400, again.text);
    assert.match(again.json.error_description, /used before/);
  }
  const req = codeRequest(env.srv);
  const q = await devCode(env.srv, req);
  const missing = await redeem(env, req, q.code, { code_verifier: undefined });
  assert.equal(missing.status, 400);
  assert.equal(missing.json.error, 'invalid_request');
  const unknown = await redeem(env, req, crypto.randomBytes(32).toString('base64url'));
  assert.equal(unknown.status, 400);
  assert.match(unknown.json.error_description, /unknown or expired/);
});

test('sign-in tickets are single use; an unknown one is an HTML page', async (t) => {
  const env = await setup(t);
  const req = codeRequest(env.srv);
  const page = await authorize(env.srv, req.params);
  redirectParams(await devSignIn(env.srv, page.text, 'alice@example.com', 'engineering'));
  const twice = await devSignIn(env.srv, page.text, 'mallory@example.com', 'engineering');
  assert.equal(twice.status, 400);
  assert.equal(twice.headers.location, undefined);
  assert.match(twice.text, /completed already/);
  const cb = await request(`${env.issuer}/oauth/callback?state=${crypto.randomBytes(32).toString('base64url')}&code=x`);
  assert.equal(cb.status, 400);
  assert.match(cb.text, /unknown or expired sign-in/);
  const ev = await eventOf(env.srv, 'authorize.request', cb);
  assertFields(ev, { outcome: 'denied', reason: 'invalid_request' }, 'callback event');
  assert.equal(ev.request.phase, 'callback');
});

test('registration (RFC 7591): public and confidential clients, usable at once once an admin connects them', async (t) => {
  const env = await setup(t);
  const reg = (body, headers = {}) =>
    request(`${env.issuer}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const pub = await reg({ redirect_uris: ['http://127.0.0.1:9999/cb'], token_endpoint_auth_method: 'none', client_name: 'CLI', grant_types: [AC, 'refresh_token'] });
  assert.equal(pub.status, 201, pub.text);
  assert.match(pub.json.client_id, /^dcr-[A-Za-z0-9_-]{22}$/);
  assert.equal(pub.json.client_secret, undefined);
  assertFields(pub.json, { redirect_uris: ['http://127.0.0.1:9999/cb'], token_endpoint_auth_method: 'none', client_name: 'CLI', grant_types: [AC, 'refresh_token'] });
  assert.equal(typeof pub.json.client_id_issued_at, 'number');
  const ev = await eventOf(env.srv, 'client.register', pub);
  assertFields(ev, { outcome: 'success', severity: 'info', client: pub.json.client_id }, 'register event');
  assertFields(ev.request, { endpoint: 'register', client_ip: '127.0.0.1' });
  const changes = await events(env.srv, 'admin.change', `object eq "client:${pub.json.client_id}"`).catch(() => null);
  const all = ok(await env.srv.api('GET', `/api/v1/logs?filter=${encodeURIComponent('type eq "admin.change"')}&sortOrder=DESCENDING&limit=20`));
  const change = all.find((e) => e.object === `client:${pub.json.client_id}`);
  assert.ok(change, `no admin.change for the client (${JSON.stringify(changes)})`);
  assertFields(change, { actor: 'registration', action: 'create' });

  const conf = await reg({ redirect_uris: ['https://x.example/cb'] });
  assert.equal(conf.status, 201, conf.text);
  assert.equal(conf.json.token_endpoint_auth_method, 'client_secret_basic');
  assert.match(conf.json.client_secret, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(conf.json.client_secret_expires_at, 0);
  const stored = ok(await env.srv.api('GET', `/api/v1/clients/${conf.json.client_id}`));
  assert.equal(stored.secret_set, true);
  assert.ok(!JSON.stringify(stored).includes(conf.json.client_secret));
  const confEv = await eventOf(env.srv, 'client.register', conf);
  assertNoSecrets(confEv, conf.json.client_secret);

  // without an access policy the client gets nothing (default deny) ...
  const req = codeRequest(env.srv, { client_id: pub.json.client_id, redirect_uri: 'http://127.0.0.1:9999/cb' });
  const denied = redirectParams(await authorize(env.srv, req.params));
  assert.equal(denied.error, 'unauthorized_client');
  assert.match(denied.error_description, /^No active access policy/);
  // ... and once an admin connects it, the whole flow works
  ok(await env.srv.api('POST', '/api/v1/access-policies', { id: 'dcr-docs', client: pub.json.client_id, system: 'docs' }), 201);
  const q = await devCode(env.srv, req, 'alice@example.com', 'engineering');
  const tok = await redeem(env, req, q.code);
  assert.equal(tok.status, 200, tok.text);
});

test('registration refusals: bad metadata, oversized body (413), rate limit (429), each one event', async (t) => {
  const env = await setup(t);
  const reg = (body, headers = {}) =>
    request(`${env.issuer}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const cases = [
    [{}, 'invalid_redirect_uri'],
    [{ redirect_uris: ['http://app.example/cb'] }, 'invalid_redirect_uri'],
    [{ redirect_uris: ['https://app.example/cb#frag'] }, 'invalid_redirect_uri'],
    [{ redirect_uris: ['javascript:alert(1)'] }, 'invalid_redirect_uri'],
    [{ redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'private_key_jwt' }, 'invalid_client_metadata'],
    [{ redirect_uris: ['https://app.example/cb'], grant_types: ['client_credentials'] }, 'invalid_client_metadata'],
    [{ redirect_uris: ['https://app.example/cb'], response_types: ['token'] }, 'invalid_client_metadata'],
    ['[1,2]', 'invalid_client_metadata'],
    ['{"redirect_uris": ["https://a.example/cb"], "redirect_uris": []}', 'invalid_client_metadata'],
  ];
  for (const [body, error] of cases) {
    const r = await reg(body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.error, error, `${JSON.stringify(body)}: ${r.text}`);
    const ev = await eventOf(env.srv, 'client.register', r);
    assertFields(ev, { outcome: 'failure', reason: error, client: null }, `event for ${JSON.stringify(body)}`);
  }
  const big = await reg({ redirect_uris: ['https://app.example/cb'], client_name: 'x'.repeat(17 * 1024) });
  assert.equal(big.status, 413, big.text);
  const bev = await eventOf(env.srv, 'client.register', big);
  assertFields(bev, { outcome: 'failure' }, 'oversized event');
  // 11 so far from this address: the bucket (burst 10) is empty
  const limited = await reg({ redirect_uris: ['https://app.example/cb'] });
  assert.equal(limited.status, 429, limited.text);
  assert.equal(typeof limited.json.error, 'string');
  assert.ok(limited.headers['retry-after']);
  const lev = await eventOf(env.srv, 'client.register', limited);
  assertFields(lev, { outcome: 'failure', reason: 'rate_limited', severity: 'warning' }, 'rate limit event');
});

test('an authorization code expires after 60 seconds', { timeout: 120_000 }, async (t) => {
  const env = await setup(t);
  const req = codeRequest(env.srv);
  const q = await devCode(env.srv, req);
  await sleep(61_500);
  const r = await redeem(env, req, q.code);
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error, 'invalid_grant');
  assert.match(r.json.error_description, /unknown or expired/);
});

// (b) The MCP TypeScript SDK v2 as the client: discovery (RFC 9728 → RFC 8414), dynamic
// registration, PKCE authorization through the development sign-in page (driven with
// plain HTTP, as a browser would), the code redeemed by the SDK, RFC 9207 iss checked.
class SdkProvider {
  constructor(redirect) {
    this.redirect = redirect;
    this.info = undefined;
    this.tok = undefined;
    this.verifier = undefined;
    this.authUrl = undefined;
    this.lastState = undefined;
  }
  get redirectUrl() {
    return this.redirect;
  }
  get clientMetadata() {
    return {
      client_name: 'MCP SDK e2e',
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

test('MCP SDK client: discovery, registration, PKCE authorization with the dev sign-in, token', async (t) => {
  const { auth } = await import('@modelcontextprotocol/client');
  const env = await setup(t);
  const p = new SdkProvider('http://127.0.0.1:33418/callback');
  assert.equal(await auth(p, { serverUrl: env.docs }), 'REDIRECT');
  assert.match(p.info.client_id, /^dcr-/);
  assert.ok(p.authUrl instanceof URL);
  assert.equal(`${p.authUrl.origin}${p.authUrl.pathname}`, `${env.issuer}/oauth/authorize`);
  assertFields(Object.fromEntries(p.authUrl.searchParams), {
    response_type: 'code',
    client_id: p.info.client_id,
    code_challenge_method: 'S256',
    resource: env.docs,
    redirect_uri: p.redirect,
  }, 'the SDK\'s authorization request');
  // an administrator connects the newly registered client to the system
  ok(await env.srv.api('POST', '/api/v1/access-policies', { id: 'sdk-docs', client: p.info.client_id, system: 'docs' }), 201);

  const page = await request(p.authUrl.href);
  assert.equal(page.status, 200, page.text);
  const q = redirectParams(await devSignIn(env.srv, page.text, 'alice@example.com', 'engineering'), p.redirect);
  assert.equal(q.state, p.lastState);
  assert.equal(q.iss, env.issuer);
  assert.equal(await auth(p, { serverUrl: env.docs, authorizationCode: q.code, iss: q.iss }), 'AUTHORIZED');
  const { payload } = await jose.jwtVerify(p.tok.access_token, env.jwks, { issuer: env.issuer, audience: env.docs, typ: 'at+jwt' });
  assertFields(payload, { sub: 'alice@example.com', client_id: p.info.client_id }, 'access token');
  assert.deepEqual(payload.scope.split(' ').sort(), ['docs:read', 'docs:write']);
});

// (a) An enterprise IdP in front: oidc-provider (devInteractions) as a trusted issuer with
// an authorization_endpoint; mcpauth is its client "mcpauth". The browser is plain HTTP
// with a cookie jar, following redirects and submitting the IdP's login and consent forms.

/** A browser: follows redirects (keeping cookies per origin) until `stopAt` is reached,
 * submitting the one form of each HTML page (login fields filled in). */
async function browse(startUrl, stopAt, login) {
  const jar = new Map(); // origin -> Map(name -> value)
  const cookieHeader = (u) => [...(jar.get(u.origin) || new Map())].map(([k, v]) => `${k}=${v}`).join('; ');
  const keep = (u, res) => {
    let set = res.headers['set-cookie'] || [];
    if (!Array.isArray(set)) set = [set];
    const m = jar.get(u.origin) || new Map();
    for (const c of set) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      m.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
    jar.set(u.origin, m);
  };
  let url = new URL(startUrl);
  let method = 'GET';
  let body;
  const trail = [];
  for (let hop = 0; hop < 30; hop++) {
    if (url.href.startsWith(stopAt)) return { url, trail };
    const headers = { cookie: cookieHeader(url) };
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await request(url.href, { method, headers, body });
    trail.push(`${method} ${url.href} -> ${res.status}`);
    keep(url, res);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.location, url);
      method = 'GET';
      body = undefined;
      continue;
    }
    const form = /<form[^>]*action="([^"]+)"[^>]*method="post"/i.exec(res.text || '');
    if (res.status !== 200 || !form) return { url, res, trail };
    const fields = new URLSearchParams();
    for (const m of res.text.matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)) fields.append(m[1], m[2]);
    if (/name="login"/.test(res.text)) {
      fields.append('login', login);
      fields.append('password', 'any');
    }
    url = new URL(form[1].replace(/&amp;/g, '&'), url);
    method = 'POST';
    body = fields.toString();
  }
  throw new Error(`too many hops:\n${trail.join('\n')}`);
}

async function startIdp(t, mcpauthUrl, secret) {
  const { default: Provider } = await import('oidc-provider');
  const { freePort } = await import('./lib/server.mjs');
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const accounts = {
    'alice@example.com': ['engineering'],
    'dave@example.com': ['sales'],
  };
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'mcpauth',
        client_secret: secret,
        redirect_uris: [`${mcpauthUrl}/oauth/callback`],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    findAccount: (ctx, id) => ({
      accountId: id,
      claims: () => ({ sub: id, email: id, groups: accounts[id] || [] }),
    }),
    claims: { openid: ['sub'], email: ['email'], groups: ['groups'] },
    scopes: ['openid', 'email', 'groups'],
    conformIdTokenClaims: false, // the claims of the granted scopes go into the ID token
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
  });
  // silence oidc-provider's development warnings
  const warn = console.warn;
  console.warn = () => {};
  t.after(() => {
    console.warn = warn;
  });
  const server = provider.listen(port, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  t.after(() => new Promise((r) => server.close(r)));
  return { issuer, provider };
}

test('enterprise IdP (oidc-provider): authorize → IdP login → /oauth/callback → code → token', async (t) => {
  const env = await setup(t);
  const secret = `idp-secret-${crypto.randomUUID()}`;
  const idp = await startIdp(t, env.issuer, secret);
  const created = ok(
    await env.srv.api('POST', '/api/v1/trusted-issuers', {
      id: 'corp',
      issuer: idp.issuer,
      jwks_uri: `${idp.issuer}/jwks`,
      audience: 'mcpauth',
      algorithms: ['RS256', 'ES256', 'PS256', 'EdDSA'],
      authorization_endpoint: `${idp.issuer}/auth`,
      token_endpoint: `${idp.issuer}/token`,
      client_id: 'mcpauth',
      client_secret: secret,
      sign_in_scope: 'openid email groups',
    }),
    201,
  );
  assert.equal(created.client_secret, undefined, 'the secret is write-only');
  assert.equal(created.client_secret_set, true);
  const shown = ok(await env.srv.api('GET', '/api/v1/trusted-issuers/corp'));
  assert.ok(!JSON.stringify(shown).includes(secret));

  const req = codeRequest(env.srv, { scope: 'docs:read' });
  const first = await authorize(env.srv, req.params);
  assert.equal(first.status, 302, first.text);
  const toIdp = new URL(first.headers.location);
  assert.equal(`${toIdp.origin}${toIdp.pathname}`, `${idp.issuer}/auth`);
  assertFields(Object.fromEntries(toIdp.searchParams), {
    client_id: 'mcpauth',
    redirect_uri: `${env.issuer}/oauth/callback`,
    response_type: 'code',
    code_challenge_method: 'S256',
    scope: 'openid email groups',
  }, 'the request to the IdP');
  const ours = toIdp.searchParams.get('state');
  const nonce = toIdp.searchParams.get('nonce');
  assert.notEqual(ours, req.params.state, 'our own state at the IdP, not the client\'s');
  const startEv = await eventOf(env.srv, 'authorize.request', first);
  assertFields(startEv, { outcome: 'granted', client: 'web-app', system: 'docs' }, 'authorize event');
  assert.equal(startEv.request.sign_in, idp.issuer);
  assertNoSecrets(startEv, ours, nonce);

  const { url, trail } = await browse(first.headers.location, req.params.redirect_uri, 'alice@example.com');
  const q = Object.fromEntries(url.searchParams);
  assert.ok(q.code, `no code: ${url.href}\n${trail.join('\n')}`);
  assert.equal(q.state, req.params.state);
  assert.equal(q.iss, env.issuer);

  const list = await events(env.srv, 'authorize.request', 'user eq "alice@example.com"');
  const cbEv = list[0];
  assertFields(cbEv, {
    outcome: 'granted',
    user: 'alice@example.com',
    groups: ['engineering'],
    client: 'web-app',
    system: 'docs',
    access_policy: 'web-docs',
    scopes: [{ name: 'docs:read', outcome: 'granted' }],
  }, 'callback event');
  assertFields(cbEv.request, { phase: 'callback', sign_in: idp.issuer });
  assertNoSecrets(cbEv, q.code, ours, nonce, secret);

  const tok = await redeem(env, req, q.code);
  assert.equal(tok.status, 200, tok.text);
  const { payload } = await jose.jwtVerify(tok.json.access_token, env.jwks, {
    issuer: env.issuer,
    audience: env.docs,
    typ: 'at+jwt',
  });
  assertFields(payload, { sub: 'alice@example.com', client_id: 'web-app', scope: 'docs:read' }, 'access token');

  // a user of the IdP without a grant: back to the client with the policy's refusal
  const req2 = codeRequest(env.srv, { scope: 'docs:read' });
  const first2 = await authorize(env.srv, req2.params);
  const { url: url2 } = await browse(first2.headers.location, req2.params.redirect_uri, 'dave@example.com');
  const q2 = Object.fromEntries(url2.searchParams);
  assertFields(q2, { error: 'invalid_scope', state: req2.params.state, iss: env.issuer });
  assert.match(q2.error_description, /^No grant for the scope: docs:read/);

  // the IdP's callback replayed (its state is ours, single use): an HTML page
  const replay = await request(`${env.issuer}/oauth/callback?state=${ours}&code=x&iss=${encodeURIComponent(idp.issuer)}`);
  assert.equal(replay.status, 400);
  assert.match(replay.text, /completed already|unknown or expired/);
});

// Client ID metadata documents: a URL as client_id, fetched by mcpauth (loopback http is
// allowed in --dev only), cached, and guarded against SSRF.
async function startDocServer(t) {
  const http = await import('node:http');
  const { freePort } = await import('./lib/server.mjs');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const hits = new Map();
  const docs = {
    '/good.json': (url) => ({ client_id: url, client_name: 'Doc client', redirect_uris: ['http://127.0.0.1:45678/callback'], token_endpoint_auth_method: 'none', grant_types: ['authorization_code'] }),
    '/wrong-id.json': () => ({ client_id: `${base}/other.json`, redirect_uris: ['http://127.0.0.1:45678/callback'] }),
    '/secret.json': (url) => ({ client_id: url, redirect_uris: ['http://127.0.0.1:45678/callback'], token_endpoint_auth_method: 'client_secret_basic' }),
    '/bad-redirect.json': (url) => ({ client_id: url, redirect_uris: ['http://evil.example/cb'] }),
    '/big.json': (url) => ({ client_id: url, redirect_uris: ['http://127.0.0.1:45678/callback'], pad: 'x'.repeat(17 * 1024) }),
  };
  const server = http.createServer((req, res) => {
    hits.set(req.url, (hits.get(req.url) || 0) + 1);
    if (req.url === '/redirect.json') {
      res.writeHead(302, { location: '/good.json' });
      return res.end();
    }
    const make = docs[req.url];
    if (!make) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(make(`${base}${req.url}`)));
  });
  server.listen(port, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  t.after(() => new Promise((r) => server.close(r)));
  return { base, hits };
}

test('client ID metadata document: fetched once, a stranger is refused by policy, an admin-named one completes the flow', async (t) => {
  const env = await setup(t);
  const ds = await startDocServer(t);
  const url = `${ds.base}/good.json`;
  const req = codeRequest(env.srv, { client_id: url });
  const stranger = redirectParams(await authorize(env.srv, req.params), req.params.redirect_uri);
  assert.equal(stranger.error, 'unauthorized_client', JSON.stringify(stranger));
  assert.match(stranger.error_description, /^No active access policy/);
  const [sev] = await events(env.srv, 'authorize.request', `client eq "${url}"`);
  assertFields(sev, { outcome: 'denied', reason: 'no_access_policy', client: url });
  // a redirect URI the document does not list: a page, not a redirect
  const off = await authorize(env.srv, codeRequest(env.srv, { client_id: url, redirect_uri: 'https://app.example/cb' }).params);
  assert.equal(off.status, 400);
  assert.equal(off.headers.location, undefined);
  assert.equal(ds.hits.get('/good.json'), 1, 'the document is cached');

  ok(await env.srv.api('POST', '/api/v1/access-policies', { id: 'doc-docs', client: url, system: 'docs' }), 201);
  const req2 = codeRequest(env.srv, { client_id: url, scope: 'docs:read' });
  const q = await devCode(env.srv, req2, 'alice@example.com', 'engineering');
  assert.ok(q.code, JSON.stringify(q));
  const tok = await redeem(env, req2, q.code);
  assert.equal(tok.status, 200, tok.text);
  const { payload } = await jose.jwtVerify(tok.json.access_token, env.jwks, { issuer: env.issuer, audience: env.docs });
  assert.equal(payload.client_id, url);
  assert.equal(ds.hits.get('/good.json'), 1, 'still one fetch');
});

test('client ID metadata documents: hostile URLs and bad documents are refused (SSRF guard), never redirected to', async (t) => {
  const env = await setup(t);
  const ds = await startDocServer(t);
  const cases = [
    ['http://169.254.169.254/latest/meta-data/', /loopback/],
    ['https://169.254.169.254/latest/meta-data/', /link-local address: refused/],
    ['https://10.0.0.1/client.json', /private address: refused/],
    ['https://192.168.1.10/client.json', /private address: refused/],
    ['https://[::ffff:10.0.0.1]/client.json', /private address: refused/],
    ['https://[fe80::1]/client.json', /link-local/],
    ['https://0.0.0.0/client.json', /unspecified address: refused/],
    ['https://224.0.0.1/client.json', /multicast/],
    ['https://[::]/client.json', /unspecified/],
    ['ftp://127.0.0.1/client.json', /unknown client|https/],
    [`${ds.base}/`, /must have a path/],
    [`${ds.base}/wrong-id.json`, /client_id is not its URL/],
    [`${ds.base}/secret.json`, /only public clients/],
    [`${ds.base}/bad-redirect.json`, /redirect_uris\[0\] is not allowed/],
    [`${ds.base}/big.json`, /larger than 16384 bytes/],
    [`${ds.base}/redirect.json`, /HTTP 302 \(redirects are not followed\)/],
    [`${ds.base}/missing.json`, /HTTP 404/],
  ];
  for (const [url, why] of cases) {
    const r = await authorize(env.srv, codeRequest(env.srv, { client_id: url }).params);
    assert.equal(r.status, 400, `${url}: ${r.status} ${r.text}`);
    assert.equal(r.headers.location, undefined, url);
    const text = r.text.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, '&');
    assert.match(text, why, url);
    const ev = await eventOf(env.srv, 'authorize.request', r);
    assertFields(ev, { outcome: 'denied', reason: 'invalid_client', client: url }, `event for ${url}`);
  }
  assert.equal(ds.hits.get('/good.json'), undefined, 'the redirect was not followed');
});
