// What survives a restart (policy, keys, the JWKS, the admin token), the
// operations endpoints (/readyz, /metrics), and shutting down on a signal.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { assertError, assertFields, eventually, ok } from './lib/check.mjs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { assertCleanExit, binary, logServersOnFailure, repoRoot, request, startServer, tempDir } from './lib/server.mjs';

logServersOnFailure();

const KINDS = ['systems', 'clients', 'access-policies', 'grants', 'trusted-issuers'];

async function snapshot(srv) {
  const s = {};
  for (const kind of KINDS) s[kind] = ok(await srv.api('GET', `/api/v1/${kind}`));
  s.settings = ok(await srv.api('GET', '/api/v1/settings'));
  s.keys = ok(await srv.api('GET', '/api/v1/keys'));
  s.jwks = ok(await srv.api('GET', '/oauth/jwks', undefined, { token: null }));
  return s;
}

const byKid = (a, b) => a.kid.localeCompare(b.kid);

/** The sum of the samples of `name` whose label set contains `labelPart`. */
function sample(text, name, labelPart) {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/);
    if (!m || m[1] !== name || !(m[2] || '').includes(labelPart)) continue;
    sum += Number(m[3]);
    found = true;
  }
  return found ? sum : undefined;
}

describe('restart', () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    if (srv) assertCleanExit(assert, await srv.close());
  });

  test('policy, keys, the JWKS and the admin token survive a restart', async () => {
    const yaml = await fs.readFile(path.join(repoRoot, 'examples/policy.yaml'), 'utf8');
    ok(await srv.api('POST', '/api/v1/apply', yaml, { contentType: 'application/yaml' }));
    ok(await srv.api('POST', '/api/v1/trusted-issuers', { id: 'persist-idp', issuer: 'https://persist-idp.example.com', jwks_uri: 'https://persist-idp.example.com/jwks', audience: 'mcpauth' }), 201);
    const es384 = ok(await srv.api('POST', '/api/v1/keys', { alg: 'ES384' }), 201);
    const es384b = ok(await srv.api('POST', '/api/v1/keys', { alg: 'ES384' }), 201);
    const retired = ok(await srv.api('POST', '/api/v1/keys', { alg: 'EdDSA' }), 201);
    ok(await srv.api('POST', `/api/v1/keys/${es384b.kid}/activate`));
    ok(await srv.api('POST', `/api/v1/keys/${retired.kid}/retire`));
    ok(await srv.api('PATCH', '/api/v1/settings', { default_lifetime: '10m' }));

    const before = await snapshot(srv);
    assert.equal(before.keys.length, 4);
    const token = srv.token;

    const stopped = await srv.restart();
    assertCleanExit(assert, stopped);
    assert.equal(srv.token, token, 'the admin token file is kept');
    // The old token, as the caller held it, still opens the API.
    ok(await srv.api('GET', '/api/v1/systems', undefined, { token }));
    assertError(await srv.api('GET', '/api/v1/systems', undefined, { token: 'mcpa_not-the-token' }), 401, 'unauthorized');

    const afterRestart = await snapshot(srv);
    for (const kind of KINDS) assert.deepEqual(afterRestart[kind], before[kind], `${kind} changed across the restart`);
    assert.deepEqual(afterRestart.settings, before.settings);
    assert.equal(afterRestart.settings.default_lifetime, '600s');
    assert.deepEqual([...afterRestart.keys].sort(byKid), [...before.keys].sort(byKid), 'keys changed across the restart');
    assert.deepEqual([...afterRestart.jwks.keys].sort(byKid), [...before.jwks.keys].sort(byKid), 'the JWKS changed across the restart');
    const statusOf = (kid) => afterRestart.keys.find((k) => k.kid === kid).status;
    assert.equal(statusOf(es384.kid), 'published');
    assert.equal(statusOf(es384b.kid), 'active');
    assert.equal(statusOf(retired.kid), 'retired');
    assert.ok(!afterRestart.jwks.keys.some((k) => k.kid === retired.kid));
    assert.equal(afterRestart.keys.filter((k) => k.alg === 'ES256').length, 1, 'no new ES256 key at start');

    // The stored policy is what was applied: applying the file again only puts back
    // the default_lifetime patched above.
    const again = ok(await srv.api('POST', '/api/v1/apply', yaml, { contentType: 'application/yaml' }));
    assert.deepEqual(again.changes, [{ action: 'update', object: 'settings' }], JSON.stringify(again));
    assert.equal(again.created + again.deleted, 0, JSON.stringify(again));

    // The CLI reads the same.
    const r = await srv.cli(['get', 'systems', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), before.systems);

    // And keys keep working after the restart.
    const k = ok(await srv.api('POST', '/api/v1/keys', { alg: 'ES384' }), 201);
    assert.equal(k.status, 'published');
    assert.ok(ok(await srv.api('GET', '/oauth/jwks', undefined, { token: null })).keys.some((j) => j.kid === k.kid));
  });

  test('a second restart is as good as the first', async () => {
    const before = await snapshot(srv);
    assertCleanExit(assert, await srv.restart());
    const afterRestart = await snapshot(srv);
    for (const kind of KINDS) assert.deepEqual(afterRestart[kind], before[kind]);
    assert.deepEqual([...afterRestart.keys].sort(byKid), [...before.keys].sort(byKid));
    assert.deepEqual([...afterRestart.jwks.keys].sort(byKid), [...before.jwks.keys].sort(byKid));
  });
});

describe('operations endpoints', () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    if (srv) assertCleanExit(assert, await srv.close());
  });

  test('/healthz and /readyz answer 200 without a token', async () => {
    const h = await srv.api('GET', '/healthz', undefined, { token: null });
    assert.equal(h.status, 200, h.text);
    const r = await srv.api('GET', '/readyz', undefined, { token: null });
    assert.equal(r.status, 200, r.text);
    assertFields(r.json, { status: 'ready' });
    assert.ok(r.json.checks && Object.values(r.json.checks).every((v) => v === true), r.text);
  });

  test('/metrics is Prometheus text and mcpauth_http_requests_total grows', async () => {
    const get = async () => {
      const r = await srv.api('GET', '/metrics', undefined, { token: null });
      assert.equal(r.status, 200);
      assert.match(r.headers['content-type'] || '', /^text\/plain\b/);
      return r.text;
    };
    const text = await get();
    assert.match(text, /^# TYPE mcpauth_http_requests_total counter$/m);
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? [-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|NaN|[-+]?Inf)$/, `not a Prometheus sample: ${line}`);
    }
    const health0 = sample(text, 'mcpauth_http_requests_total', 'healthz') || 0;
    const admin0 = sample(text, 'mcpauth_http_requests_total', '"404"') || 0;
    for (let i = 0; i < 3; i++) ok(await srv.api('GET', '/healthz', undefined, { token: null }));
    assertError(await srv.api('GET', '/api/v1/systems/metrics-probe'), 404);
    // A request is counted once it completes, which may be a moment after its answer.
    const grown = await eventually(async () => {
      const t = await get();
      const h = sample(t, 'mcpauth_http_requests_total', 'healthz') || 0;
      const a = sample(t, 'mcpauth_http_requests_total', '"404"') || 0;
      return h >= health0 + 3 && a >= admin0 + 1 ? t : null;
    });
    assert.ok(grown, `mcpauth_http_requests_total did not grow:\n${await get()}`);
    assert.equal(sample(grown, 'mcpauth_http_requests_total', 'healthz'), health0 + 3, 'each request counted exactly once');
  });

  test('/metrics and the probes are not under the admin token, and do not need it', async () => {
    for (const p of ['/healthz', '/readyz', '/metrics', '/oauth/jwks']) {
      const r = await request(srv.url + p);
      assert.equal(r.status, 200, `${p}: ${r.status}`);
    }
  });
});

describe('shutdown', () => {
  test('SIGTERM ends the server with exit status 0 and closes the port', async () => {
    const srv = await startServer();
    ok(await srv.api('POST', '/api/v1/systems', { id: 'before-shutdown', audience: 'https://x.example/' }), 201);
    const stopped = await srv.stop('SIGTERM');
    try {
      assertCleanExit(assert, stopped);
      await assert.rejects(request(`${srv.url}/healthz`), /ECONNREFUSED/);
    } finally {
      await srv.close();
    }
  });

  test('SIGINT ends the server with exit status 0', async () => {
    const srv = await startServer();
    const stopped = await srv.stop('SIGINT');
    await srv.close();
    assertCleanExit(assert, stopped);
  });

  test('a second server refuses a port already in use', async () => {
    const a = await startServer();
    const dir = await tempDir();
    try {
      // Spawned by hand: the second process must exit by itself, non-zero, saying why.
      const child = spawn(binary, ['serve', '--dev', '--listen', `127.0.0.1:${a.port}`, '--data-dir', dir],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += d; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      const [code] = await once(child, 'exit');
      clearTimeout(timer);
      assert.notEqual(code, 0, 'the second server must not run');
      assert.match(stderr, /cannot listen/);
      // The first one is untouched and still answers with its own token.
      for (let i = 0; i < 8; i++) ok(await a.api('GET', '/api/v1/settings'));
    } finally {
      assertCleanExit(assert, await a.close());
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
