// Token endpoint helpers for the e2e tests: the policy the token tests apply
// (made for the server's own issuer), development ID tokens, raw form posts
// to /oauth/*, and the decision table of spec/policy.md.
//
//   const env = await startTokenServer();   // {srv, issuer, pkjwt, secrets, ...}
//   const idt = await devIdToken(env.srv, 'alice@example.com', ['engineering']);
//   const r = await tokenRequest(env.srv, {grant_type: 'client_credentials', ...}, {post: ['build-bot', secret]});
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import * as jose from 'jose';

import { ok } from './check.mjs';
import { request, startServer } from './server.mjs';

export const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JB = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
export const CC = 'client_credentials';
export const TT_ID_JAG = 'urn:ietf:params:oauth:token-type:id-jag';
export const TT_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
export const TT_ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
export const ID_JAG_PROFILE = 'urn:ietf:params:oauth:grant-profile:id-jag';

export const GITHUB_AUD = 'https://auth.github.example/';
export const GITHUB_RESOURCE = 'https://mcp.github.example/mcp';
export const ALICE = 'alice@example.com';

/**
 * spec/policy.md, "The decision, in order": reason code -> status detail prefix,
 * OAuth error, HTTP status, severity. A contract: the tests compare against it.
 */
export const DECISION = {
  invalid_request: { text: 'Malformed request', error: 'invalid_request', status: 400, severity: 'error' },
  unsupported_grant_type: { text: 'Unsupported grant type', error: 'unsupported_grant_type', status: 400, severity: 'error' },
  invalid_client: { text: 'Client authentication failed', error: 'invalid_client', status: 401, severity: 'error' },
  unauthorized_client: { text: 'Grant type not allowed for the client', error: 'unauthorized_client', status: 400, severity: 'error' },
  invalid_subject_token: { text: 'Subject token rejected', error: 'invalid_grant', status: 400, severity: 'warning' },
  unknown_system: { text: 'No server workload matched', error: 'invalid_target', status: 400, severity: 'error' },
  no_access_policy: { text: 'No active access policy', error: 'unauthorized_client', status: 400, severity: 'warning' },
  server_paused: { text: 'Server paused', error: 'invalid_target', status: 400, severity: 'warning' },
  target_url_not_registered: { text: 'Target URL not registered', error: 'invalid_target', status: 400, severity: 'warning' },
  scope_not_enabled: { text: 'Scope not enabled', error: 'invalid_scope', status: 400, severity: 'warning' },
  no_grant: { text: 'No grant for the scope', error: 'invalid_scope', status: 400, severity: 'warning' },
  no_signing_key: { text: 'No signing key for the algorithm', error: 'server_error', status: 500, severity: 'error' },
};

/** The policy the token tests apply, for a server whose issuer is `issuer`. */
export function tokenPolicy(issuer, { secrets, pkjwtJwk }) {
  return {
    systems: [
      {
        id: 'github',
        name: 'GitHub MCP',
        audience: GITHUB_AUD,
        resource_urls: [GITHUB_RESOURCE],
        scopes: [
          { name: 'repo:read', enabled: true, classification: 'read' },
          { name: 'repo:write', enabled: false, classification: 'write' },
        ],
        paused: false,
        signing_alg: 'inherit',
        max_lifetime: '300s',
        token_type: 'id-jag',
      },
      {
        id: 'docs',
        name: 'Docs MCP',
        audience: issuer,
        resource_urls: [`${issuer}/mcp/docs`],
        scopes: [
          { name: 'docs:read', enabled: true, classification: 'read' },
          { name: 'docs:write', enabled: true, classification: 'write' },
        ],
        token_type: 'access_token',
      },
    ],
    clients: [
      {
        id: 'desktop-agent',
        name: 'Desktop agent',
        auth: 'client_secret_basic',
        secret: secrets['desktop-agent'],
        redirect_uris: ['http://127.0.0.1/callback'],
        grant_types: [TE, JB],
      },
      {
        // a second user-facing agent: its ID-JAGs carry client_id laptop-agent
        id: 'laptop-agent',
        name: 'Laptop agent',
        auth: 'client_secret_basic',
        secret: secrets['laptop-agent'],
        grant_types: [TE, JB],
      },
      {
        // desktop-agent's registration for the IdP leg (token exchange) where a client can
        // only send its secret in the form (the MCP SDK's requestJwtAuthorizationGrant); its
        // ID-JAGs for docs name desktop-agent (access policy client_id_at_system)
        id: 'desktop-agent-idp',
        name: 'Desktop agent (IdP leg)',
        auth: 'client_secret_post',
        secret: secrets['desktop-agent-idp'],
        grant_types: [TE],
      },
      { id: 'build-bot', name: 'Build bot', auth: 'client_secret_post', secret: secrets['build-bot'], grant_types: [CC] },
      { id: 'pkjwt-bot', name: 'Key-holding bot', auth: 'private_key_jwt', jwks: { keys: [pkjwtJwk] }, grant_types: [CC] },
    ],
    access_policies: [
      { id: 'desktop-github', client: 'desktop-agent', system: 'github', active: true },
      { id: 'desktop-docs', client: 'desktop-agent', system: 'docs', active: true },
      { id: 'laptop-docs', client: 'laptop-agent', system: 'docs', active: true },
      { id: 'desktop-idp-docs', client: 'desktop-agent-idp', system: 'docs', active: true, client_id_at_system: 'desktop-agent' },
      { id: 'bot-docs', client: 'build-bot', system: 'docs', active: true },
      { id: 'pkjwt-docs', client: 'pkjwt-bot', system: 'docs', active: true },
    ],
    grants: [
      { subject: `user:${ALICE}`, system: 'github', scopes: ['repo:read', 'repo:write'] },
      { subject: 'group:engineering', system: 'docs', scopes: ['docs:read'] },
      { subject: 'client:build-bot', system: 'docs', scopes: ['docs:read'] },
      { subject: 'client:pkjwt-bot', system: 'docs', scopes: ['docs:read'] },
    ],
  };
}

/**
 * Starts a server (lib/server.mjs) and applies tokenPolicy for its issuer.
 * Returns {srv, issuer, docsResource, secrets, pkjwt: {privateKey, publicJwk, kid}, metadata}.
 */
export async function startTokenServer(opts = {}) {
  const srv = await startServer(opts);
  try {
    return await applyTokenPolicy(srv);
  } catch (err) {
    await srv.close();
    throw err;
  }
}

export async function applyTokenPolicy(srv) {
  const issuer = srv.url;
  const secrets = {
    'desktop-agent': `desktop-secret-${crypto.randomUUID()}`,
    'laptop-agent': `laptop-secret-${crypto.randomUUID()}`,
    'desktop-agent-idp': `desktop-idp-secret-${crypto.randomUUID()}`,
    'build-bot': `bot-secret-${crypto.randomUUID()}`,
  };
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const kid = `pkjwt-${crypto.randomUUID().slice(0, 8)}`;
  const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  ok(await srv.api('POST', '/api/v1/apply', tokenPolicy(issuer, { secrets, pkjwtJwk: publicJwk })));
  return {
    srv,
    issuer,
    tokenEndpoint: `${issuer}/oauth/token`,
    jwksUri: `${issuer}/oauth/jwks`,
    docsResource: `${issuer}/mcp/docs`,
    secrets,
    pkjwt: { privateKey, publicJwk, kid },
  };
}

/** An ID token of the development IdP (--dev), from POST /api/v1/dev/id-token. */
export async function devIdToken(srv, user, groups, ttl) {
  const body = { user };
  if (groups) body.groups = groups;
  if (ttl !== undefined) body.ttl = ttl;
  const j = ok(await srv.api('POST', '/api/v1/dev/id-token', body));
  assert.equal(typeof j.id_token, 'string', JSON.stringify(j));
  return j.id_token;
}

/**
 * A raw POST to an /oauth/* endpoint. params: an object (form-encoded, values in
 * order) or a string sent as is. opts.basic: [id, secret] for client_secret_basic;
 * opts.post: [id, secret] added to the form; opts.contentType (default the form
 * type; null sends none); opts.headers.
 */
export function oauthPost(srv, path, params, opts = {}) {
  const body = typeof params === 'string' || Buffer.isBuffer(params) ? params : form(params, opts.post);
  const headers = {};
  const ct = opts.contentType === undefined ? 'application/x-www-form-urlencoded' : opts.contentType;
  if (ct !== null) headers['content-type'] = ct;
  if (opts.basic) headers.authorization = basicAuth(...opts.basic);
  Object.assign(headers, opts.headers || {});
  return request(srv.url + path, { method: 'POST', headers, body });
}

export const tokenRequest = (srv, params, opts) => oauthPost(srv, '/oauth/token', params, opts);

function form(params, post) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) p.append(k, v);
  if (post) {
    p.append('client_id', post[0]);
    p.append('client_secret', post[1]);
  }
  return p.toString();
}

/** RFC 6749 §2.3.1: Basic base64(urlencode(id):urlencode(secret)). */
export function basicAuth(id, secret) {
  const enc = (s) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

/**
 * An OAuth error answer of the token endpoint for `reason` (a row of DECISION):
 * the status, a JSON body {error, error_description}, the description starting
 * with the reason's status text. `detail`: a string the description must contain
 * after the text, or a RegExp it must match.
 */
export function assertOAuthError(r, reason, detail) {
  const row = DECISION[reason];
  assert.ok(row, `unknown reason ${reason}`);
  const where = `answer: ${r.status} ${r.text}`;
  assert.equal(r.status, row.status, where);
  assert.match(r.headers['content-type'] || '', /^application\/json\b/, where);
  assert.ok(r.json && typeof r.json === 'object', `not JSON: ${where}`);
  assert.equal(r.json.error, row.error, where);
  assert.equal(typeof r.json.error_description, 'string', where);
  assert.ok(r.json.error_description.startsWith(row.text), `error_description should start with "${row.text}": ${where}`);
  if (typeof detail === 'string') assert.ok(r.json.error_description.includes(detail), `error_description should mention ${JSON.stringify(detail)}: ${where}`);
  else if (detail instanceof RegExp) assert.match(r.json.error_description, detail, where);
  assert.equal(r.json.access_token, undefined, where);
}

/** Header and payload of a compact JWS, without verifying anything. */
export function decode(token) {
  return { header: jose.decodeProtectedHeader(token), payload: jose.decodeJwt(token) };
}

export const sha256hex = (s) => crypto.createHash('sha256').update(s).digest('hex');
