// The admin API (/api/v1) and the CLI's apply/get/delete, end to end against
// the real binary: authentication, apply, per-kind round trips, secrets, the
// cross-object rules, atomic apply, prune, body limits and content types.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import * as jose from 'jose';

import { assertError, assertFields, ok, seg } from './lib/check.mjs';
import { assertCleanExit, logServersOnFailure, repoRoot, startServer, tempDir } from './lib/server.mjs';

logServersOnFailure();

const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JB = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const EXAMPLE_FILE = path.join(repoRoot, 'examples/policy.yaml');

// What examples/policy.yaml declares, in the canonical form the API returns.
const EXAMPLE = {
  settings: { default_signing_alg: 'ES256', maintained_algs: ['ES256'], default_lifetime: '300s' },
  systems: {
    github: {
      id: 'github',
      name: 'GitHub MCP',
      audience: 'https://auth.github.example/',
      resource_urls: ['https://mcp.github.example/mcp'],
      scopes: [
        { name: 'repo:read', enabled: true, classification: 'read' },
        { name: 'repo:write', enabled: false, classification: 'write' },
      ],
      paused: false,
      signing_alg: 'inherit',
      max_lifetime: '300s',
      token_type: 'id-jag',
    },
    docs: {
      id: 'docs',
      name: 'Docs MCP (mcpauth is its authorization server)',
      audience: 'http://127.0.0.1:8080',
      resource_urls: ['http://127.0.0.1:8080/mcp/docs'],
      scopes: [
        { name: 'docs:read', enabled: true, classification: 'read' },
        { name: 'docs:write', enabled: true, classification: 'write' },
      ],
      paused: false,
      signing_alg: 'inherit',
      token_type: 'access_token',
    },
  },
  clients: {
    'desktop-agent': {
      id: 'desktop-agent',
      name: 'Desktop agent',
      auth: 'client_secret_basic',
      redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: [TE, JB],
      secret_set: true,
    },
    'build-bot': {
      id: 'build-bot',
      name: 'Build bot (no user)',
      auth: 'client_secret_post',
      redirect_uris: [],
      grant_types: ['client_credentials'],
      secret_set: true,
    },
  },
  'access-policies': {
    'desktop-github': { id: 'desktop-github', client: 'desktop-agent', system: 'github', active: true },
    'desktop-docs': { id: 'desktop-docs', client: 'desktop-agent', system: 'docs', active: true },
    'bot-docs': { id: 'bot-docs', client: 'build-bot', system: 'docs', active: true },
  },
  grants: {
    'github:user:alice@example.com': {
      id: 'github:user:alice@example.com',
      subject: 'user:alice@example.com',
      system: 'github',
      scopes: ['repo:read', 'repo:write'],
    },
    'github:group:engineering': { id: 'github:group:engineering', subject: 'group:engineering', system: 'github', scopes: ['repo:read'] },
    'docs:group:engineering': { id: 'docs:group:engineering', subject: 'group:engineering', system: 'docs', scopes: ['docs:read'] },
    'docs:client:build-bot': { id: 'docs:client:build-bot', subject: 'client:build-bot', system: 'docs', scopes: ['docs:read'] },
  },
};
const EXAMPLE_SECRETS = ['dev-only-secret', 'dev-only-bot-secret'];
const EXAMPLE_CHANGES = [
  'settings',
  'system:github',
  'system:docs',
  'client:desktop-agent',
  'client:build-bot',
  'access_policy:desktop-github',
  'access_policy:desktop-docs',
  'access_policy:bot-docs',
  'grant:github:user:alice@example.com',
  'grant:github:group:engineering',
  'grant:docs:group:engineering',
  'grant:docs:client:build-bot',
];
// API path -> the singular used in apply's "object" references.
const REF = { systems: 'system', clients: 'client', 'access-policies': 'access_policy', grants: 'grant', 'trusted-issuers': 'trusted_issuer' };
const KINDS = Object.keys(REF);

let srv;
let scratch;

before(async () => {
  srv = await startServer();
  scratch = await tempDir();
});

after(async () => {
  if (scratch) await fs.rm(scratch, { recursive: true, force: true });
  if (srv) assertCleanExit(assert, await srv.close());
});

test('without a valid admin token every /api/v1 path answers 401 and nothing else', async () => {
  const token = srv.token;
  const keysBefore = ok(await srv.api('GET', '/api/v1/keys'));
  const settingsBefore = ok(await srv.api('GET', '/api/v1/settings'));
  const authorizations = [
    undefined, // no header at all
    'Bearer wrong-token',
    `Bearer ${token}x`,
    `Bearer ${token.slice(0, -1)}`,
    `Basic ${Buffer.from(`admin:${token}`).toString('base64')}`,
    `Token ${token}`,
    token, // no scheme
    'Bearer',
    'Bearer ',
    `Bearer${token}`,
  ];
  const calls = [
    ['GET', '/api/v1/systems'],
    ['GET', '/api/v1/keys'],
    ['GET', '/api/v1/settings'],
    ['GET', '/api/v1/'],
    ['GET', '/api/v1/nope'],
    ['GET', '/api/v1/nope/deeper/still'],
    ['POST', '/api/v1/systems', { id: 'unauth-probe', audience: 'https://probe.example/' }],
    ['POST', '/api/v1/keys', { alg: 'ES384' }],
    ['POST', '/api/v1/apply', 'systems:\n  - {id: unauth-probe, audience: "https://probe.example/"}\n', 'application/yaml'],
    ['PATCH', '/api/v1/settings', { default_signing_alg: 'RS256' }],
    ['DELETE', '/api/v1/systems/unauth-probe'],
  ];
  const bodies = new Set();
  for (const auth of authorizations) {
    for (const [method, p, body, contentType] of calls) {
      const headers = auth === undefined ? {} : { authorization: auth };
      const r = await srv.api(method, p, body, { token: null, headers, contentType });
      assertError(r, 401, 'unauthorized');
      bodies.add(r.text);
    }
  }
  assert.equal(bodies.size, 1, `the 401 answer must not depend on the path or the method: ${[...bodies].join(' | ')}`);

  // Nothing happened.
  assertError(await srv.api('GET', '/api/v1/systems/unauth-probe'), 404, 'not_found');
  assert.deepEqual(ok(await srv.api('GET', '/api/v1/keys')), keysBefore);
  assert.deepEqual(ok(await srv.api('GET', '/api/v1/settings')), settingsBefore);
  // The scheme is case-insensitive (RFC 7235).
  ok(await srv.api('GET', '/api/v1/systems', undefined, { token: null, headers: { authorization: `bearer ${token}` } }));
  // With the token, an unknown path is a plain 404.
  assertError(await srv.api('GET', '/api/v1/nope'), 404, 'not_found');
});

test('apply examples/policy.yaml as YAML and read every kind back', async () => {
  const yaml = await fs.readFile(EXAMPLE_FILE, 'utf8');
  const res = ok(await srv.api('POST', '/api/v1/apply', yaml, { contentType: 'application/yaml' }));
  assert.deepEqual(Object.keys(res).sort(), ['changes', 'created', 'deleted', 'unchanged', 'updated']);
  assert.equal(res.created, EXAMPLE_CHANGES.length);
  assert.equal(res.updated, 0);
  assert.equal(res.deleted, 0);
  assert.equal(res.unchanged, 0);
  assert.deepEqual(
    res.changes.map((c) => c.object).sort(),
    [...EXAMPLE_CHANGES].sort(),
  );
  for (const c of res.changes) assert.equal(c.action, 'create', JSON.stringify(c));

  assertFields(ok(await srv.api('GET', '/api/v1/settings')), EXAMPLE.settings, 'settings');
  for (const kind of ['systems', 'clients', 'access-policies', 'grants']) {
    const list = ok(await srv.api('GET', `/api/v1/${kind}`));
    assert.ok(Array.isArray(list), `${kind}: ${JSON.stringify(list)}`);
    for (const [id, want] of Object.entries(EXAMPLE[kind])) {
      const inList = list.find((o) => o.id === id);
      assert.ok(inList, `${kind}/${id} is missing from the list`);
      assertFields(inList, want, `${kind}/${id}`);
      const one = ok(await srv.api('GET', `/api/v1/${kind}/${seg(id)}`));
      assert.deepEqual(one, inList, `${kind}/${id}: GET by id differs from the list entry`);
      assert.equal(one.secret, undefined, `${kind}/${id} shows a secret`);
      assert.equal(one.secret_hash, undefined, `${kind}/${id} shows a secret hash`);
    }
  }
  // The list is the whole story for the kinds the example fills completely.
  const systems = ok(await srv.api('GET', '/api/v1/systems')).map((s) => s.id);
  assert.deepEqual(systems.sort(), ['docs', 'github']);
});

test('applying the same file again changes nothing', async () => {
  const yaml = await fs.readFile(EXAMPLE_FILE, 'utf8');
  const res = ok(await srv.api('POST', '/api/v1/apply', yaml, { contentType: 'application/yaml' }));
  assert.deepEqual(res, { created: 0, updated: 0, deleted: 0, unchanged: EXAMPLE_CHANGES.length, changes: [] });
  // The same policy as JSON is the same policy.
  const asJson = {
    settings: EXAMPLE.settings,
    systems: Object.values(EXAMPLE.systems),
    access_policies: Object.values(EXAMPLE['access-policies']),
  };
  const res2 = ok(await srv.api('POST', '/api/v1/apply', JSON.stringify(asJson), { contentType: 'application/json' }));
  assert.deepEqual(res2, { created: 0, updated: 0, deleted: 0, unchanged: 6, changes: [] });
});

test('CLI: apply -f a JSON policy file, then get KIND -o json reads it back', async () => {
  const { publicKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'cli-idp-1', alg: 'ES256', use: 'sig' };
  const policy = {
    systems: [
      {
        id: 'cli-sys',
        name: 'CLI system',
        audience: 'https://cli-auth.example/',
        resource_urls: ['https://cli.example/mcp'],
        scopes: [{ name: 'cli:read', enabled: true, classification: 'read' }, 'cli:write'],
        max_lifetime: '5m',
        signing_alg: 'ES256',
      },
    ],
    clients: [
      {
        id: 'cli-client',
        name: 'CLI client',
        auth: 'client_secret_post',
        secret: 'cli-client-cleartext-secret',
        grant_types: ['client_credentials'],
      },
    ],
    access_policies: [{ id: 'cli-policy', client: 'cli-client', system: 'cli-sys', active: false }],
    grants: [{ subject: 'client:cli-client', system: 'cli-sys', scopes: ['cli:read'] }],
    trusted_issuers: [
      { issuer: 'https://cli-idp.example.com', jwks: { keys: [jwk] }, audience: 'mcpauth-cli', algorithms: ['ES256'], user_claim: 'email' },
    ],
  };
  const file = path.join(scratch, 'cli-policy.json');
  await fs.writeFile(file, JSON.stringify(policy, null, 2));

  const applied = await srv.cli(['apply', '-f', file]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /applied: 5 created, 0 updated, 0 deleted, 0 unchanged/);
  for (const id of ['cli-sys', 'cli-client', 'cli-policy']) assert.ok(applied.stdout.includes(id), applied.stdout);

  const getJson = async (...args) => {
    const r = await srv.cli(['get', ...args, '-o', 'json']);
    assert.equal(r.code, 0, `get ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  assertFields(await getJson('systems', 'cli-sys'), {
    id: 'cli-sys',
    name: 'CLI system',
    audience: 'https://cli-auth.example/',
    resource_urls: ['https://cli.example/mcp'],
    scopes: [
      { name: 'cli:read', enabled: true, classification: 'read' },
      { name: 'cli:write', enabled: true },
    ],
    max_lifetime: '300s',
    signing_alg: 'ES256',
    paused: false,
    token_type: 'id-jag',
  });
  const clients = await getJson('clients');
  const client = clients.find((c) => c.id === 'cli-client');
  assertFields(client, { name: 'CLI client', auth: 'client_secret_post', grant_types: ['client_credentials'], secret_set: true });
  assert.equal(client.secret, undefined);
  assertFields(await getJson('access-policies', 'cli-policy'), { client: 'cli-client', system: 'cli-sys', active: false });
  assertFields(await getJson('grant', 'cli-sys:client:cli-client'), { subject: 'client:cli-client', system: 'cli-sys', scopes: ['cli:read'] });
  // A trusted issuer named by its URL: the CLI escapes the id in the path.
  const ti = await getJson('trusted-issuers', 'https://cli-idp.example.com');
  assertFields(ti, {
    id: 'https://cli-idp.example.com',
    issuer: 'https://cli-idp.example.com',
    jwks: { keys: [jwk] },
    audience: 'mcpauth-cli',
    algorithms: ['ES256'],
    user_claim: 'email',
    groups_claim: 'groups',
  });
  assertFields(await getJson('settings'), EXAMPLE.settings);

  // Again: nothing to do.
  const again = await srv.cli(['apply', '-f', file]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /applied: 0 created, 0 updated, 0 deleted, 5 unchanged/);

  // A refused request: exit status 1 and the server's message.
  const missing = await srv.cli(['delete', 'systems', 'cli-no-such-system']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cli-no-such-system/);
  const del = await srv.cli(['delete', 'access-policies', 'cli-policy']);
  assert.equal(del.code, 0, del.stderr);
  assertError(await srv.api('GET', '/api/v1/access-policies/cli-policy'), 404, 'not_found');
});

test('CLI: get systems prints a table naming every system', async () => {
  const r = await srv.cli(['get', 'systems']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^ID\s+NAME\s+AUDIENCE/);
  const ids = lines.slice(1).map((l) => l.split(/\s+/)[0]);
  const want = ok(await srv.api('GET', '/api/v1/systems')).map((s) => s.id);
  assert.deepEqual(ids.sort(), want.sort());
  for (const id of ['github', 'docs']) assert.ok(ids.includes(id), r.stdout);
  assert.ok(r.stdout.includes('https://auth.github.example/'), r.stdout);
});

// ---- create / replace / patch / delete, per kind ----

const roundTrips = {
  systems: {
    id: 'rt-sys',
    create: {
      id: 'rt-sys',
      name: 'Round trip',
      description: 'first version',
      audience: 'https://rt.example/',
      resource_urls: ['https://rt.example/mcp'],
      scopes: ['rt:read', { name: 'rt:write', enabled: false }],
      paused: true,
    },
    created: {
      id: 'rt-sys',
      name: 'Round trip',
      description: 'first version',
      audience: 'https://rt.example/',
      resource_urls: ['https://rt.example/mcp'],
      scopes: [
        { name: 'rt:read', enabled: true },
        { name: 'rt:write', enabled: false },
      ],
      paused: true,
      signing_alg: 'inherit',
      token_type: 'id-jag',
    },
    replace: { id: 'rt-sys', audience: 'https://rt2.example/', scopes: ['rt:read'], token_type: 'access_token' },
    replaced: { id: 'rt-sys', name: 'rt-sys', audience: 'https://rt2.example/', resource_urls: [], paused: false, token_type: 'access_token' },
    goneAfterReplace: ['description'],
    patch: { description: 'patched', paused: true, resource_urls: ['https://rt2.example/mcp'] },
    patched: { audience: 'https://rt2.example/', description: 'patched', paused: true, resource_urls: ['https://rt2.example/mcp'], token_type: 'access_token' },
    unpatch: { description: null, paused: false },
    unpatched: { paused: false, audience: 'https://rt2.example/' },
    goneAfterUnpatch: ['description'],
    missing: { id: 'rt-sys-missing', audience: 'https://missing.example/' },
  },
  clients: {
    id: 'rt-client',
    create: { id: 'rt-client', name: 'RT client', auth: 'client_secret_post', secret: 'rt-client-secret-1', grant_types: ['client_credentials'] },
    created: { id: 'rt-client', name: 'RT client', auth: 'client_secret_post', grant_types: ['client_credentials'], redirect_uris: [], secret_set: true },
    replace: { id: 'rt-client', auth: 'none', redirect_uris: ['http://127.0.0.1/cb'] },
    replaced: { id: 'rt-client', name: 'rt-client', auth: 'none', redirect_uris: ['http://127.0.0.1/cb'], grant_types: [TE] },
    goneAfterReplace: ['secret_set'],
    patch: { name: 'patched', auth: 'client_secret_basic', secret: 'rt-client-secret-2' },
    patched: { name: 'patched', auth: 'client_secret_basic', redirect_uris: ['http://127.0.0.1/cb'], secret_set: true },
    unpatch: { name: null },
    unpatched: { name: 'rt-client', auth: 'client_secret_basic', secret_set: true },
    goneAfterUnpatch: [],
    missing: { id: 'rt-client-missing', auth: 'none' },
  },
  'access-policies': {
    id: 'rt-ap',
    fixtures: [
      ['systems', { id: 'rt-ap-sys', audience: 'https://rt-ap.example/' }],
      ['clients', { id: 'rt-ap-client', auth: 'none' }],
      ['clients', { id: 'rt-ap-client2', auth: 'none' }],
    ],
    create: { id: 'rt-ap', client: 'rt-ap-client', system: 'rt-ap-sys', description: 'first' },
    created: { id: 'rt-ap', client: 'rt-ap-client', system: 'rt-ap-sys', description: 'first', active: true },
    replace: { id: 'rt-ap', client: 'rt-ap-client2', system: 'rt-ap-sys', active: false },
    replaced: { id: 'rt-ap', client: 'rt-ap-client2', system: 'rt-ap-sys', active: false },
    goneAfterReplace: ['description'],
    patch: { active: true, client_id_at_system: 'alias-at-system' },
    patched: { client: 'rt-ap-client2', active: true, client_id_at_system: 'alias-at-system' },
    unpatch: { client_id_at_system: null },
    unpatched: { active: true },
    goneAfterUnpatch: ['client_id_at_system'],
    missing: { id: 'rt-ap-missing', client: 'rt-ap-client', system: 'rt-ap-sys' },
  },
  grants: {
    id: 'rt-gr-sys:user:rt@example.com',
    fixtures: [['systems', { id: 'rt-gr-sys', audience: 'https://rt-gr.example/', scopes: ['a', 'b'] }]],
    create: { subject: 'user:rt@example.com', system: 'rt-gr-sys', scopes: ['a'] },
    created: { id: 'rt-gr-sys:user:rt@example.com', subject: 'user:rt@example.com', system: 'rt-gr-sys', scopes: ['a'] },
    replace: { subject: 'user:rt@example.com', system: 'rt-gr-sys', scopes: ['a', 'b'] },
    replaced: { id: 'rt-gr-sys:user:rt@example.com', scopes: ['a', 'b'] },
    goneAfterReplace: [],
    patch: { scopes: ['b'] },
    patched: { id: 'rt-gr-sys:user:rt@example.com', subject: 'user:rt@example.com', scopes: ['b'] },
    missing: { subject: 'user:nobody@example.com', system: 'rt-gr-sys', scopes: ['a'] },
    missingId: 'rt-gr-sys:user:nobody@example.com',
  },
  'trusted-issuers': {
    id: 'rt-ti',
    create: { id: 'rt-ti', issuer: 'https://rt-idp.example.com', jwks_uri: 'https://rt-idp.example.com/jwks', audience: 'mcpauth-rt' },
    created: {
      id: 'rt-ti',
      issuer: 'https://rt-idp.example.com',
      jwks_uri: 'https://rt-idp.example.com/jwks',
      audience: 'mcpauth-rt',
      algorithms: ['RS256', 'ES256'],
      user_claim: 'sub',
      groups_claim: 'groups',
    },
    replace: 'JWKS', // filled in with a generated public key
    replaced: { id: 'rt-ti', issuer: 'https://rt-idp.example.com', audience: 'mcpauth-rt', algorithms: ['ES256'], user_claim: 'sub' },
    goneAfterReplace: ['jwks_uri'],
    patch: { user_claim: 'email', groups_claim: 'roles' },
    patched: { user_claim: 'email', groups_claim: 'roles', algorithms: ['ES256'] },
    unpatch: { user_claim: null },
    unpatched: { user_claim: 'sub', groups_claim: 'roles' },
    goneAfterUnpatch: [],
    missing: { id: 'rt-ti-missing', issuer: 'https://missing-idp.example.com', jwks_uri: 'https://missing-idp.example.com/jwks', audience: 'x' },
  },
};

describe('create, replace, patch and delete round trips', () => {
  for (const kind of KINDS) {
    test(kind, async () => {
      const rt = roundTrips[kind];
      const base = `/api/v1/${kind}`;
      const at = `${base}/${seg(rt.id)}`;
      if (rt.replace === 'JWKS') {
        const { publicKey } = await jose.generateKeyPair('ES256', { extractable: true });
        const jwk = await jose.exportJWK(publicKey);
        rt.replace = { id: 'rt-ti', issuer: 'https://rt-idp.example.com', jwks: { keys: [jwk] }, audience: 'mcpauth-rt', algorithms: ['ES256'] };
        rt.replaced.jwks = { keys: [jwk] };
      }
      for (const [k, body] of rt.fixtures || []) ok(await srv.api('POST', `/api/v1/${k}`, body), 201);

      // create, and create again
      const created = ok(await srv.api('POST', base, rt.create), 201);
      assertFields(created, rt.created, `created ${kind}`);
      assert.equal(created.secret, undefined, 'a given secret is never echoed');
      assertError(await srv.api('POST', base, rt.create), 409, 'conflict', 'already exists');

      // read
      const got = ok(await srv.api('GET', at));
      assert.deepEqual(got, created);
      const list = ok(await srv.api('GET', base));
      assert.deepEqual(
        list.find((o) => o.id === rt.id),
        created,
      );

      // replace: what the body leaves out goes back to its default
      const replaced = ok(await srv.api('PUT', at, rt.replace));
      assertFields(replaced, rt.replaced, `replaced ${kind}`);
      for (const f of rt.goneAfterReplace) assert.equal(replaced[f], undefined, `PUT keeps ${f}: ${JSON.stringify(replaced)}`);
      assert.deepEqual(ok(await srv.api('GET', at)), replaced);
      const missingId = rt.missingId || rt.missing.id;
      assertError(await srv.api('PUT', `${base}/${seg(missingId)}`, rt.missing), 404, 'not_found');

      // merge patch (RFC 7396)
      const patched = ok(await srv.api('PATCH', at, rt.patch, { contentType: 'application/merge-patch+json' }));
      assertFields(patched, rt.patched, `patched ${kind}`);
      assert.deepEqual(ok(await srv.api('GET', at)), patched);
      if (rt.unpatch) {
        const unpatched = ok(await srv.api('PATCH', at, rt.unpatch));
        assertFields(unpatched, rt.unpatched, `null-patched ${kind}`);
        for (const f of rt.goneAfterUnpatch) assert.equal(unpatched[f], undefined, `a null in a merge patch removes ${f}`);
      }
      assertError(await srv.api('PATCH', `${base}/${seg(missingId)}`, rt.patch), 404, 'not_found');
      assertError(await srv.api('GET', `${base}/${seg(missingId)}`), 404, 'not_found');

      // delete
      const del = await srv.api('DELETE', at);
      assert.equal(del.status, 204, del.text);
      assert.equal(del.text, '');
      assertError(await srv.api('GET', at), 404, 'not_found');
      assertError(await srv.api('DELETE', at), 404, 'not_found');
      assert.equal(
        ok(await srv.api('GET', base)).find((o) => o.id === rt.id),
        undefined,
      );

      for (const [k, body] of [...(rt.fixtures || [])].reverse()) {
        assert.equal((await srv.api('DELETE', `/api/v1/${k}/${seg(body.id)}`)).status, 204);
      }
    });
  }
});

// A regression test: this once freed the normalised object twice and aborted the server.
test('PUT or PATCH with a body id that differs from the path is a 400, and the server survives', async () => {
  const own = await startServer();
  try {
    ok(await own.api('POST', '/api/v1/systems', { id: 'mismatch-a', audience: 'https://a.example/' }), 201);
    assertError(await own.api('PUT', '/api/v1/systems/mismatch-a', { id: 'mismatch-b', audience: 'https://a.example/' }), 400, 'invalid_request', 'mismatch-b');
    assertError(await own.api('PATCH', '/api/v1/systems/mismatch-a', { id: 'mismatch-b' }), 400, 'invalid_request', 'mismatch-b');
    ok(await own.api('GET', '/healthz'));
    assertFields(ok(await own.api('GET', '/api/v1/systems/mismatch-a')), { audience: 'https://a.example/' });
    assertError(await own.api('GET', '/api/v1/systems/mismatch-b'), 404, 'not_found');
  } finally {
    assertCleanExit(assert, await own.close());
  }
});

test('client secrets never come back: not in answers, lists, the CLI, nor as a hash', async () => {
  const suffix = Math.random().toString(36).slice(2);
  const secrets = [...EXAMPLE_SECRETS];
  const s1 = `cleartext-one-${suffix}`;
  const s2 = `cleartext-two-${suffix}`;
  const s3 = `cleartext-three-${suffix}`;
  const s4 = `cleartext-four-${suffix}`;
  secrets.push(s1, s2, s3, s4);
  const answers = [];
  const keep = (r, status = 200) => {
    answers.push(r.text);
    return ok(r, status);
  };
  keep(await srv.api('POST', '/api/v1/clients', { id: 'sec-client', auth: 'client_secret_basic', secret: s1 }), 201);
  keep(await srv.api('PUT', '/api/v1/clients/sec-client', { id: 'sec-client', auth: 'client_secret_post', secret: s2 }));
  keep(await srv.api('PATCH', '/api/v1/clients/sec-client', { secret: s3 }));
  keep(await srv.api('POST', '/api/v1/apply', { clients: [{ id: 'sec-client-2', auth: 'client_secret_basic', secret: s4 }] }));
  keep(await srv.api('GET', '/api/v1/clients'));
  for (const c of ok(await srv.api('GET', '/api/v1/clients'))) {
    const one = keep(await srv.api('GET', `/api/v1/clients/${seg(c.id)}`));
    if (one.auth.startsWith('client_secret_')) assert.equal(one.secret_set, true, JSON.stringify(one));
  }
  for (const args of [['get', 'clients'], ['get', 'clients', '-o', 'json'], ['get', 'clients', 'sec-client', '-o', 'json']]) {
    const r = await srv.cli(args);
    assert.equal(r.code, 0, r.stderr);
    answers.push(r.stdout, r.stderr);
  }
  const all = answers.join('\n');
  for (const s of secrets) assert.ok(!all.includes(s), `the secret ${s} came back`);
  assert.doesNotMatch(all, /pbkdf2/i, 'a secret hash came back');
  assert.ok(!all.includes('secret_hash'), 'a secret_hash member came back');
  assert.ok(all.includes('"secret_set":true'));
  for (const id of ['sec-client', 'sec-client-2']) assert.equal((await srv.api('DELETE', `/api/v1/clients/${id}`)).status, 204);
});

test('a client created without a secret gets a generated one, returned once', async () => {
  const r = await srv.api('POST', '/api/v1/clients', { id: 'gen-secret', auth: 'client_secret_basic' });
  const created = ok(r, 201);
  assert.equal(typeof created.secret, 'string', r.text);
  assert.ok(created.secret.length >= 32, `a short generated secret: ${created.secret}`);
  assert.match(created.secret, /^[A-Za-z0-9_-]+$/);
  assert.equal(created.secret_set, true);
  const again = await srv.api('GET', '/api/v1/clients/gen-secret');
  assert.equal(ok(again).secret, undefined);
  assert.ok(!again.text.includes(created.secret));
  const list = await srv.api('GET', '/api/v1/clients');
  assert.ok(!list.text.includes(created.secret));
  // A second create is refused, and no new secret is handed out.
  const dup = await srv.api('POST', '/api/v1/clients', { id: 'gen-secret', auth: 'client_secret_basic' });
  assertError(dup, 409, 'conflict');
  // Two clients never get the same secret.
  const other = ok(await srv.api('POST', '/api/v1/clients', { id: 'gen-secret-2', auth: 'client_secret_post' }), 201);
  assert.notEqual(other.secret, created.secret);
  // A public client has no secret to generate.
  const pub = ok(await srv.api('POST', '/api/v1/clients', { id: 'gen-public', auth: 'none' }), 201);
  assert.equal(pub.secret, undefined);
  assert.equal(pub.secret_set, undefined);
  // Replacing a secret client without a secret keeps the old one (no new secret shown).
  const kept = await srv.api('PUT', '/api/v1/clients/gen-secret', { id: 'gen-secret', auth: 'client_secret_basic', name: 'renamed' });
  assert.equal(ok(kept).secret, undefined, kept.text);
  assert.equal(kept.json.secret_set, true);
  for (const id of ['gen-secret', 'gen-secret-2', 'gen-public']) assert.equal((await srv.api('DELETE', `/api/v1/clients/${id}`)).status, 204);
});

test('a grant on an unknown system is a 400 naming the system', async () => {
  const r = await srv.api('POST', '/api/v1/grants', { subject: 'user:bob@example.com', system: 'no-such-system', scopes: ['x'] });
  assertError(r, 400, 'invalid_request', 'no-such-system');
  assertError(await srv.api('GET', `/api/v1/grants/${seg('no-such-system:user:bob@example.com')}`), 404, 'not_found');
  const grants = ok(await srv.api('GET', '/api/v1/grants'));
  assert.equal(grants.filter((g) => g.system === 'no-such-system').length, 0);
  // The same through apply.
  const a = await srv.api('POST', '/api/v1/apply', { grants: [{ subject: 'user:bob@example.com', system: 'no-such-system', scopes: ['x'] }] });
  assertError(a, 400, 'invalid_request', 'no-such-system');
});

test('deleting a system or client an access policy still uses is a 409, and it stays', async () => {
  ok(await srv.api('POST', '/api/v1/systems', { id: 'ref-sys', audience: 'https://ref.example/' }), 201);
  ok(await srv.api('POST', '/api/v1/clients', { id: 'ref-client', auth: 'none' }), 201);
  ok(await srv.api('POST', '/api/v1/access-policies', { id: 'ref-policy', client: 'ref-client', system: 'ref-sys' }), 201);
  assertError(await srv.api('DELETE', '/api/v1/systems/ref-sys'), 409, 'conflict', 'ref-policy');
  ok(await srv.api('GET', '/api/v1/systems/ref-sys'));
  assertError(await srv.api('DELETE', '/api/v1/clients/ref-client'), 409, 'conflict', 'ref-policy');
  ok(await srv.api('GET', '/api/v1/clients/ref-client'));
  ok(await srv.api('GET', '/api/v1/access-policies/ref-policy'));
  // In the right order it works.
  assert.equal((await srv.api('DELETE', '/api/v1/access-policies/ref-policy')).status, 204);
  assert.equal((await srv.api('DELETE', '/api/v1/systems/ref-sys')).status, 204);
  assert.equal((await srv.api('DELETE', '/api/v1/clients/ref-client')).status, 204);
});

test('an apply document with an error in its third object applies nothing and names the line', async () => {
  const yaml = [
    'systems:',
    '  - id: atomic-s1',
    '    audience: https://atomic1.example/',
    '  - id: atomic-s2',
    '    audience: https://atomic2.example/',
    'clients:',
    '  - id: atomic-c1',
    '    auth: none',
    '    colour: blue',
    '',
  ].join('\n');
  const r = await srv.api('POST', '/api/v1/apply', yaml, { contentType: 'application/yaml' });
  assertError(r, 400, 'invalid_request', 'colour');
  assert.match(r.json.error.message, /\bline 9\b/);
  for (const p of ['/api/v1/systems/atomic-s1', '/api/v1/systems/atomic-s2', '/api/v1/clients/atomic-c1']) {
    assertError(await srv.api('GET', p), 404, 'not_found');
  }

  // The same mistake in JSON names the JSON line.
  const doc = {
    systems: [
      { id: 'atomic-s1', audience: 'https://atomic1.example/' },
      { id: 'atomic-s2', audience: 'https://atomic2.example/' },
      { id: 'atomic-s3', audience: 'https://atomic3.example/', colour: 'blue' },
    ],
  };
  const text = JSON.stringify(doc, null, 2);
  const line = text.split('\n').findIndex((l) => l.includes('"colour"')) + 1;
  const rj = await srv.api('POST', '/api/v1/apply', text, { contentType: 'application/json' });
  assertError(rj, 400, 'invalid_request', 'colour');
  assert.match(rj.json.error.message, new RegExp(`\\bline ${line}\\b`));
  for (const id of ['atomic-s1', 'atomic-s2', 'atomic-s3']) assertError(await srv.api('GET', `/api/v1/systems/${id}`), 404, 'not_found');

  // A rule that spans objects, broken by the third: nothing either.
  const xref = {
    systems: [{ id: 'atomic-s1', audience: 'https://atomic1.example/' }],
    clients: [{ id: 'atomic-c1', auth: 'none' }],
    access_policies: [{ id: 'atomic-p1', client: 'atomic-c1', system: 'atomic-nope' }],
  };
  assertError(await srv.api('POST', '/api/v1/apply', xref), 400, 'invalid_request', 'atomic-nope');
  assertError(await srv.api('GET', '/api/v1/systems/atomic-s1'), 404, 'not_found');
  assertError(await srv.api('GET', '/api/v1/clients/atomic-c1'), 404, 'not_found');

  // Through the CLI: exit status 1 and the message.
  const file = path.join(scratch, 'bad-policy.yaml');
  await fs.writeFile(file, yaml);
  const c = await srv.cli(['apply', '-f', file]);
  assert.equal(c.code, 1);
  assert.match(c.stderr, /line 9\b.*colour/);
});

test('a body over 1 MiB is refused with 413; exactly 1 MiB is not', async () => {
  const MiB = 1024 * 1024;
  const tooBig = Buffer.alloc(MiB + 1, 0x20);
  // The limit is checked on Content-Length, before the body is read.
  for (const p of ['/api/v1/systems', '/api/v1/apply', '/api/v1/settings']) {
    const method = p.endsWith('settings') ? 'PATCH' : 'POST';
    const r = await srv.api(method, p, tooBig, { headers: { expect: '100-continue' } });
    assertError(r, 413, 'payload_too_large');
  }
  // A chunked body that grows past the limit.
  const chunked = Buffer.alloc(MiB + MiB / 2, 0x20);
  Buffer.from('{"id":"big-chunked","audience":"https://big.example/","name":"').copy(chunked);
  const rc = await srv.api('POST', '/api/v1/systems', chunked, { headers: { 'transfer-encoding': 'chunked' } });
  assertError(rc, 413, 'payload_too_large');
  assertError(await srv.api('GET', '/api/v1/systems/big-chunked'), 404, 'not_found');
  // Exactly at the limit: accepted.
  const atLimit = Buffer.alloc(MiB, 0x20);
  Buffer.from('{"id":"big-ok","audience":"https://big.example/"}').copy(atLimit);
  ok(await srv.api('POST', '/api/v1/systems', atLimit), 201);
  assert.equal((await srv.api('DELETE', '/api/v1/systems/big-ok')).status, 204);
  ok(await srv.api('GET', '/healthz'));
});

test('a body that is not JSON is a 400', async () => {
  for (const [method, p, body] of [
    ['POST', '/api/v1/systems', 'this is not json'],
    ['POST', '/api/v1/systems', '{"id": "half",'],
    ['POST', '/api/v1/systems', ''],
    ['POST', '/api/v1/systems', '{"id":"dup","id":"dup2","audience":"https://dup.example/"}'],
    ['PUT', '/api/v1/systems/github', '<system/>'],
    ['PATCH', '/api/v1/settings', 'default_signing_alg=RS256'],
    ['PATCH', '/api/v1/settings', '["not", "an", "object"]'],
    ['POST', '/api/v1/keys', 'ES256'],
    ['POST', '/api/v1/apply', '{"systems": [}'],
  ]) {
    const r = await srv.api(method, p, body, { contentType: 'application/json' });
    assertError(r, 400, 'invalid_request');
  }
  assertError(await srv.api('GET', '/api/v1/systems/dup'), 404, 'not_found');
  assertFields(ok(await srv.api('GET', '/api/v1/settings')), { default_signing_alg: 'ES256' });
});

test('a body of another media type is a 415', async () => {
  for (const [method, p, ct] of [
    ['POST', '/api/v1/systems', 'text/plain'],
    ['POST', '/api/v1/systems', 'application/x-www-form-urlencoded'],
    ['PUT', '/api/v1/systems/github', 'application/xml'],
    ['PATCH', '/api/v1/settings', 'text/yaml'],
    ['POST', '/api/v1/keys', 'multipart/form-data; boundary=x'],
    ['POST', '/api/v1/apply', 'application/xml'],
  ]) {
    const r = await srv.api(method, p, '{"id":"media-probe","audience":"https://media.example/"}', { contentType: ct });
    assertError(r, 415, 'unsupported_media_type');
  }
  assertError(await srv.api('GET', '/api/v1/systems/media-probe'), 404, 'not_found');
  // Parameters do not matter.
  ok(await srv.api('POST', '/api/v1/systems', { id: 'media-probe', audience: 'https://media.example/' }, { contentType: 'application/json; charset=utf-8' }), 201);
  assert.equal((await srv.api('DELETE', '/api/v1/systems/media-probe')).status, 204);
});

test('methods a path does not have are a 405 with Allow', async () => {
  const r = await srv.api('DELETE', '/api/v1/settings');
  assertError(r, 405, 'method_not_allowed');
  assert.match(r.headers.allow || '', /GET/);
  const r2 = await srv.api('PUT', '/api/v1/systems', { id: 'x', audience: 'https://x.example/' });
  assertError(r2, 405, 'method_not_allowed');
  assert.match(r2.headers.allow || '', /POST/);
});

test('PATCH settings default_signing_alg RS256 makes an active RS256 key, in /keys and the JWKS', async () => {
  const before = ok(await srv.api('GET', '/api/v1/keys'));
  assert.equal(before.filter((k) => k.alg === 'RS256').length, 0);
  const s = ok(await srv.api('PATCH', '/api/v1/settings', { default_signing_alg: 'RS256' }, { contentType: 'application/merge-patch+json' }));
  assertFields(s, { default_signing_alg: 'RS256', maintained_algs: ['ES256'], default_lifetime: '300s' });
  assertFields(ok(await srv.api('GET', '/api/v1/settings')), { default_signing_alg: 'RS256' });

  const keys = ok(await srv.api('GET', '/api/v1/keys'));
  const rs = keys.filter((k) => k.alg === 'RS256');
  assert.equal(rs.length, 1, JSON.stringify(keys));
  assert.equal(rs[0].status, 'active');
  const jwks = ok(await srv.api('GET', '/oauth/jwks', undefined, { token: null }));
  const jwk = jwks.keys.find((k) => k.kid === rs[0].kid);
  assert.ok(jwk, `${rs[0].kid} is not in the JWKS: ${JSON.stringify(jwks)}`);
  assertFields(jwk, { kty: 'RSA', alg: 'RS256', use: 'sig' });
  assert.equal(jwk.d, undefined);
  const key = await jose.importJWK(jwk, 'RS256');
  assert.equal(key.type, 'public');
  assert.ok(Buffer.from(jwk.n, 'base64url').length >= 256, 'an RSA key of at least 2048 bits');
  ok(await srv.api('GET', '/readyz', undefined, { token: null }));

  // Patching again changes nothing; going back keeps the RS256 key.
  ok(await srv.api('PATCH', '/api/v1/settings', { default_signing_alg: 'RS256' }));
  assert.equal(ok(await srv.api('GET', '/api/v1/keys')).length, keys.length);
  ok(await srv.api('PATCH', '/api/v1/settings', { default_signing_alg: 'ES256' }));
  assert.equal(ok(await srv.api('GET', '/api/v1/keys')).length, keys.length);
  // A bad value is refused and changes nothing.
  assertError(await srv.api('PATCH', '/api/v1/settings', { default_signing_alg: 'HS256' }), 400, 'invalid_request', 'default_signing_alg');
  assertError(await srv.api('PATCH', '/api/v1/settings', { colour: 'blue' }), 400, 'invalid_request', 'colour');
  assertFields(ok(await srv.api('GET', '/api/v1/settings')), { default_signing_alg: 'ES256' });
});

describe('apply ?prune=true', () => {
  let own;
  before(async () => {
    own = await startServer();
  });
  after(async () => {
    if (own) assertCleanExit(assert, await own.close());
  });

  test('deletes exactly the objects the document does not name', async () => {
    const yaml = await fs.readFile(EXAMPLE_FILE, 'utf8');
    ok(await own.api('POST', '/api/v1/apply', yaml, { contentType: 'application/yaml' }));
    ok(await own.api('POST', '/api/v1/trusted-issuers', { id: 'prune-ti', issuer: 'https://prune-idp.example.com', jwks_uri: 'https://prune-idp.example.com/jwks', audience: 'x' }), 201);
    const existing = [];
    for (const kind of KINDS) for (const o of ok(await own.api('GET', `/api/v1/${kind}`))) existing.push([kind, o.id]);

    const doc = {
      systems: [EXAMPLE.systems.github],
      grants: [{ subject: 'user:alice@example.com', system: 'github', scopes: ['repo:read'] }],
    };
    const kept = new Set(['system:github', 'grant:github:user:alice@example.com']);

    // Without prune (or prune=false) nothing is deleted.
    for (const q of ['', '?prune=false']) {
      const r = ok(await own.api('POST', `/api/v1/apply${q}`, doc));
      assert.equal(r.deleted, 0, JSON.stringify(r));
    }
    assertError(await own.api('POST', '/api/v1/apply?prune=yes', doc), 400, 'invalid_request', 'prune');

    const r = ok(await own.api('POST', '/api/v1/apply?prune=true', doc));
    const want = existing.map(([k, id]) => `${REF[k]}:${id}`).filter((ref) => !kept.has(ref));
    const deletes = r.changes.filter((c) => c.action === 'delete').map((c) => c.object);
    assert.deepEqual(deletes.sort(), want.sort());
    assert.equal(r.deleted, want.length);
    assert.equal(r.created, 0);
    for (const [kind, id] of existing) {
      const ref = `${REF[kind]}:${id}`;
      const g = await own.api('GET', `/api/v1/${kind}/${seg(id)}`);
      assert.equal(g.status, kept.has(ref) ? 200 : 404, `${ref}: ${g.status}`);
    }
    for (const kind of KINDS) {
      const ids = ok(await own.api('GET', `/api/v1/${kind}`)).map((o) => `${REF[kind]}:${o.id}`);
      for (const id of ids) assert.ok(kept.has(id), `${id} survived the prune`);
    }
    // Settings are not pruned.
    assertFields(ok(await own.api('GET', '/api/v1/settings')), EXAMPLE.settings);
  });

  test('an empty document with prune is refused rather than deleting everything', async () => {
    const count = async () => (await Promise.all(KINDS.map(async (k) => ok(await own.api('GET', `/api/v1/${k}`)).length))).reduce((a, b) => a + b, 0);
    const before = await count();
    assert.ok(before > 0);
    for (const [body, ct] of [
      ['', 'application/yaml'],
      ['{}', 'application/json'],
      ['# nothing\n', 'application/yaml'],
    ]) {
      assertError(await own.api('POST', '/api/v1/apply?prune=true', body, { contentType: ct }), 400, 'invalid_request');
    }
    assert.equal(await count(), before);
  });
});
