// Signing keys end to end: the JWKS, the key lifecycle through the CLI and the
// API (create, activate, retire), the rules that keep a signing key, and the
// private keys sealed at rest.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';

import * as jose from 'jose';

import { assertError, assertFields, ok } from './lib/check.mjs';
import { assertCleanExit, logServersOnFailure, startServer } from './lib/server.mjs';
import { haveSqlite, query } from './lib/sqlite.mjs';

logServersOnFailure();

// What each algorithm's public JWK looks like.
const SHAPE = {
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
  PS256: { kty: 'RSA' },
  RS256: { kty: 'RSA' },
};
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

let srv;

before(async () => {
  srv = await startServer();
});

after(async () => {
  if (srv) assertCleanExit(assert, await srv.close());
});

async function jwks() {
  const r = await srv.api('GET', '/oauth/jwks', undefined, { token: null });
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers['content-type'] || '', /^application\/(jwk-set\+)?json\b/);
  assert.deepEqual(Object.keys(r.json), ['keys']);
  return r.json.keys;
}

async function keys() {
  return ok(await srv.api('GET', '/api/v1/keys'));
}

async function keyOf(kid) {
  return ok(await srv.api('GET', `/api/v1/keys/${encodeURIComponent(kid)}`));
}

/** Checks one JWKS entry is a usable public key of its algorithm. */
async function assertPublicJwk(jwk) {
  const what = JSON.stringify(jwk);
  assert.equal(typeof jwk.kid, 'string', what);
  assert.ok(jwk.kid.length > 0, what);
  assert.equal(jwk.use, 'sig', what);
  assert.ok(SHAPE[jwk.alg], `unexpected alg: ${what}`);
  assertFields(jwk, SHAPE[jwk.alg], jwk.kid);
  for (const m of PRIVATE_MEMBERS) assert.equal(jwk[m], undefined, `private member ${m} published: ${what}`);
  const key = await jose.importJWK(jwk, jwk.alg);
  assert.equal(key.type, 'public', what);
  if (jwk.kty === 'RSA') assert.ok(Buffer.from(jwk.n, 'base64url').length >= 256, `RSA key under 2048 bits: ${jwk.kid}`);
}

async function cliCreate(alg) {
  const r = await srv.cli(['keys', 'create', '--alg', alg]);
  assert.equal(r.code, 0, r.stderr);
  const m = r.stdout.match(/^key\/(\S+) created \((\S+), (\S+)\)$/m);
  assert.ok(m, `unexpected output: ${r.stdout}`);
  assert.equal(m[2], alg);
  return { kid: m[1], status: m[3] };
}

test('the JWKS holds the ES256 key at start, as a valid public key', async () => {
  const published = await jwks();
  assert.equal(published.length, 1, JSON.stringify(published));
  const [jwk] = published;
  assert.equal(jwk.alg, 'ES256');
  await assertPublicJwk(jwk);
  const all = await keys();
  assert.equal(all.length, 1);
  assertFields(all[0], { kid: jwk.kid, alg: 'ES256', status: 'active', public_jwk: jwk });
  assert.equal(typeof all[0].created, 'number');
  assert.ok(Math.abs(all[0].created - Date.now() / 1000) < 600, `created: ${all[0].created}`);
  assert.deepEqual(await keyOf(jwk.kid), all[0]);
  ok(await srv.api('GET', '/readyz', undefined, { token: null }));
});

const created = {}; // alg -> [first, second]

test('keys create --alg: active when first of its algorithm, published when second', async () => {
  for (const alg of ['ES384', 'EdDSA', 'PS256']) {
    const first = await cliCreate(alg);
    assert.equal(first.status, 'active', `first ${alg} key`);
    const second = await cliCreate(alg);
    assert.equal(second.status, 'published', `second ${alg} key`);
    assert.notEqual(first.kid, second.kid);
    created[alg] = [first.kid, second.kid];
    assert.equal((await keyOf(first.kid)).status, 'active');
    assert.equal((await keyOf(second.kid)).status, 'published');
  }
  const published = await jwks();
  const kids = published.map((k) => k.kid);
  assert.equal(new Set(kids).size, kids.length, 'kids are unique');
  for (const [alg, pair] of Object.entries(created)) {
    for (const kid of pair) {
      const jwk = published.find((k) => k.kid === kid);
      assert.ok(jwk, `${kid} is not in the JWKS`);
      assert.equal(jwk.alg, alg);
      await assertPublicJwk(jwk);
      assert.deepEqual((await keyOf(kid)).public_jwk, jwk);
    }
  }
  for (const jwk of published) await assertPublicJwk(jwk);
  assert.equal(published.length, 7);

  // The CLI lists them too.
  const r = await srv.cli(['get', 'keys', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const listed = JSON.parse(r.stdout);
  assert.deepEqual(listed.map((k) => k.kid).sort(), kids.sort());
  const table = await srv.cli(['keys', 'list']);
  assert.equal(table.code, 0, table.stderr);
  for (const kid of kids) assert.ok(table.stdout.includes(kid), table.stdout);
});

test('activating the second key demotes the first to published', async () => {
  for (const [alg, [first, second]] of Object.entries(created)) {
    const r = await srv.cli(['keys', 'activate', second]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`key/${second} activated`));
    assert.equal((await keyOf(second)).status, 'active', alg);
    assert.equal((await keyOf(first)).status, 'published', alg);
    const active = (await keys()).filter((k) => k.alg === alg && k.status === 'active');
    assert.deepEqual(
      active.map((k) => k.kid),
      [second],
      `one active ${alg} key`,
    );
    const kids = (await jwks()).map((k) => k.kid);
    assert.ok(kids.includes(first) && kids.includes(second), 'both stay in the JWKS');
  }
  // Activating the active key again is a no-op.
  const again = await srv.api('POST', `/api/v1/keys/${created.ES384[1]}/activate`);
  assertFields(ok(again), { kid: created.ES384[1], status: 'active' });
});

test('a retired key leaves the JWKS, and cannot come back', async () => {
  const [first] = created.ES384;
  const r = await srv.cli(['keys', 'retire', first]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`key/${first} retired`));
  assert.equal((await keyOf(first)).status, 'retired');
  assert.ok(!(await jwks()).some((k) => k.kid === first), 'a retired key is not published');
  assert.ok((await keys()).some((k) => k.kid === first), 'a retired key is still listed');

  // Re-activating a retired key is a conflict.
  assertError(await srv.api('POST', `/api/v1/keys/${first}/activate`), 409, 'conflict', first);
  const c = await srv.cli(['keys', 'activate', first]);
  assert.equal(c.code, 1);
  assert.match(c.stderr, /retired/);
  assert.equal((await keyOf(first)).status, 'retired');
  assert.ok(!(await jwks()).some((k) => k.kid === first));
  // Retiring it again changes nothing.
  assertFields(ok(await srv.api('POST', `/api/v1/keys/${first}/retire`)), { status: 'retired' });

  // An algorithm that is neither the default nor maintained may lose its last active key.
  const [, eddsaActive] = created.EdDSA;
  assertFields(ok(await srv.api('POST', `/api/v1/keys/${eddsaActive}/retire`)), { status: 'retired' });
  assert.ok(!(await jwks()).some((k) => k.kid === eddsaActive));
});

test('retiring the only active ES256 key is a 409, and it keeps signing', async () => {
  const es = (await keys()).filter((k) => k.alg === 'ES256' && k.status === 'active');
  assert.equal(es.length, 1);
  const kid = es[0].kid;
  assertError(await srv.api('POST', `/api/v1/keys/${kid}/retire`), 409, 'conflict', kid);
  const c = await srv.cli(['keys', 'retire', kid]);
  assert.equal(c.code, 1);
  assert.match(c.stderr, /ES256/);
  assert.equal((await keyOf(kid)).status, 'active');
  assert.ok((await jwks()).some((k) => k.kid === kid));
  ok(await srv.api('GET', '/readyz', undefined, { token: null }));

  // With a second ES256 key active, the first can go.
  const next = await cliCreate('ES256');
  assert.equal(next.status, 'published');
  assertFields(ok(await srv.api('POST', `/api/v1/keys/${next.kid}/activate`)), { status: 'active' });
  assertFields(ok(await srv.api('POST', `/api/v1/keys/${kid}/retire`)), { status: 'retired' });
  const published = (await jwks()).map((k) => k.kid);
  assert.ok(published.includes(next.kid) && !published.includes(kid));
  ok(await srv.api('GET', '/readyz', undefined, { token: null }));
});

test('bad key requests are refused', async () => {
  const count = (await keys()).length;
  for (const body of [{ alg: 'HS256' }, { alg: 'none' }, { alg: 'es256' }, { alg: 'ES256', extra: 1 }, {}, { alg: 256 }]) {
    assertError(await srv.api('POST', '/api/v1/keys', body), 400, 'invalid_request');
  }
  assertError(await srv.api('GET', '/api/v1/keys/no-such-kid'), 404, 'not_found');
  assertError(await srv.api('POST', '/api/v1/keys/no-such-kid/activate'), 404, 'not_found');
  assertError(await srv.api('POST', '/api/v1/keys/no-such-kid/retire'), 404, 'not_found');
  assertError(await srv.api('POST', `/api/v1/keys/${created.PS256[0]}/destroy`), 404, 'not_found');
  assertError(await srv.api('DELETE', `/api/v1/keys/${created.PS256[0]}`), 405, 'method_not_allowed');
  const noAlg = await srv.cli(['keys', 'create']);
  assert.equal(noAlg.code, 2, 'usage error');
  const badAlg = await srv.cli(['keys', 'create', '--alg', 'HS256']);
  assert.equal(badAlg.code, 1, 'refused by the server');
  const del = await srv.cli(['delete', 'keys', created.PS256[0]]);
  assert.equal(del.code, 2, 'keys are not deleted');
  assert.equal((await keys()).length, count);
});

test('keys created at the same time: exactly one becomes active', async () => {
  assert.equal((await keys()).filter((k) => k.alg === 'EdDSA' && k.status === 'active').length, 0, 'no active EdDSA key left by the tests above');
  const answers = await Promise.all(Array.from({ length: 5 }, () => srv.api('POST', '/api/v1/keys', { alg: 'EdDSA' })));
  for (const r of answers) assert.equal(r.status, 201, r.text);
  assert.deepEqual(answers.map((r) => r.json.status).sort(), ['active', 'published', 'published', 'published', 'published']);
  const active = (await keys()).filter((k) => k.alg === 'EdDSA' && k.status === 'active');
  assert.equal(active.length, 1);
  const published = await jwks();
  for (const r of answers) assert.ok(published.some((k) => k.kid === r.json.kid), `${r.json.kid} is not in the JWKS`);
});

test('private keys are sealed at rest: no PEM, no JWK "d", no KEK in the database', async () => {
  const files = ['mcpauth.db', 'mcpauth.db-wal'].map((f) => path.join(srv.dataDir, f));
  const blobs = [];
  for (const f of files) {
    try {
      blobs.push([f, await fs.readFile(f)]);
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
  }
  assert.ok(blobs.length > 0, 'no database file');
  const kek = await fs.readFile(path.join(srv.dataDir, 'kek'));
  assert.ok(kek.length >= 32, 'the KEK file holds at least 256 bits');
  for (const [f, bytes] of blobs) {
    assert.equal(bytes.indexOf('-----BEGIN'), -1, `${f} holds a PEM block`);
    assert.equal(bytes.indexOf('PRIVATE KEY'), -1, `${f} holds a PEM private key`);
    assert.equal(bytes.indexOf('"d":"'), -1, `${f} holds a JWK private member`);
    assert.equal(bytes.indexOf(kek), -1, `${f} holds the KEK`);
  }
  for (const f of ['admin.token', 'kek']) {
    const st = await fs.stat(path.join(srv.dataDir, f));
    assert.equal(st.mode & 0o077, 0, `${f} is readable by others: ${(st.mode & 0o777).toString(8)}`);
  }

  if (!haveSqlite()) return; // the byte scan above is what can be checked without sqlite3
  const rows = query(srv.dbPath, 'SELECT kid, alg, status, public_jwk, sealed FROM signing_keys');
  const listed = await keys();
  assert.deepEqual(rows.map((r) => r.kid).sort(), listed.map((k) => k.kid).sort());
  const seen = new Set();
  for (const row of rows) {
    assert.match(row.sealed, /^v1\./, `${row.kid}: sealed value does not start with v1.`);
    assert.ok(!seen.has(row.sealed), 'two keys sealed alike');
    seen.add(row.sealed);
    const jwk = JSON.parse(row.public_jwk);
    for (const m of PRIVATE_MEMBERS) assert.equal(jwk[m], undefined, `${row.kid}: public_jwk holds ${m}`);
    assert.ok(!row.sealed.includes(jwk.x || jwk.n), `${row.kid}: sealed value shows the public key`);
  }
});
