// The token endpoint with real, independent clients: openid-client (RFC 8414
// discovery, token exchange, JWT bearer, client credentials with a secret and
// with private_key_jwt, introspection, revocation) and jose as the resource
// server's verifier. Then the bad-input table of spec/policy.md step 1 and 4,
// each answer checked for its exact status, OAuth error and status text.
//
// Every test starts its own server (a free port, a fresh data dir, the issuer
// http://127.0.0.1:PORT) and applies lib/oauth.mjs's policy for that issuer.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';

import * as jose from 'jose';
import * as oc from 'openid-client';

import { assertFields, ok } from './lib/check.mjs';
import {
  ALICE,
  CC,
  GITHUB_AUD,
  GITHUB_RESOURCE,
  ID_JAG_PROFILE,
  JB,
  TE,
  TT_ACCESS,
  TT_ID_JAG,
  TT_ID_TOKEN,
  assertOAuthError,
  decode,
  devIdToken,
  oauthPost,
  startTokenServer,
  tokenRequest,
} from './lib/oauth.mjs';
import { assertCleanExit, logServersOnFailure, request } from './lib/server.mjs';

logServersOnFailure();

const RFC9068_CLAIMS = ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'];
const ID_JAG_CLAIMS = ['exp', 'iat', 'jti', 'sub', 'client_id'];

/** A server with the token policy applied; closed (and checked for a clean exit) after the test. */
async function setup(t) {
  const env = await startTokenServer();
  t.after(async () => assertCleanExit(assert, await env.srv.close()));
  env.jwks = jose.createRemoteJWKSet(new URL(env.jwksUri));
  return env;
}

/** openid-client's view of mcpauth for one client (RFC 8414 discovery, plain http allowed). */
function discover(env, clientId, auth) {
  return oc.discovery(new URL(env.issuer), clientId, undefined, auth, { algorithm: 'oauth2', execute: [oc.allowInsecureRequests] });
}

const desktop = (env) => discover(env, 'desktop-agent', oc.ClientSecretBasic(env.secrets['desktop-agent']));
const laptop = (env) => discover(env, 'laptop-agent', oc.ClientSecretBasic(env.secrets['laptop-agent']));

/** Token exchange of `idToken` for an ID-JAG (RFC 8693 + ID-JAG profile) through openid-client. */
function idJag(config, idToken, { audience, resource, scope }) {
  const params = { requested_token_type: TT_ID_JAG, audience, resource, subject_token: idToken, subject_token_type: TT_ID_TOKEN };
  if (scope !== undefined) params.scope = scope;
  return oc.genericGrantRequest(config, TE, params);
}

/** Verifies an RFC 9068 access token of mcpauth as a resource server would. Returns the payload. */
async function verifyAccessToken(env, token, audience) {
  const { payload, protectedHeader } = await jose.jwtVerify(token, env.jwks, {
    issuer: env.issuer,
    audience,
    typ: 'at+jwt',
    algorithms: ['ES256'],
    requiredClaims: RFC9068_CLAIMS,
  });
  assert.equal(protectedHeader.typ, 'at+jwt');
  assert.equal(typeof protectedHeader.kid, 'string');
  assert.equal(payload.aud, audience, 'aud is the one resource, as a string');
  assert.ok(payload.exp > payload.iat, JSON.stringify(payload));
  assert.ok(Math.abs(payload.iat - Date.now() / 1000) < 120, `iat is now: ${payload.iat}`);
  assert.equal(payload.exp - payload.iat, 300, 'lifetime: the default 300 s');
  return payload;
}

/** Asserts a promise rejects with openid-client's ResponseBodyError for this OAuth error and status. */
async function rejectsOAuth(promise, error, status, descriptionStart) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof oc.ResponseBodyError, `expected a ResponseBodyError, got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.error, error, `${err.error}: ${err.error_description}`);
    assert.equal(err.status, status, `${err.status}: ${err.error_description}`);
    if (descriptionStart) assert.ok(err.error_description?.startsWith(descriptionStart), `error_description should start with "${descriptionStart}": ${err.error_description}`);
    return true;
  });
}

/** The two RFC 8414 documents (RFC 8414 path and the OIDC path); they must be the same. */
async function metadataDocs(env) {
  const docs = [];
  for (const p of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
    const r = await request(env.issuer + p);
    assert.equal(r.status, 200, `${p}: ${r.status} ${r.text}`);
    assert.match(r.headers['content-type'] || '', /^application\/json\b/, p);
    docs.push([p, r.json]);
  }
  assert.deepEqual(docs[0][1], docs[1][1], 'the two documents are the same');
  return docs;
}

test('RFC 8414 metadata at both well-known paths', async (t) => {
  const env = await setup(t);
  for (const [p, m] of await metadataDocs(env)) {
    assertFields(m, {
      issuer: env.issuer,
      token_endpoint: `${env.issuer}/oauth/token`,
      jwks_uri: `${env.issuer}/oauth/jwks`,
      introspection_endpoint: `${env.issuer}/oauth/introspect`,
      revocation_endpoint: `${env.issuer}/oauth/revoke`,
      authorization_grant_profiles_supported: [ID_JAG_PROFILE],
    }, p);
    for (const gt of [TE, JB, CC]) assert.ok(m.grant_types_supported?.includes(gt), `${p}: grant_types_supported lacks ${gt}: ${JSON.stringify(m.grant_types_supported)}`);
    for (const am of ['client_secret_basic', 'client_secret_post', 'private_key_jwt']) {
      assert.ok(m.token_endpoint_auth_methods_supported?.includes(am), `${p}: token_endpoint_auth_methods_supported lacks ${am}`);
    }
    assert.ok(m.token_endpoint_auth_signing_alg_values_supported?.includes('ES256'), p);
  }

  // openid-client's discovery accepts it (it checks issuer == the URL it was built from).
  const config = await desktop(env);
  assert.equal(config.serverMetadata().issuer, env.issuer);
  assert.equal(config.serverMetadata().token_endpoint, env.tokenEndpoint);
  // And the JWKS it names holds the active signing key, public only.
  const jwks = ok(await request(env.jwksUri));
  assert.ok(jwks.keys.length >= 1);
  for (const k of jwks.keys) {
    assertFields(k, { use: 'sig' });
    assert.equal(typeof k.kid, 'string');
    assert.equal(typeof k.alg, 'string');
    assert.equal(k.d, undefined, 'no private part');
  }
});

// spec/http-api.md: the metadata "lists grant_types_supported (token exchange, jwt-bearer,
// client_credentials, authorization_code) ... code_challenge_methods_supported: ["S256"]".
test('RFC 8414 metadata lists code_challenge_methods_supported ["S256"] and the authorization_code grant (spec/http-api.md)', async (t) => {
  const env = await setup(t);
  for (const [p, m] of await metadataDocs(env)) {
    assert.deepEqual(m.code_challenge_methods_supported, ['S256'], p);
    assert.ok(m.grant_types_supported?.includes('authorization_code'), `${p}: ${JSON.stringify(m.grant_types_supported)}`);
    assert.ok(m.response_types_supported?.includes('code'), `${p}: ${JSON.stringify(m.response_types_supported)}`);
    assert.equal(m.authorization_endpoint, `${env.issuer}/oauth/authorize`, p);
  }
});

test('openid-client token exchange: an ID-JAG for github, verified with jose against the JWKS', async (t) => {
  const env = await setup(t);
  const config = await desktop(env);
  const idToken = await devIdToken(env.srv, ALICE, ['engineering']);
  const res = await idJag(config, idToken, { audience: GITHUB_AUD, resource: GITHUB_RESOURCE, scope: 'repo:read' });
  assert.equal(res.issued_token_type, TT_ID_JAG);
  assert.equal(res.token_type, 'n_a', 'token_type N_A (openid-client lowercases it)');
  assert.equal(res.expires_in, 300);
  assert.equal(res.scope, 'repo:read');
  assert.equal(res.refresh_token, undefined);

  const { payload, protectedHeader } = await jose.jwtVerify(res.access_token, env.jwks, {
    issuer: env.issuer,
    audience: GITHUB_AUD,
    typ: 'oauth-id-jag+jwt',
    algorithms: ['ES256'],
    requiredClaims: ID_JAG_CLAIMS,
  });
  assert.equal(protectedHeader.typ, 'oauth-id-jag+jwt');
  assert.equal(protectedHeader.alg, 'ES256');
  assert.equal(typeof protectedHeader.kid, 'string');
  assertFields(payload, {
    iss: env.issuer,
    sub: ALICE,
    aud: GITHUB_AUD,
    client_id: 'desktop-agent',
    resource: GITHUB_RESOURCE,
    scope: 'repo:read',
  }, 'ID-JAG');
  assert.equal(payload.exp - payload.iat, 300);
  assert.match(payload.jti, /^[0-9a-f-]{36}$/);

  // Two exchanges give two different ID-JAGs.
  const again = await idJag(config, idToken, { audience: GITHUB_AUD, resource: GITHUB_RESOURCE, scope: 'repo:read' });
  assert.notEqual(decode(again.access_token).payload.jti, payload.jti);
});

test('token exchange straight to an RFC 9068 access token for docs (audience = this issuer)', async (t) => {
  const env = await setup(t);
  const config = await desktop(env);
  const idToken = await devIdToken(env.srv, 'bob@example.com', ['engineering']);
  const res = await oc.genericGrantRequest(config, TE, {
    requested_token_type: TT_ACCESS,
    audience: env.issuer,
    resource: env.docsResource,
    scope: 'docs:read',
    subject_token: idToken,
    subject_token_type: TT_ID_TOKEN,
  });
  assert.equal(res.issued_token_type, TT_ACCESS);
  assert.equal(res.token_type, 'bearer');
  assert.equal(res.scope, 'docs:read');
  const payload = await verifyAccessToken(env, res.access_token, env.docsResource);
  assertFields(payload, { iss: env.issuer, sub: 'bob@example.com', client_id: 'desktop-agent', scope: 'docs:read' }, 'access token');

  // An ID-JAG is not an access token: jose refuses it as at+jwt.
  const jag = await idJag(config, idToken, { audience: env.issuer, resource: env.docsResource, scope: 'docs:read' });
  await assert.rejects(jose.jwtVerify(jag.access_token, env.jwks, { issuer: env.issuer, typ: 'at+jwt' }), /typ/);
});

test('JWT bearer with openid-client: the ID-JAG is exchanged once, for the intersection of scopes', async (t) => {
  const env = await setup(t);
  const config = await desktop(env);
  const idToken = await devIdToken(env.srv, 'carol@example.com', ['engineering']);
  const jag = await idJag(config, idToken, { audience: env.issuer, resource: env.docsResource, scope: 'docs:read' });
  const jagClaims = decode(jag.access_token).payload;
  assertFields(jagClaims, { aud: env.issuer, client_id: 'desktop-agent', resource: env.docsResource, scope: 'docs:read' }, 'ID-JAG');

  const at = await oc.genericGrantRequest(config, JB, { assertion: jag.access_token, resource: env.docsResource });
  assert.equal(at.token_type, 'bearer');
  assert.equal(at.expires_in, 300);
  assert.equal(at.scope, 'docs:read');
  assert.equal(at.refresh_token, undefined, 'no refresh token');
  const payload = await verifyAccessToken(env, at.access_token, env.docsResource);
  assertFields(payload, { sub: 'carol@example.com', client_id: 'desktop-agent', scope: 'docs:read' }, 'access token');
  assert.notEqual(payload.jti, jagClaims.jti, 'the access token has its own jti');

  // The same assertion again: a replay.
  await rejectsOAuth(oc.genericGrantRequest(config, JB, { assertion: jag.access_token, resource: env.docsResource }), 'invalid_grant', 400, 'Subject token rejected');

  // Scope intersection: asking for more than the assertion carries gets what it carries.
  const jag2 = await idJag(config, idToken, { audience: env.issuer, resource: env.docsResource, scope: 'docs:read' });
  const at2 = await oc.genericGrantRequest(config, JB, { assertion: jag2.access_token, resource: env.docsResource, scope: 'docs:read docs:write' });
  assert.equal(at2.scope, 'docs:read');
  assert.equal((await verifyAccessToken(env, at2.access_token, env.docsResource)).scope, 'docs:read');

  // Without a resource parameter the assertion's resource is the audience of the token.
  const jag3 = await idJag(config, idToken, { audience: env.issuer, resource: env.docsResource, scope: 'docs:read' });
  const at3 = await oc.genericGrantRequest(config, JB, { assertion: jag3.access_token });
  await verifyAccessToken(env, at3.access_token, env.docsResource);
});

test('JWT bearer refuses assertions that are not for this client or not from a trusted issuer', async (t) => {
  const env = await setup(t);
  const config = await desktop(env);
  const idToken = await devIdToken(env.srv, 'dave@example.com', ['engineering']);

  // An ID-JAG issued to laptop-agent (client_id laptop-agent), presented by desktop-agent.
  const other = await idJag(await laptop(env), idToken, { audience: env.issuer, resource: env.docsResource, scope: 'docs:read' });
  assert.equal(decode(other.access_token).payload.client_id, 'laptop-agent');
  await rejectsOAuth(oc.genericGrantRequest(config, JB, { assertion: other.access_token, resource: env.docsResource }), 'invalid_grant', 400, 'Subject token rejected');
  // laptop-agent itself may use it (so the refusal above was about the client).
  const own = await oc.genericGrantRequest(await laptop(env), JB, { assertion: other.access_token, resource: env.docsResource });
  assert.equal((await verifyAccessToken(env, own.access_token, env.docsResource)).client_id, 'laptop-agent');

  // An ID-JAG for another authorization server (github's audience) is not for this one.
  const forGithub = await idJag(config, await devIdToken(env.srv, ALICE), { audience: GITHUB_AUD, resource: GITHUB_RESOURCE, scope: 'repo:read' });
  await rejectsOAuth(oc.genericGrantRequest(config, JB, { assertion: forGithub.access_token }), 'invalid_grant', 400, 'Subject token rejected');

  // ID-JAGs the test mints with its own key: all well formed, none trusted.
  const { privateKey } = await jose.generateKeyPair('ES256');
  const mint = (iss, kid) =>
    new jose.SignJWT({ client_id: 'desktop-agent', resource: env.docsResource, scope: 'docs:read' })
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'oauth-id-jag+jwt' })
      .setIssuer(iss)
      .setSubject('mallory@example.com')
      .setAudience(env.issuer)
      .setIssuedAt()
      .setExpirationTime('5m')
      .setJti(crypto.randomUUID())
      .sign(privateKey);
  const ownKid = decode((await idJag(config, idToken, { audience: env.issuer, resource: env.docsResource, scope: 'docs:read' })).access_token).header.kid;
  for (const forged of [
    await mint('https://untrusted-idp.example', 'k1'), // an issuer nobody trusts
    await mint(env.issuer, 'forged-kid'), // claims to be mcpauth, with a key mcpauth does not have
    await mint(env.issuer, ownKid), // claims mcpauth's own kid, signed with another key
  ]) {
    await rejectsOAuth(oc.genericGrantRequest(config, JB, { assertion: forged, resource: env.docsResource }), 'invalid_grant', 400, 'Subject token rejected');
  }
  // A raw request shows the full answer.
  const r = await tokenRequest(env.srv, { grant_type: JB, assertion: await mint('https://untrusted-idp.example', 'k1') }, { basic: ['desktop-agent', env.secrets['desktop-agent']] });
  assertOAuthError(r, 'invalid_subject_token', /not trusted/);
});

test('client credentials with openid-client: client_secret_post and private_key_jwt', async (t) => {
  const env = await setup(t);
  const bot = await discover(env, 'build-bot', oc.ClientSecretPost(env.secrets['build-bot']));
  const res = await oc.clientCredentialsGrant(bot, { resource: env.docsResource, scope: 'docs:read' });
  assert.equal(res.token_type, 'bearer');
  assert.equal(res.scope, 'docs:read');
  assertFields(await verifyAccessToken(env, res.access_token, env.docsResource), { sub: 'build-bot', client_id: 'build-bot', scope: 'docs:read' }, 'build-bot token');

  // private_key_jwt: openid-client signs the client assertion (aud = the issuer) with the test's key.
  const pk = await discover(env, 'pkjwt-bot', oc.PrivateKeyJwt({ key: env.pkjwt.privateKey, kid: env.pkjwt.kid }));
  const res2 = await oc.clientCredentialsGrant(pk, { resource: env.docsResource, scope: 'docs:read' });
  assertFields(await verifyAccessToken(env, res2.access_token, env.docsResource), { sub: 'pkjwt-bot', client_id: 'pkjwt-bot', scope: 'docs:read' }, 'pkjwt-bot token');
  // Without a kid in the assertion's header the client's only key is found too.
  const pkNoKid = await discover(env, 'pkjwt-bot', oc.PrivateKeyJwt(env.pkjwt.privateKey));
  await oc.clientCredentialsGrant(pkNoKid, { resource: env.docsResource, scope: 'docs:read' });
  // Another key under the registered kid is not the client.
  const { privateKey: wrongKey } = await jose.generateKeyPair('ES256');
  const pkWrong = await discover(env, 'pkjwt-bot', oc.PrivateKeyJwt({ key: wrongKey, kid: env.pkjwt.kid }));
  await rejectsOAuth(oc.clientCredentialsGrant(pkWrong, { resource: env.docsResource, scope: 'docs:read' }), 'invalid_client', 401, 'Client authentication failed');

  // A wrong secret sent in the form: 401 invalid_client, no challenge (no Authorization header was used).
  const badPost = await discover(env, 'build-bot', oc.ClientSecretPost('not-the-secret'));
  await rejectsOAuth(oc.clientCredentialsGrant(badPost, { resource: env.docsResource }), 'invalid_client', 401, 'Client authentication failed');
  const raw = await tokenRequest(env.srv, { grant_type: CC, resource: env.docsResource }, { post: ['build-bot', 'not-the-secret'] });
  assertOAuthError(raw, 'invalid_client');
  assert.equal(raw.headers['www-authenticate'], undefined, 'no WWW-Authenticate without an Authorization header');

  // A wrong secret with Basic: 401 invalid_client and a Basic challenge (RFC 6749 §5.2).
  for (const id of ['desktop-agent', 'build-bot']) {
    const rawBasic = await tokenRequest(env.srv, { grant_type: CC, resource: env.docsResource }, { basic: [id, 'not-the-secret'] });
    assertOAuthError(rawBasic, 'invalid_client');
    assert.match(rawBasic.headers['www-authenticate'] || '', /^Basic\b/i, `${id}: WWW-Authenticate names the Basic scheme`);
  }
  const badBasic = await discover(env, 'desktop-agent', oc.ClientSecretBasic('not-the-secret'));
  await assert.rejects(
    idJag(badBasic, await devIdToken(env.srv, ALICE), { audience: GITHUB_AUD, resource: GITHUB_RESOURCE, scope: 'repo:read' }),
    (err) => {
      // openid-client surfaces a 401 with a challenge as WWWAuthenticateChallengeError.
      assert.equal(err.status, 401, `${err.constructor.name}: ${err.message}`);
      assert.ok(err instanceof oc.WWWAuthenticateChallengeError, err.constructor.name);
      assert.equal(err.cause?.[0]?.scheme, 'basic', JSON.stringify(err.cause));
      return true;
    },
  );
});

test('a partial grant: repo:read repo:write gives a token for repo:read only', async (t) => {
  const env = await setup(t);
  const config = await desktop(env);
  const res = await idJag(config, await devIdToken(env.srv, ALICE), { audience: GITHUB_AUD, resource: GITHUB_RESOURCE, scope: 'repo:read repo:write' });
  assert.equal(res.scope, 'repo:read');
  const { payload } = await jose.jwtVerify(res.access_token, env.jwks, { issuer: env.issuer, audience: GITHUB_AUD, typ: 'oauth-id-jag+jwt', requiredClaims: ID_JAG_CLAIMS });
  assert.equal(payload.scope, 'repo:read');

  // Without a scope: every enabled scope alice holds.
  const all = await idJag(config, await devIdToken(env.srv, ALICE), { audience: GITHUB_AUD, resource: GITHUB_RESOURCE });
  assert.equal(all.scope, 'repo:read');
});

test('introspection and revocation with openid-client; a revocation survives a restart', async (t) => {
  const env = await setup(t);
  let config = await desktop(env);
  const idToken = await devIdToken(env.srv, 'erin@example.com', ['engineering']);
  const issue = async () => {
    const j = await idJag(config, idToken, { audience: env.issuer, resource: env.docsResource, scope: 'docs:read' });
    return (await oc.genericGrantRequest(config, JB, { assertion: j.access_token, resource: env.docsResource })).access_token;
  };
  const revoked = await issue();
  const kept = await issue();
  const claims = decode(revoked).payload;

  const info = await oc.tokenIntrospection(config, revoked);
  assertFields(info, {
    active: true,
    iss: env.issuer,
    sub: 'erin@example.com',
    aud: env.docsResource,
    client_id: 'desktop-agent',
    scope: 'docs:read',
    jti: claims.jti,
    exp: claims.exp,
    iat: claims.iat,
    token_type: 'Bearer',
  }, 'introspection');

  // Tokens mcpauth did not issue are simply inactive.
  assert.deepEqual(await oc.tokenIntrospection(config, 'not-a-token'), { active: false });
  assert.deepEqual(await oc.tokenIntrospection(config, idToken), { active: false }, 'the dev IdP ID token is not an mcpauth token');

  await oc.tokenRevocation(config, revoked, { token_type_hint: 'access_token' });
  assert.deepEqual(await oc.tokenIntrospection(config, revoked), { active: false });
  assert.equal((await oc.tokenIntrospection(config, kept)).active, true, 'revoking one token leaves the others');
  // RFC 7009 §2.2: an unknown token is no error; revoking twice neither.
  await oc.tokenRevocation(config, 'not-a-token');
  await oc.tokenRevocation(config, revoked);

  // Introspection requires client authentication.
  const anon = await oauthPost(env.srv, '/oauth/introspect', { token: kept });
  assert.equal(anon.status, 401, anon.text);
  assert.equal(anon.json?.error, 'invalid_client', anon.text);
  const wrong = await oauthPost(env.srv, '/oauth/introspect', { token: kept }, { basic: ['desktop-agent', 'wrong'] });
  assert.equal(wrong.status, 401, wrong.text);
  assert.match(wrong.headers['www-authenticate'] || '', /^Basic\b/i);

  assertCleanExit(assert, await env.srv.restart());
  config = await desktop(env);
  assert.deepEqual(await oc.tokenIntrospection(config, revoked), { active: false }, 'the revocation was lost in the restart');
  assert.equal((await oc.tokenIntrospection(config, kept)).active, true, 'an unrevoked token stays active across a restart');
});

/** Registers a trusted issuer of the test's own (an inline ES256 JWKS) and returns a minting function. */
async function testIdp(env, { issuer = 'https://idp.e2e.example', id = 'e2e-idp' } = {}) {
  const { privateKey, publicKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const kid = `${id}-1`;
  ok(
    await env.srv.api('POST', '/api/v1/trusted-issuers', {
      id,
      issuer,
      jwks: { keys: [{ ...(await jose.exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] },
      audience: env.issuer,
      algorithms: ['ES256'],
    }),
    201,
  );
  const now = Math.floor(Date.now() / 1000);
  /** Signs claims (defaults: a valid ID token for alice) with the issuer's key; header members override. */
  const mint = ({ header = {}, claims = {}, key = privateKey } = {}) =>
    new jose.SignJWT({ iss: issuer, sub: ALICE, aud: env.issuer, iat: now, exp: now + 300, jti: crypto.randomUUID(), groups: ['engineering'], ...claims })
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT', ...header })
      .sign(key);
  return { issuer, kid, privateKey, mint, now };
}

test('JWT bearer accepts ID-JAGs of a trusted third-party IdP, and checks each claim', async (t) => {
  const env = await setup(t);
  const config = await desktop(env);
  const idp = await testIdp(env);
  const idJagOf = (claims = {}, header = {}) =>
    idp.mint({
      header: { typ: 'oauth-id-jag+jwt', ...header },
      claims: { sub: 'frank@example.com', client_id: 'desktop-agent', resource: env.docsResource, scope: 'docs:read docs:write', groups: undefined, ...claims },
    });

  // A valid one: the grant is what the assertion carries, the user its sub.
  const at = await oc.genericGrantRequest(config, JB, { assertion: await idJagOf(), resource: env.docsResource, scope: 'docs:write' });
  assert.equal(at.scope, 'docs:write');
  assertFields(await verifyAccessToken(env, at.access_token, env.docsResource), { sub: 'frank@example.com', client_id: 'desktop-agent', scope: 'docs:write' });
  // aud as a one-element array is the same audience.
  await oc.genericGrantRequest(config, JB, { assertion: await idJagOf({ aud: [env.issuer] }) });
  // The same jti from the same issuer is a replay even inside another token.
  const jti = crypto.randomUUID();
  await oc.genericGrantRequest(config, JB, { assertion: await idJagOf({ jti }) });
  await rejectsOAuth(oc.genericGrantRequest(config, JB, { assertion: await idJagOf({ jti }) }), 'invalid_grant', 400, 'Subject token rejected');

  const refused = [
    ['aud with two members', await idJagOf({ aud: [env.issuer, 'https://other-as.example'] })],
    ['aud another server', await idJagOf({ aud: 'https://other-as.example' })],
    ['typ JWT', await idJagOf({}, { typ: 'JWT' })],
    ['no typ', await idJagOf({}, { typ: undefined })],
    ['no jti', await idJagOf({ jti: undefined })],
    ['no sub', await idJagOf({ sub: undefined })],
    ['no client_id', await idJagOf({ client_id: undefined })],
    ['expired', await idJagOf({ iat: idp.now - 3600, exp: idp.now - 600 })],
    ['no exp', await idJagOf({ exp: undefined })],
  ];
  for (const [name, assertion] of refused) {
    const r = await tokenRequest(env.srv, { grant_type: JB, assertion, resource: env.docsResource }, { basic: ['desktop-agent', env.secrets['desktop-agent']] });
    await t.test(name, () => assertOAuthError(r, 'invalid_subject_token'));
  }
  // A resource parameter that is not the assertion's resource.
  const r = await tokenRequest(env.srv, { grant_type: JB, assertion: await idJagOf(), resource: `${env.issuer}/mcp/other` }, { basic: ['desktop-agent', env.secrets['desktop-agent']] });
  assertOAuthError(r, 'invalid_subject_token', 'resource');
});

// RFC 7515 §4.1.9: typ is a media type; "application/" may be left out and the
// comparison is case-insensitive (RFC 2045), as jose's own typ check does it.
test('an ID-JAG typed "application/oauth-id-jag+jwt" is an ID-JAG', async (t) => {
  const env = await setup(t);
  const config = await desktop(env);
  const idp = await testIdp(env);
  for (const typ of ['application/oauth-id-jag+jwt', 'OAuth-ID-JAG+JWT']) {
    const assertion = await idp.mint({
      header: { typ },
      claims: { client_id: 'desktop-agent', resource: env.docsResource, scope: 'docs:read', groups: undefined },
    });
    const at = await oc.genericGrantRequest(config, JB, { assertion });
    assert.equal(at.scope, 'docs:read', typ);
  }
});

test('a subject token typed "application/at+jwt" or "AT+JWT" is not an ID token', async (t) => {
  const env = await setup(t);
  const idp = await testIdp(env);
  const accepted = [];
  for (const typ of ['application/at+jwt', 'AT+JWT', 'application/oauth-id-jag+jwt']) {
    const r = await tokenRequest(
      env.srv,
      {
        grant_type: TE,
        requested_token_type: TT_ID_JAG,
        audience: GITHUB_AUD,
        resource: GITHUB_RESOURCE,
        scope: 'repo:read',
        subject_token: await idp.mint({ header: { typ } }),
        subject_token_type: TT_ID_TOKEN,
      },
      { basic: ['desktop-agent', env.secrets['desktop-agent']] },
    );
    if (r.status === 200) accepted.push(typ);
    else assertOAuthError(r, 'invalid_subject_token', /typ/);
  }
  assert.deepEqual(accepted, [], `subject tokens with these typ values were accepted as ID tokens: ${accepted.join(', ')}`);
});

test('private_key_jwt: a client assertion is good once, for this issuer, signed by the client', async (t) => {
  const env = await setup(t);
  const now = Math.floor(Date.now() / 1000);
  const assertion = (claims = {}, key = env.pkjwt.privateKey) =>
    new jose.SignJWT({ iss: 'pkjwt-bot', sub: 'pkjwt-bot', aud: env.issuer, iat: now, exp: now + 60, jti: crypto.randomUUID(), ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: env.pkjwt.kid, typ: 'JWT' })
      .sign(key);
  const cc = (a, extra = {}) =>
    tokenRequest(env.srv, {
      grant_type: CC,
      resource: env.docsResource,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: a,
      ...extra,
    });
  const once = await assertion();
  const first = await cc(once);
  assert.equal(first.status, 200, first.text);
  assertOAuthError(await cc(once), 'invalid_client');
  // client_id in the form, as openid-client sends it, names the same client.
  assert.equal((await cc(await assertion(), { client_id: 'pkjwt-bot' })).status, 200);
  assertOAuthError(await cc(await assertion({ aud: 'https://another-as.example' })), 'invalid_client');
  assertOAuthError(await cc(await assertion({ iss: 'build-bot', sub: 'build-bot' })), 'invalid_client');
  assertOAuthError(await cc(await assertion({ iat: now - 3600, exp: now - 600 })), 'invalid_client');
  assertOAuthError(await cc(await assertion({ jti: undefined })), 'invalid_client');
  const { privateKey: other } = await jose.generateKeyPair('ES256');
  assertOAuthError(await cc(await assertion({}, other)), 'invalid_client');
  // Two methods at once is a malformed request.
  assertOAuthError(await cc(await assertion(), { client_secret: 'x', client_id: 'pkjwt-bot' }), 'invalid_request');
});

test('which token a token exchange issues without requested_token_type: the system\'s token_type', async (t) => {
  const env = await setup(t);
  const config = await desktop(env);
  const idToken = await devIdToken(env.srv, ALICE, ['engineering']);
  const base = { subject_token: idToken, subject_token_type: TT_ID_TOKEN };
  const gh = await oc.genericGrantRequest(config, TE, { ...base, audience: GITHUB_AUD, resource: GITHUB_RESOURCE, scope: 'repo:read' });
  assert.equal(gh.issued_token_type, TT_ID_JAG);
  assert.equal(decode(gh.access_token).header.typ, 'oauth-id-jag+jwt');
  const docs = await oc.genericGrantRequest(config, TE, { ...base, audience: env.issuer, resource: env.docsResource, scope: 'docs:read' });
  assert.equal(docs.issued_token_type, TT_ACCESS);
  await verifyAccessToken(env, docs.access_token, env.docsResource);
});

test('an ID-JAG used once stays used after a restart (jti replay, spec/http-api.md "jti never seen before")', async (t) => {
  const env = await setup(t);
  let config = await desktop(env);
  const idToken = await devIdToken(env.srv, 'judy@example.com', ['engineering']);
  const jagRes = await idJag(config, idToken, { audience: env.issuer, resource: env.docsResource, scope: 'docs:read' });
  await oc.genericGrantRequest(config, JB, { assertion: jagRes.access_token });
  await rejectsOAuth(oc.genericGrantRequest(config, JB, { assertion: jagRes.access_token }), 'invalid_grant', 400, 'Subject token rejected');
  assertCleanExit(assert, await env.srv.restart());
  config = await desktop(env);
  // Still inside the ID-JAG's 300 s lifetime: still a replay.
  await rejectsOAuth(oc.genericGrantRequest(config, JB, { assertion: jagRes.access_token }), 'invalid_grant', 400, 'Subject token rejected');
});

test('a private_key_jwt client assertion used once stays used after a restart', async (t) => {
  const env = await setup(t);
  const now = Math.floor(Date.now() / 1000);
  const assertion = await new jose.SignJWT({ iss: 'pkjwt-bot', sub: 'pkjwt-bot', aud: env.issuer, iat: now, exp: now + 120, jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: 'ES256', kid: env.pkjwt.kid })
    .sign(env.pkjwt.privateKey);
  const cc = () =>
    tokenRequest(env.srv, { grant_type: CC, resource: env.docsResource, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion });
  assert.equal((await cc()).status, 200);
  assertOAuthError(await cc(), 'invalid_client');
  assertCleanExit(assert, await env.srv.restart());
  assertOAuthError(await cc(), 'invalid_client');
});

test('the same ID-JAG sent 20 times at once is exchanged exactly once', async (t) => {
  const env = await setup(t);
  const config = await desktop(env);
  const jagRes = await idJag(config, await devIdToken(env.srv, 'kim@example.com', ['engineering']), { audience: env.issuer, resource: env.docsResource, scope: 'docs:read' });
  const answers = await Promise.all(
    Array.from({ length: 20 }, () => tokenRequest(env.srv, { grant_type: JB, assertion: jagRes.access_token }, { basic: ['desktop-agent', env.secrets['desktop-agent']] })),
  );
  const granted = answers.filter((r) => r.status === 200);
  assert.equal(granted.length, 1, answers.map((r) => r.status).join(','));
  for (const r of answers.filter((x) => x.status !== 200)) assertOAuthError(r, 'invalid_subject_token', /replay|used before/);
});

test('lifetime: the smaller of the system\'s max_lifetime and the default', async (t) => {
  const env = await setup(t);
  const config = await desktop(env);
  ok(await env.srv.api('PATCH', '/api/v1/systems/github', { max_lifetime: '120s' }));
  const res = await idJag(config, await devIdToken(env.srv, ALICE), { audience: GITHUB_AUD, resource: GITHUB_RESOURCE, scope: 'repo:read' });
  assert.equal(res.expires_in, 120);
  const { payload } = decode(res.access_token);
  assert.equal(payload.exp - payload.iat, 120);
  ok(await env.srv.api('PATCH', '/api/v1/settings', { default_lifetime: '60s' }));
  const res2 = await idJag(config, await devIdToken(env.srv, ALICE), { audience: GITHUB_AUD, resource: GITHUB_RESOURCE, scope: 'repo:read' });
  assert.equal(res2.expires_in, 60);
  const bot = await discover(env, 'build-bot', oc.ClientSecretPost(env.secrets['build-bot']));
  const cc = await oc.clientCredentialsGrant(bot, { resource: env.docsResource });
  assert.equal(cc.expires_in, 60, 'docs has no max_lifetime: the default');
  const p = decode(cc.access_token).payload;
  assert.equal(p.exp - p.iat, 60);
});

test('a revoked ID-JAG is not exchanged by the JWT bearer grant (RFC 7009: a revoked token is no longer usable)', async (t) => {
  const env = await setup(t);
  const config = await desktop(env);
  const jagRes = await idJag(config, await devIdToken(env.srv, 'liam@example.com', ['engineering']), { audience: env.issuer, resource: env.docsResource, scope: 'docs:read' });
  await oc.tokenRevocation(config, jagRes.access_token);
  assert.deepEqual(await oc.tokenIntrospection(config, jagRes.access_token), { active: false }, 'introspection knows it is revoked');
  await rejectsOAuth(oc.genericGrantRequest(config, JB, { assertion: jagRes.access_token }), 'invalid_grant', 400, 'Subject token rejected');
});

/* ---------------------------------------------------------------------------------------------
 * Bad input: spec/policy.md steps 1 (request well formed) and 4 (subject token valid).
 * --------------------------------------------------------------------------------------------- */

test('bad input: each refusal has the status, OAuth error and status text of the decision table', async (t) => {
  const env = await setup(t);
  const { srv, issuer } = env;
  const basic = ['desktop-agent', env.secrets['desktop-agent']];

  // A trusted issuer of the test's own, so the test can mint subject tokens of every kind.
  const { issuer: idpIssuer, kid, mint, now } = await testIdp(env);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const exchange = (subjectToken, extra = {}) => ({
    grant_type: TE,
    requested_token_type: TT_ID_JAG,
    audience: GITHUB_AUD,
    resource: GITHUB_RESOURCE,
    scope: 'repo:read',
    subject_token: subjectToken,
    subject_token_type: TT_ID_TOKEN,
    ...extra,
  });

  // Control: a token of the test's issuer, minted right, is accepted.
  const good = await tokenRequest(srv, exchange(await mint()), { basic });
  assert.equal(good.status, 200, good.text);
  assert.equal(good.json.scope, 'repo:read');
  assert.match(good.headers['cache-control'] || '', /no-store/, 'token responses are not cached');

  const hs256 = await new jose.SignJWT({ iss: idpIssuer, sub: ALICE, aud: issuer, iat: now, exp: now + 300 })
    .setProtectedHeader({ alg: 'HS256', kid, typ: 'JWT' })
    .sign(new TextEncoder().encode('a-shared-secret-the-attacker-chose-32b'));
  const { privateKey: strangerKey } = await jose.generateKeyPair('ES256');
  // form-encodes an object, leaving out undefined members
  const params = (o) => new URLSearchParams(Object.entries(o).filter(([, v]) => v !== undefined)).toString();

  const cases = [
    ['missing grant_type', params({ scope: 'repo:read', resource: GITHUB_RESOURCE }), {}, 'invalid_request', /grant_type/],
    ['empty grant_type', params({ grant_type: '' }), {}, 'invalid_request', /grant_type/],
    ['repeated parameter', `${params(exchange(await mint()))}&scope=repo%3Aread`, {}, 'invalid_request', /scope.*repeated|repeated.*scope/],
    ['unsupported grant type password', params({ grant_type: 'password', username: 'alice', password: 'x' }), {}, 'unsupported_grant_type', 'password'],
    ['JSON instead of a form', JSON.stringify(exchange(await mint())), { contentType: 'application/json' }, 'invalid_request', /Content-Type/],
    ['no Content-Type', params(exchange(await mint())), { contentType: null }, 'invalid_request', /Content-Type/],
    ['bad percent-encoding', 'grant_type=client_credentials&scope=%zz', {}, 'invalid_request'],
    ['subject_token_type missing', params({ ...exchange(await mint()), subject_token_type: undefined }), {}, 'invalid_request', /subject_token/],
    ['subject_token not a JWT', params(exchange('this-is-not-a-jwt')), {}, 'invalid_subject_token'],
    ['subject_token with alg none', params(exchange(`${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: idpIssuer, sub: ALICE, aud: issuer, iat: now, exp: now + 300 })}.`)), {}, 'invalid_subject_token'],
    ['subject_token HS256 (symmetric, not allowed)', params(exchange(hs256)), {}, 'invalid_subject_token'],
    ['subject_token expired', params(exchange(await mint({ claims: { iat: now - 3600, exp: now - 600 } }))), {}, 'invalid_subject_token', /expired/],
    ['subject_token issued in the future', params(exchange(await mint({ claims: { iat: now + 3600, exp: now + 7200 } }))), {}, 'invalid_subject_token', /iat|future/],
    ['subject_token for another audience', params(exchange(await mint({ claims: { aud: 'https://someone-else.example' } }))), {}, 'invalid_subject_token', /aud/],
    ['subject_token with an unknown kid', params(exchange(await mint({ header: { kid: 'no-such-kid' } }))), {}, 'invalid_subject_token', /kid/],
    ['subject_token signed by another key', params(exchange(await mint({ key: strangerKey }))), {}, 'invalid_subject_token', /signature/],
    ['subject_token with typ at+jwt', params(exchange(await mint({ header: { typ: 'at+jwt' } }))), {}, 'invalid_subject_token', /typ/],
    ['subject_token with typ oauth-id-jag+jwt', params(exchange(await mint({ header: { typ: 'oauth-id-jag+jwt' } }))), {}, 'invalid_subject_token', /typ/],
    ['subject_token without exp', params(exchange(await mint({ claims: { exp: undefined } }))), {}, 'invalid_subject_token', /exp/],
    ['subject_token from an untrusted issuer', params(exchange(await mint({ claims: { iss: 'https://not-trusted.example' } }))), {}, 'invalid_subject_token', /trusted/],
  ];
  for (const [name, body, opts, reason, detail] of cases) {
    const r = await tokenRequest(srv, body, { basic, ...opts });
    await t.test(name, () => assertOAuthError(r, reason, detail));
  }

  // A body over 64 KiB: 413 and a JSON OAuth error, read before the body is sent.
  const big = `grant_type=client_credentials&scope=${'a'.repeat(64 * 1024)}`;
  const r = await request(`${issuer}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', expect: '100-continue' },
    body: big,
  });
  assert.equal(r.status, 413, r.text);
  assert.match(r.headers['content-type'] || '', /^application\/json\b/);
  assert.equal(r.json?.error, 'invalid_request', r.text);
  assert.ok(r.json.error_description?.startsWith('Malformed request'), r.text);
  // The same sent chunked (no Content-Length): read, discarded, and answered alike.
  const chunked = await request(`${issuer}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'transfer-encoding': 'chunked' },
    body: big,
  });
  assert.equal(chunked.status, 413, chunked.text);
  assert.equal(chunked.json?.error, 'invalid_request', chunked.text);
  assert.ok(chunked.json.error_description?.startsWith('Malformed request'), chunked.text);
  // Exactly 64 KiB is still read (and refused for what it says, not for its size).
  const edge = `grant_type=password&x=${'a'.repeat(64 * 1024 - 'grant_type=password&x='.length)}`;
  assert.equal(edge.length, 64 * 1024);
  assertOAuthError(await tokenRequest(srv, edge, {}), 'unsupported_grant_type', 'password');

  // The server is still fine.
  assert.equal((await tokenRequest(srv, exchange(await mint()), { basic })).status, 200);
});

test('steps 2, 3 and 5-10 through raw requests: each reason its own answer', async (t) => {
  const env = await setup(t);
  const { srv, issuer } = env;
  const basic = ['desktop-agent', env.secrets['desktop-agent']];
  const alice = await devIdToken(srv, ALICE, ['engineering']);
  const exchange = (extra = {}) => ({
    grant_type: TE,
    requested_token_type: TT_ID_JAG,
    audience: GITHUB_AUD,
    resource: GITHUB_RESOURCE,
    scope: 'repo:read',
    subject_token: alice,
    subject_token_type: TT_ID_TOKEN,
    ...extra,
  });
  assertOAuthError(await tokenRequest(srv, exchange(), { basic: ['no-such-client', 'x'] }), 'invalid_client');
  assertOAuthError(await tokenRequest(srv, exchange(), {}), 'invalid_client');
  // build-bot may not exchange tokens.
  assertOAuthError(await tokenRequest(srv, exchange(), { post: ['build-bot', env.secrets['build-bot']] }), 'unauthorized_client', TE);
  // desktop-agent may not use client credentials.
  assertOAuthError(await tokenRequest(srv, { grant_type: CC, resource: env.docsResource }, { basic }), 'unauthorized_client', CC);
  assertOAuthError(await tokenRequest(srv, exchange({ audience: 'https://nobody.example/', resource: undefined }), { basic }), 'unknown_system');
  // laptop-agent has no access policy for github.
  assertOAuthError(await tokenRequest(srv, exchange(), { basic: ['laptop-agent', env.secrets['laptop-agent']] }), 'no_access_policy');
  assertOAuthError(await tokenRequest(srv, exchange({ resource: 'https://evil.example/mcp' }), { basic }), 'target_url_not_registered', 'https://evil.example/mcp');
  assertOAuthError(await tokenRequest(srv, exchange({ scope: 'repo:write' }), { basic }), 'scope_not_enabled', 'Scope not enabled: repo:write');
  assertOAuthError(await tokenRequest(srv, exchange({ scope: 'repo:admin' }), { basic }), 'scope_not_enabled', 'repo:admin');
  const bob = await devIdToken(srv, 'bob@example.com', ['sales']);
  assertOAuthError(await tokenRequest(srv, exchange({ subject_token: bob }), { basic }), 'no_grant', 'No grant for the scope: repo:read');
  // Access tokens are issued only for systems whose authorization server mcpauth is.
  assertOAuthError(await tokenRequest(srv, exchange({ requested_token_type: TT_ACCESS }), { basic }), 'unknown_system');
  // The docs system answers to this issuer.
  const r = await tokenRequest(srv, exchange({ audience: issuer, resource: env.docsResource, scope: 'docs:read' }), { basic });
  assert.equal(r.status, 200, r.text);
});
