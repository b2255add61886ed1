// The live trace stream as a connection (spec/http-api.md "Live trace"; the
// socket is taken from libmicrohttpd and written by the trace hub's sender):
// a raw HTTP/1.1 client gets the exact response head (200, text/event-stream,
// no-store, nosniff, the request id, Connection: close, no chunking) and the
// opening comment, then entries as they come; subscribers that vanish abruptly
// (reset, half-written, never read) are let go (/metrics subscribers back to
// 0) and new ones are served; a stream outlives libmicrohttpd's 30 s
// connection timeout with keep-alives; and the server stops cleanly with a
// stream open.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { eventually, sleep } from './lib/check.mjs';
import { CC, startTokenServer, tokenRequest } from './lib/oauth.mjs';
import { assertCleanExit, logServersOnFailure } from './lib/server.mjs';
import { traceSubscribe } from './lib/sse.mjs';

logServersOnFailure();

const T = 60_000;
const OPENING = ': mcpauth live trace; entries are not retained\n\n';

let env;
const subs = [];

before(async () => {
  env = await startTokenServer();
});

after(async () => {
  // one stream is still open: the server must give its connection back before it stops
  if (env) assert.equal(await subscribers(), subs.length);
  if (env) assertCleanExit(assert, await env.srv.close());
  for (const s of subs) s.close();
});

function cc() {
  return tokenRequest(
    env.srv,
    { grant_type: CC, resource: env.docsResource, scope: 'docs:read' },
    { post: ['build-bot', env.secrets['build-bot']] },
  );
}

async function subscribers() {
  const r = await env.srv.api('GET', '/metrics', undefined, { token: null });
  assert.equal(r.status, 200);
  return Number(/^mcpauth_trace_subscribers (\d+)$/m.exec(r.text)[1]);
}

/** GET /api/v1/trace on a raw socket; resolves with the socket and everything read so far. */
async function raw(request) {
  const sock = net.connect({ host: '127.0.0.1', port: env.srv.port });
  await new Promise((r, j) => sock.once('connect', r).once('error', j));
  const conn = { sock, text: '', ended: false };
  sock.setEncoding('latin1');
  sock.on('data', (d) => (conn.text += d));
  sock.on('end', () => (conn.ended = true));
  sock.on('error', () => (conn.ended = true));
  sock.write(
    request ?? `GET /api/v1/trace HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${env.srv.token}\r\n\r\n`,
  );
  return conn;
}

describe('the stream on the wire', () => {
  test('a raw HTTP/1.1 client gets the exact head, the opening comment, then entries', { timeout: T }, async () => {
    const c = await raw();
    try {
      const ok = await eventually(() => c.text.includes(`\r\n\r\n${OPENING}`), { timeoutMs: 10_000 });
      assert.ok(ok, `no head and opening comment: ${JSON.stringify(c.text)}`);
      const [head, body] = c.text.split('\r\n\r\n');
      const [status, ...lines] = head.split('\r\n');
      assert.equal(status, 'HTTP/1.1 200 OK');
      const headers = Object.fromEntries(
        lines.map((l) => {
          const i = l.indexOf(':');
          return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
        }),
      );
      assert.equal(lines.length, Object.keys(headers).length, `a header twice: ${head}`);
      const { 'x-request-id': id, ...rest } = headers;
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.deepEqual(rest, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        'x-accel-buffering': 'no',
        connection: 'close',
      });
      assert.equal(body, OPENING); // close-delimited: no chunk sizes, no length
      assert.equal((await cc()).status, 200);
      const got = await eventually(() => c.text.split('\r\n\r\n')[1].length > OPENING.length, { timeoutMs: 10_000 });
      assert.ok(got, 'no entry');
      await sleep(50);
      const frame = c.text.split('\r\n\r\n')[1].slice(OPENING.length);
      assert.match(frame, /^event: trace\ndata: \{[^\n]*\}\n\n$/);
      const e = JSON.parse(frame.slice('event: trace\ndata: '.length));
      assert.equal(e.client_workload, 'build-bot');
      assert.equal(e.severity, 'info');
    } finally {
      c.sock.destroy();
    }
  });

  test('refused requests are ordinary answers: no token 401, bad filter 400, POST 405', { timeout: T }, async () => {
    for (const [req, status] of [
      ['GET /api/v1/trace HTTP/1.1\r\nHost: x\r\n\r\n', 401],
      [`GET /api/v1/trace?severity=debug HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${env.srv.token}\r\n\r\n`, 400],
      [`POST /api/v1/trace HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nAuthorization: Bearer ${env.srv.token}\r\n\r\n`, 405],
    ]) {
      const c = await raw(req);
      try {
        const ok = await eventually(() => /\r\n\r\n/.test(c.text), { timeoutMs: 10_000 });
        assert.ok(ok, `no answer to ${req}`);
        assert.match(c.text, new RegExp(`^HTTP/1\\.1 ${status} `), req);
        assert.match(c.text, /\r\nContent-Type: application\/json/i, req);
      } finally {
        c.sock.destroy();
      }
    }
  });
});

describe('subscribers that vanish', () => {
  test('reset, closed mid-request, or never reading: let go; new subscribers served', { timeout: T }, async () => {
    assert.equal(await subscribers(), 0);
    const open = [];
    for (let i = 0; i < 5; i++) open.push(await raw());
    await eventually(() => open.every((c) => c.text.includes(OPENING)), { timeoutMs: 10_000 });
    assert.equal(await subscribers(), 5);
    // entries pile up in two that never read
    open[3].sock.pause();
    open[4].sock.pause();
    for (let i = 0; i < 20; i++) assert.equal((await cc()).status, 200);
    open[0].sock.resetAndDestroy(); // RST
    open[1].sock.destroy(); // FIN
    open[2].sock.end(); // half-close: the server ends the stream too
    open[3].sock.resetAndDestroy(); // RST with unread data
    open[4].sock.destroy();
    // a request cut off before its head was complete never becomes a stream
    const cut = net.connect({ host: '127.0.0.1', port: env.srv.port });
    await new Promise((r) => cut.once('connect', r));
    cut.write(`GET /api/v1/trace HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthor`);
    cut.resetAndDestroy();
    const gone = await eventually(async () => (await subscribers()) === 0, { timeoutMs: 10_000 });
    assert.ok(gone, `mcpauth_trace_subscribers stays at ${await subscribers()}`);
    assert.ok(await eventually(() => open[2].ended), 'the half-closed client saw the end of the stream');

    const s = await traceSubscribe(env.srv);
    try {
      assert.equal(s.status, 200);
      assert.equal(await subscribers(), 1);
      assert.equal((await cc()).status, 200);
      const e = await s.entry(10_000);
      assert.equal(e.client_workload, 'build-bot');
    } finally {
      s.close();
    }
    assert.ok(await eventually(async () => (await subscribers()) === 0, { timeoutMs: 10_000 }));
  });
});

describe('a long stream', () => {
  test('outlives the 30 s connection timeout with keep-alives, and the server stops with it open', { timeout: 90_000 }, async () => {
    const s = await traceSubscribe(env.srv);
    subs.push(s); // left open for the server's stop (see after())
    assert.equal(s.status, 200);
    await sleep(36_000);
    assert.equal(s.queue.ended, null, `the stream ended: ${s.queue.ended}`);
    const keepAlives = s.queue.comments.filter((c) => c === 'keep-alive').length;
    assert.ok(keepAlives >= 2, `${keepAlives} keep-alives in 36 s (one every 15 s)`);
    assert.equal((await cc()).status, 200);
    const e = await s.entry(10_000);
    assert.equal(e.client_workload, 'build-bot');
  });
});
