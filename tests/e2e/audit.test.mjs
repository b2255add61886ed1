// The audit trail of admin changes, read straight from SQLite (there is no log
// API yet): one admin.change event per changed object, key.rotate for keys,
// secrets masked, nothing for a refused change, and one unbroken hash chain.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { assertError, assertFields, ok } from './lib/check.mjs';
import { assertCleanExit, logServersOnFailure, repoRoot, startServer } from './lib/server.mjs';
import { haveSqlite, query } from './lib/sqlite.mjs';

logServersOnFailure();

const skip = haveSqlite() ? false : 'the sqlite3 shell is not installed (scripts/deps.sh test installs it)';
const SECRETS = ['dev-only-secret', 'dev-only-bot-secret'];

let srv;

before(async () => {
  if (!skip) srv = await startServer();
});

after(async () => {
  if (srv) assertCleanExit(assert, await srv.close());
});

/** Events after `seq`, in order, with the document parsed. */
function events(afterSeq = 0) {
  const rows = query(
    srv.dbPath,
    `SELECT seq, id, time, type, outcome, severity, reason, user, client, system, doc, hash FROM audit_events WHERE seq > ${Number(afterSeq)} ORDER BY seq`,
  );
  return rows.map((r) => ({ ...r, raw: r.doc, doc: JSON.parse(r.doc) }));
}

function lastSeq() {
  const [row] = query(srv.dbPath, 'SELECT COALESCE(MAX(seq), 0) AS n FROM audit_events');
  return row.n;
}

/** JSON with object keys sorted at every level, no whitespace. */
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** spec/audit-event.md: hash = SHA-256 over prev_hash and the canonical JSON without hash. */
function expectedHash(doc) {
  const { hash, ...rest } = doc;
  return crypto
    .createHash('sha256')
    .update((doc.prev_hash || '') + canonical(rest))
    .digest('base64url');
}

/** The whole log: seq 1..n without gaps, each event chained to the one before. */
function assertChain() {
  const all = events(0);
  assert.ok(all.length > 0, 'the log is empty');
  all.forEach((e, i) => {
    const where = `event seq ${e.seq}`;
    assert.equal(e.seq, i + 1, `${where}: seq has a gap or does not start at 1`);
    assert.equal(e.doc.seq, e.seq, `${where}: doc.seq`);
    assert.equal(e.doc.id, e.id, `${where}: doc.id`);
    assert.equal(e.doc.type, e.type, `${where}: doc.type`);
    assert.equal(e.doc.outcome, e.outcome, `${where}: doc.outcome`);
    assert.equal(e.doc.hash, e.hash, `${where}: doc.hash`);
    assert.match(e.hash, /^[A-Za-z0-9_-]{43}$/, `${where}: hash is not a base64url SHA-256`);
    assert.equal(e.doc.prev_hash, i === 0 ? null : all[i - 1].hash, `${where}: prev_hash is not the previous event's hash`);
    assert.equal(e.hash, expectedHash(e.doc), `${where}: hash does not match the event`);
  });
  const ids = new Set(all.map((e) => e.id));
  assert.equal(ids.size, all.length, 'event ids are unique');
  return all;
}

function assertAdminEvent(e, { type = 'admin.change', action, object }) {
  const where = `event ${e.seq}: ${e.raw}`;
  assert.equal(e.type, type, where);
  assert.equal(e.outcome, 'success', where);
  assert.equal(e.severity, 'info', where);
  assertFields(e.doc, { type, action, object, actor: 'admin-token' }, `event ${e.seq}`);
  assert.equal(e.doc.request?.endpoint, 'admin', where);
  assert.equal(e.doc.request?.client_ip, '127.0.0.1', where);
  assert.match(e.doc.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, where);
  assert.ok(e.doc.changes && typeof e.doc.changes === 'object', where);
  // Every event has the common fields, null when they do not apply.
  for (const f of ['reason', 'status_detail', 'user', 'groups', 'client', 'system', 'audience', 'access_policy', 'scopes', 'token', 'prev_hash']) {
    assert.ok(f in e.doc, `${where}: no ${f}`);
  }
}

test('the start-up key is recorded and the log starts a chain', { skip }, async () => {
  const all = assertChain();
  const [key] = ok(await srv.api('GET', '/api/v1/keys'));
  const rotate = all.find((e) => e.type === 'key.rotate' && e.doc.object === `key:${key.kid}`);
  assert.ok(rotate, `no key.rotate event for the start-up key ${key.kid}`);
  assertFields(rotate.doc, { action: 'create', outcome: 'success' });
  assert.deepEqual(rotate.doc.changes.after, { alg: 'ES256', status: 'active' });
});

test('apply: one admin.change event per changed object, none when nothing changes', { skip }, async () => {
  const from = lastSeq();
  const yaml = await fs.readFile(path.join(repoRoot, 'examples/policy.yaml'), 'utf8');
  const res = ok(await srv.api('POST', '/api/v1/apply', yaml, { contentType: 'application/yaml' }));
  const evs = events(from);
  assert.equal(evs.length, res.changes.length, evs.map((e) => e.raw).join('\n'));
  evs.forEach((e, i) => {
    assertAdminEvent(e, res.changes[i]);
    assert.equal(e.doc.changes.before, null, 'a create has nothing before');
    assert.ok(e.doc.changes.after, 'a create has an after');
  });
  const github = evs.find((e) => e.doc.object === 'system:github');
  assertFields(github.doc.changes.after, { id: 'github', audience: 'https://auth.github.example/', token_type: 'id-jag' });

  const again = ok(await srv.api('POST', '/api/v1/apply', yaml, { contentType: 'application/yaml' }));
  assert.equal(again.changes.length, 0);
  assert.equal(lastSeq(), from + evs.length, 'an apply that changes nothing records nothing');
});

test('create, update and delete each leave one event holding what changed', { skip }, async () => {
  let from = lastSeq();
  ok(await srv.api('POST', '/api/v1/systems', { id: 'au-sys', name: 'Audit one', audience: 'https://au.example/' }), 201);
  let evs = events(from);
  assert.equal(evs.length, 1);
  assertAdminEvent(evs[0], { action: 'create', object: 'system:au-sys' });
  assert.equal(evs[0].doc.changes.before, null);
  assertFields(evs[0].doc.changes.after, { id: 'au-sys', name: 'Audit one', audience: 'https://au.example/' });

  from = lastSeq();
  ok(await srv.api('PATCH', '/api/v1/systems/au-sys', { name: 'Audit two' }));
  evs = events(from);
  assert.equal(evs.length, 1);
  assertAdminEvent(evs[0], { action: 'update', object: 'system:au-sys' });
  assert.deepEqual(evs[0].doc.changes, { before: { name: 'Audit one' }, after: { name: 'Audit two' } }, 'an update records the changed members only');

  from = lastSeq();
  ok(await srv.api('PUT', '/api/v1/systems/au-sys', { id: 'au-sys', name: 'Audit two', audience: 'https://au.example/' }));
  assert.equal(lastSeq(), from, 'a replace that changes nothing records nothing');

  ok(await srv.api('POST', '/api/v1/grants', { subject: 'group:auditors', system: 'au-sys', scopes: ['x'] }), 201);
  evs = events(from);
  assert.equal(evs.length, 1);
  assertAdminEvent(evs[0], { action: 'create', object: 'grant:au-sys:group:auditors' });

  from = lastSeq();
  assert.equal((await srv.api('DELETE', `/api/v1/grants/${encodeURIComponent('au-sys:group:auditors')}`)).status, 204);
  assert.equal((await srv.api('DELETE', '/api/v1/systems/au-sys')).status, 204);
  evs = events(from);
  assert.equal(evs.length, 2);
  assertAdminEvent(evs[0], { action: 'delete', object: 'grant:au-sys:group:auditors' });
  assertAdminEvent(evs[1], { action: 'delete', object: 'system:au-sys' });
  assert.equal(evs[1].doc.changes.after, null);
  assertFields(evs[1].doc.changes.before, { id: 'au-sys', name: 'Audit two' });

  // The CLI's changes are the same admin changes.
  from = lastSeq();
  const file = path.join(srv.workDir, 'audit-cli.json');
  await fs.writeFile(file, JSON.stringify({ systems: [{ id: 'au-cli', audience: 'https://au-cli.example/' }] }));
  const c = await srv.cli(['apply', '-f', file]);
  assert.equal(c.code, 0, c.stderr);
  const d = await srv.cli(['delete', 'system', 'au-cli']);
  assert.equal(d.code, 0, d.stderr);
  evs = events(from);
  assert.deepEqual(
    evs.map((e) => [e.doc.action, e.doc.object, e.doc.actor]),
    [
      ['create', 'system:au-cli', 'admin-token'],
      ['delete', 'system:au-cli', 'admin-token'],
    ],
  );
});

test('client secrets are masked in events: no cleartext, no hash', { skip }, async () => {
  const s1 = `audit-cleartext-${crypto.randomUUID()}`;
  const s2 = `audit-cleartext-${crypto.randomUUID()}`;
  const s3 = `audit-cleartext-${crypto.randomUUID()}`;
  let from = lastSeq();
  ok(await srv.api('POST', '/api/v1/clients', { id: 'au-client', auth: 'client_secret_basic', secret: s1 }), 201);
  let evs = events(from);
  assert.equal(evs.length, 1);
  assertAdminEvent(evs[0], { action: 'create', object: 'client:au-client' });
  assert.equal(evs[0].doc.changes.after.secret_hash, '***');

  from = lastSeq();
  ok(await srv.api('PATCH', '/api/v1/clients/au-client', { secret: s2 }));
  evs = events(from);
  assert.equal(evs.length, 1);
  assertAdminEvent(evs[0], { action: 'update', object: 'client:au-client' });
  assert.ok(/\*\*\*/.test(evs[0].doc.changes.before.secret_hash) && /\*\*\*/.test(evs[0].doc.changes.after.secret_hash), `a secret change shows, masked: ${evs[0].raw}`);

  ok(await srv.api('POST', '/api/v1/apply', { clients: [{ id: 'au-client-2', auth: 'client_secret_post', secret: s3 }] }));
  const generated = ok(await srv.api('POST', '/api/v1/clients', { id: 'au-client-3', auth: 'client_secret_post' }), 201).secret;
  assert.ok(generated);

  const rows = query(srv.dbPath, 'SELECT doc FROM audit_events');
  const text = rows.map((r) => r.doc).join('\n');
  for (const s of [s1, s2, s3, generated, ...SECRETS]) assert.ok(!text.includes(s), `a cleartext secret is in the log: ${s}`);
  assert.doesNotMatch(text, /pbkdf2/i, 'a secret hash is in the log');
  for (const id of ['au-client', 'au-client-2', 'au-client-3']) assert.equal((await srv.api('DELETE', `/api/v1/clients/${id}`)).status, 204);
});

test('a refused change records nothing', { skip }, async () => {
  ok(await srv.api('POST', '/api/v1/systems', { id: 'au-ref-sys', audience: 'https://au-ref.example/' }), 201);
  ok(await srv.api('POST', '/api/v1/clients', { id: 'au-ref-client', auth: 'none' }), 201);
  ok(await srv.api('POST', '/api/v1/access-policies', { id: 'au-ref-policy', client: 'au-ref-client', system: 'au-ref-sys' }), 201);
  const from = lastSeq();
  const esKid = ok(await srv.api('GET', '/api/v1/keys')).find((k) => k.alg === 'ES256' && k.status === 'active').kid;

  assertError(await srv.api('POST', '/api/v1/grants', { subject: 'user:x', system: 'au-nope', scopes: ['a'] }), 400);
  assertError(await srv.api('POST', '/api/v1/apply', { systems: [{ id: 'au-a1', audience: 'https://a1.example/' }, { id: 'au-a2', audience: 'https://a2.example/', colour: 'red' }] }), 400);
  assertError(await srv.api('POST', '/api/v1/systems', { id: 'au-ref-sys', audience: 'https://au-ref.example/' }), 409);
  assertError(await srv.api('DELETE', '/api/v1/systems/au-ref-sys'), 409);
  assertError(await srv.api('PATCH', '/api/v1/settings', { default_signing_alg: 'HS256' }), 400);
  assertError(await srv.api('POST', '/api/v1/systems', { id: 'au-415', audience: 'https://x.example/' }, { contentType: 'text/plain' }), 415);
  assertError(await srv.api('POST', '/api/v1/systems', { id: 'au-401', audience: 'https://x.example/' }, { token: 'wrong' }), 401);
  assertError(await srv.api('POST', '/api/v1/systems', Buffer.alloc(1024 * 1024 + 1, 0x20), { headers: { expect: '100-continue' } }), 413);
  assertError(await srv.api('POST', `/api/v1/keys/${esKid}/retire`), 409);
  assertError(await srv.api('POST', '/api/v1/keys', { alg: 'HS256' }), 400);
  assertError(await srv.api('DELETE', '/api/v1/systems/au-never-was'), 404);
  const c = await srv.cli(['delete', 'system', 'au-ref-sys']);
  assert.equal(c.code, 1);

  assert.equal(lastSeq(), from, `refused changes were recorded: ${events(from).map((e) => e.raw).join('\n')}`);

  assert.equal((await srv.api('DELETE', '/api/v1/access-policies/au-ref-policy')).status, 204);
  assert.equal((await srv.api('DELETE', '/api/v1/clients/au-ref-client')).status, 204);
  assert.equal((await srv.api('DELETE', '/api/v1/systems/au-ref-sys')).status, 204);
});

test('key changes write key.rotate events', { skip }, async () => {
  let from = lastSeq();
  const first = ok(await srv.api('POST', '/api/v1/keys', { alg: 'ES384' }), 201);
  let evs = events(from);
  assert.equal(evs.length, 1, evs.map((e) => e.raw).join('\n'));
  assertAdminEvent(evs[0], { type: 'key.rotate', action: 'create', object: `key:${first.kid}` });
  assert.deepEqual(evs[0].doc.changes.after, { alg: 'ES384', status: 'active' });

  const second = ok(await srv.api('POST', '/api/v1/keys', { alg: 'ES384' }), 201);
  from = lastSeq();
  ok(await srv.api('POST', `/api/v1/keys/${second.kid}/activate`));
  evs = events(from);
  assert.equal(evs.length, 2, evs.map((e) => e.raw).join('\n'));
  const byObject = Object.fromEntries(evs.map((e) => [e.doc.object, e]));
  assertAdminEvent(byObject[`key:${first.kid}`], { type: 'key.rotate', action: 'publish', object: `key:${first.kid}` });
  assert.deepEqual(byObject[`key:${first.kid}`].doc.changes, { before: { alg: 'ES384', status: 'active' }, after: { alg: 'ES384', status: 'published' } });
  assertAdminEvent(byObject[`key:${second.kid}`], { type: 'key.rotate', action: 'activate', object: `key:${second.kid}` });
  assert.deepEqual(byObject[`key:${second.kid}`].doc.changes, { before: { alg: 'ES384', status: 'published' }, after: { alg: 'ES384', status: 'active' } });

  from = lastSeq();
  ok(await srv.api('POST', `/api/v1/keys/${first.kid}/retire`));
  evs = events(from);
  assert.equal(evs.length, 1);
  assertAdminEvent(evs[0], { type: 'key.rotate', action: 'retire', object: `key:${first.kid}` });
  assert.deepEqual(evs[0].doc.changes.after, { alg: 'ES384', status: 'retired' });

  // Through the CLI, and a key made because the settings now ask for one.
  from = lastSeq();
  const c = await srv.cli(['keys', 'create', '--alg', 'EdDSA']);
  assert.equal(c.code, 0, c.stderr);
  ok(await srv.api('PATCH', '/api/v1/settings', { default_signing_alg: 'PS256' }));
  evs = events(from);
  assert.deepEqual(
    evs.map((e) => [e.type, e.doc.action, e.doc.object.replace(/^(key:[a-z0-9]+)-.*/, '$1')]),
    [
      ['key.rotate', 'create', 'key:eddsa'],
      ['admin.change', 'update', 'settings'],
      ['key.rotate', 'create', 'key:ps256'],
    ],
  );
  assert.deepEqual(evs[1].doc.changes, { before: { default_signing_alg: 'ES256' }, after: { default_signing_alg: 'PS256' } });
  for (const e of evs) assert.equal(e.doc.actor, 'admin-token');
  ok(await srv.api('PATCH', '/api/v1/settings', { default_signing_alg: 'ES256' }));
});

test('changes made at the same time are serialised into the one chain', { skip }, async () => {
  const from = lastSeq();
  const creates = Array.from({ length: 20 }, (_, i) => srv.api('POST', '/api/v1/systems', { id: `au-conc-${i}`, audience: `https://conc${i}.example/` }));
  const dups = Array.from({ length: 6 }, () => srv.api('POST', '/api/v1/systems', { id: 'au-conc-dup', audience: 'https://dup.example/' }));
  const answers = await Promise.all([...creates, ...dups]);
  for (const r of answers.slice(0, 20)) assert.equal(r.status, 201, r.text);
  assert.deepEqual(answers.slice(20).map((r) => r.status).sort(), [201, 409, 409, 409, 409, 409]);
  const evs = events(from);
  assert.equal(evs.length, 21, evs.map((e) => e.raw).join('\n'));
  assert.deepEqual(evs.map((e) => e.doc.object).sort(), [...Array.from({ length: 20 }, (_, i) => `system:au-conc-${i}`), 'system:au-conc-dup'].sort());
  for (const e of evs) assertAdminEvent(e, { action: 'create', object: e.doc.object });
  assertChain();
});

test('a restart records nothing and the chain goes on across it', { skip }, async () => {
  const from = lastSeq();
  assertCleanExit(assert, await srv.restart());
  assert.equal(lastSeq(), from, `start-up recorded events: ${events(from).map((e) => e.raw).join('\n')}`);
  ok(await srv.api('POST', '/api/v1/systems', { id: 'au-after-restart', audience: 'https://restart.example/' }), 201);
  const evs = events(from);
  assert.equal(evs.length, 1);
  assert.equal(evs[0].seq, from + 1);
  assertAdminEvent(evs[0], { action: 'create', object: 'system:au-after-restart' });
});

test('the whole log is one unbroken hash chain', { skip }, () => {
  const all = assertChain();
  const types = new Set(all.map((e) => e.type));
  assert.ok(types.has('admin.change') && types.has('key.rotate'), [...types].join(','));
});
