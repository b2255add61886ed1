// A server killed with SIGKILL under load loses no event of a token a client
// received: every token is answered only after its token.request event is
// committed (spec/policy.md step 11), so each jti a client holds is in SQLite
// as the token.id of a granted event, however abruptly the process died.
// Restarted on the same data directory, the server starts and the hash chain
// of the log still verifies, and goes on.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assertAuditChain, auditEvents, auditLastSeq } from './lib/audit.mjs';
import { CC, JB, TE, TT_ID_JAG, TT_ID_TOKEN, assertOAuthError, decode, devIdToken, oauthPost, startTokenServer, tokenRequest } from './lib/oauth.mjs';
import { assertCleanExit, logServersOnFailure } from './lib/server.mjs';
import { haveSqlite, query } from './lib/sqlite.mjs';

logServersOnFailure();

const skip = haveSqlite() ? false : 'the sqlite3 shell is not installed (scripts/deps.sh test installs it)';
const LOOPS = 16;
const RUN_MS = 3000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('SIGKILL under load: every token a client received has its granted event; the chain verifies after a restart', { skip, timeout: 30_000 }, async (t) => {
  const env = await startTokenServer();
  const { srv } = env;
  t.after(async () => {
    await srv.kill();
    await srv.close();
  });
  const secret = env.secrets['build-bot'];
  const ask = () => tokenRequest(srv, { grant_type: CC, resource: env.docsResource, scope: 'docs:read' }, { post: ['build-bot', secret] });
  // Warm the secret cache so the load is the token path, not the password hash.
  assert.equal((await ask()).status, 200);
  // Before the load: an ID-JAG used once, and a token revoked. Both must stay so.
  const basic = ['desktop-agent', env.secrets['desktop-agent']];
  const idToken = await devIdToken(srv, 'mona@example.com', ['engineering']);
  const jagRes = await tokenRequest(srv, { grant_type: TE, requested_token_type: TT_ID_JAG, audience: env.issuer, resource: env.docsResource, scope: 'docs:read', subject_token: idToken, subject_token_type: TT_ID_TOKEN }, { basic });
  assert.equal(jagRes.status, 200, jagRes.text);
  const used = await tokenRequest(srv, { grant_type: JB, assertion: jagRes.json.access_token }, { basic });
  assert.equal(used.status, 200, used.text);
  assert.equal((await oauthPost(srv, '/oauth/revoke', { token: used.json.access_token }, { basic })).status, 200);
  const before = auditLastSeq(srv.dbPath);

  const received = []; // jti of every 200 a client got
  const stats = { ok: 0, refused: 0, errors: 0, other: {} };
  const started = Date.now();
  let killedAt = 0;
  const loop = async () => {
    while (Date.now() - started < RUN_MS) {
      try {
        const r = await ask();
        if (r.status === 200) {
          received.push(decode(r.json.access_token).payload.jti);
          stats.ok++;
        } else {
          stats.other[r.status] = (stats.other[r.status] || 0) + 1;
        }
      } catch {
        // Connection refused or reset: the server is gone. Keep trying until the time is up.
        stats.errors++;
        if (killedAt) await sleep(20);
      }
    }
  };
  const killer = (async () => {
    await sleep(RUN_MS * 0.6 + Math.random() * RUN_MS * 0.15);
    assert.equal(srv.exit, null, 'the server is still running before the kill');
    killedAt = Date.now();
    srv.child.kill('SIGKILL'); // no graceful stop: no drain, no checkpoint
    return srv.exited;
  })();
  await Promise.all([...Array.from({ length: LOOPS }, loop), killer]);
  const exit = await srv.exited;
  assert.equal(exit.signal, 'SIGKILL', `the server died of ${JSON.stringify(exit)}`);
  t.diagnostic(`${stats.ok} tokens in ${killedAt - started} ms before the kill, ${stats.errors} failed connections, other answers ${JSON.stringify(stats.other)}`);
  assert.ok(received.length >= 100, `too little load to mean anything: ${received.length} tokens`);
  assert.deepEqual(stats.other, {}, 'every answer was a 200 until the server died');
  assert.equal(new Set(received).size, received.length, 'every jti is unique');

  // What the dead server's database says (SQLite recovers the WAL on open).
  const rows = query(
    srv.dbPath,
    `SELECT json_extract(doc, '$.token.id') AS jti FROM audit_events WHERE seq > ${before} AND type = 'token.request' AND outcome = 'granted'`,
  );
  const logged = new Set(rows.map((r) => r.jti));
  const lost = received.filter((j) => !logged.has(j));
  assert.deepEqual(lost.slice(0, 10), [], `${lost.length} of ${received.length} tokens a client received have no granted event`);
  // Events may exist for tokens whose answer never arrived, never the other way round.
  assert.ok(logged.size >= received.length);

  // Restart on the same data directory: it starts, the chain verifies, and goes on.
  await srv.start();
  const chain = assertAuditChain(srv.dbPath);
  assert.ok(chain.length >= before + received.length);
  // The used ID-JAG is still used, the revoked token still revoked.
  assertOAuthError(await tokenRequest(srv, { grant_type: JB, assertion: jagRes.json.access_token }, { basic }), 'invalid_subject_token', /replay|used/);
  const intro = await oauthPost(srv, '/oauth/introspect', { token: used.json.access_token }, { basic });
  assert.equal(intro.status, 200, intro.text);
  assert.deepEqual(intro.json, { active: false });

  const last = auditLastSeq(srv.dbPath);
  const r = await ask();
  assert.equal(r.status, 200, r.text);
  const after = auditEvents(srv.dbPath, last);
  assert.equal(after.length, 1);
  assert.equal(after[0].seq, last + 1);
  assert.equal(after[0].doc.token.id, decode(r.json.access_token).payload.jti);
  const whole = assertAuditChain(srv.dbPath);
  const lastBeforeKill = chain[chain.length - 1];
  const firstAfter = whole[lastBeforeKill.seq]; // seq n is at index n - 1
  assert.equal(firstAfter.seq, lastBeforeKill.seq + 1);
  assert.equal(firstAfter.doc.prev_hash, lastBeforeKill.hash, 'the first event after the restart chains to the last before the kill');
  assertCleanExit(assert, await srv.stop());
});
