// Helpers for the authorization-code front door (GET /oauth/authorize, the dev
// sign-in page, /oauth/callback, POST /oauth/register): PKCE pairs, the policy
// the tests apply, a browser that follows redirects by hand, and the audit
// events of the front door read back through /api/v1/logs.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { ok } from './check.mjs';
import { request } from './server.mjs';

export const AC = 'authorization_code';

/** RFC 7636 S256 pair. */
export function pkce() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

/** The policy of the front-door tests for a server whose issuer is `issuer`. */
export function authorizePolicy(issuer, { confSecret }) {
  return {
    systems: [
      {
        id: 'docs',
        name: 'Docs MCP',
        audience: issuer,
        resource_urls: [`${issuer}/mcp/docs`],
        scopes: [
          { name: 'docs:read', enabled: true },
          { name: 'docs:write', enabled: true },
          { name: 'docs:admin', enabled: false },
        ],
        token_type: 'access_token',
      },
      {
        id: 'wiki',
        name: 'Wiki MCP (paused)',
        audience: issuer,
        resource_urls: [`${issuer}/mcp/wiki`],
        scopes: [{ name: 'wiki:read', enabled: true }],
        paused: true,
        token_type: 'access_token',
      },
      {
        id: 'github',
        name: 'GitHub MCP (another authorization server)',
        audience: 'https://auth.github.example/',
        resource_urls: ['https://mcp.github.example/mcp'],
        scopes: [{ name: 'repo:read', enabled: true }],
      },
    ],
    clients: [
      {
        id: 'web-app',
        name: 'Public web app',
        auth: 'none',
        redirect_uris: ['http://127.0.0.1/callback', 'https://app.example/cb'],
        grant_types: [AC],
      },
      {
        id: 'conf-app',
        name: 'Confidential app',
        auth: 'client_secret_basic',
        secret: confSecret,
        redirect_uris: ['https://conf.example/cb'],
        grant_types: [AC],
      },
      {
        id: 'te-only',
        name: 'Token exchange only',
        auth: 'none',
        redirect_uris: ['https://te.example/cb'],
        grant_types: ['urn:ietf:params:oauth:grant-type:token-exchange'],
      },
    ],
    access_policies: [
      { id: 'web-docs', client: 'web-app', system: 'docs', active: true },
      { id: 'web-wiki', client: 'web-app', system: 'wiki', active: true },
      { id: 'web-github', client: 'web-app', system: 'github', active: true },
      { id: 'conf-docs', client: 'conf-app', system: 'docs', active: true },
      { id: 'teonly-docs', client: 'te-only', system: 'docs', active: true },
    ],
    grants: [
      { subject: 'group:engineering', system: 'docs', scopes: ['docs:read'] },
      { subject: 'user:alice@example.com', system: 'docs', scopes: ['docs:write'] },
      { subject: 'group:engineering', system: 'github', scopes: ['repo:read'] },
    ],
  };
}

/** GET /oauth/authorize with `params` (undefined values left out); no redirect is followed. */
export function authorize(srv, params) {
  const u = new URL('/oauth/authorize', srv.url);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) u.searchParams.append(k, v);
  return request(u.href);
}

/** The usual authorization request of `client` for docs, with a fresh PKCE pair. */
export function codeRequest(srv, over = {}) {
  const p = pkce();
  const params = {
    response_type: 'code',
    client_id: 'web-app',
    redirect_uri: 'http://127.0.0.1:45678/callback',
    code_challenge: p.challenge,
    code_challenge_method: 'S256',
    state: `st-${crypto.randomUUID()}`,
    resource: `${srv.url}/mcp/docs`,
    scope: 'docs:read docs:write',
    ...over,
  };
  return { params, verifier: p.verifier };
}

/** The hidden ticket of the development sign-in page. */
export function ticketOf(html) {
  const m = /name="ticket" value="([A-Za-z0-9_-]{43})"/.exec(html);
  assert.ok(m, `no sign-in ticket in the page:\n${html}`);
  return m[1];
}

/** Submits the development sign-in form; returns the raw answer (a redirect). */
export function devSignIn(srv, html, user, groups = '') {
  const body = new URLSearchParams({ ticket: ticketOf(html), user, groups }).toString();
  return request(`${srv.url}/oauth/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body,
  });
}

/** The query of a redirect answer (302 + Location). */
export function redirectParams(r, base) {
  assert.equal(r.status, 302, `expected a redirect: ${r.status} ${r.text}`);
  const loc = new URL(r.headers.location);
  if (base) assert.equal(`${loc.origin}${loc.pathname}`, base, `redirected to ${r.headers.location}`);
  return Object.fromEntries(loc.searchParams);
}

/** authorize → dev sign-in as user → the client's redirect parameters. */
export async function devCode(srv, req, user = 'alice@example.com', groups = 'engineering') {
  const page = await authorize(srv, req.params);
  assert.equal(page.status, 200, `sign-in page: ${page.status} ${page.text}`);
  assert.match(page.headers['content-type'], /^text\/html/);
  const r = await devSignIn(srv, page.text, user, groups);
  return redirectParams(r, req.params.redirect_uri);
}

/** POST /oauth/token with a form. */
export function tokenForm(srv, params, headers = {}) {
  const body = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined)).toString();
  return request(`${srv.url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body,
  });
}

/** Audit events of `type`, newest first, through the log API. */
export async function events(srv, type, extra = '') {
  const filter = encodeURIComponent(`type eq "${type}"${extra ? ` and ${extra}` : ''}`);
  return ok(await srv.api('GET', `/api/v1/logs?filter=${filter}&sortOrder=DESCENDING&limit=50`));
}

/** The newest event of `type` whose request.id is the X-Request-Id of answer `r`. */
export async function eventOf(srv, type, r) {
  const id = r.headers['x-request-id'];
  assert.ok(id, 'answer without X-Request-Id');
  const list = await events(srv, type);
  const ev = list.find((e) => e.request && e.request.id === id);
  assert.ok(ev, `no ${type} event for request ${id} among ${JSON.stringify(list.map((e) => e.request?.id))}`);
  return ev;
}

/** No code, state secret, PKCE verifier or ticket anywhere in the serialized event. */
export function assertNoSecrets(ev, ...secrets) {
  const text = JSON.stringify(ev);
  for (const s of secrets) if (s) assert.ok(!text.includes(s), `event leaks a secret (${s.slice(0, 8)}…): ${text}`);
}
