// Receivers an exporter delivers to, for the exporter e2e tests: an HTTP
// receiver that records every request (webhook, Splunk HEC, Loki, Elasticsearch
// _bulk bodies parsed back into events), a TCP receiver that accepts and never
// reads, and a real rsyslogd with a private configuration.
//
//   const rx = await startHttpReceiver({ hmacSecret: 's3cret' });   // rx.url, rx.events, rx.ids()
//   await rx.stop(); await rx.start();                             // an outage, same port
//   const stuck = await startStuckReceiver();                      // stuck.port
//   const rs = await startRsyslog();                               // rs.port, rs.lines()
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { freePort } from './server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The events of one request body, per profile. Throws (the receiver then answers 400) on a malformed body. */
export function parseBody(profile, req) {
  const text = req.body.toString('utf8');
  switch (profile) {
    case 'webhook': {
      // json format: one event per line, each line ended by \n
      assert.ok(text.endsWith('\n'), 'a webhook body ends with a newline');
      return text
        .slice(0, -1)
        .split('\n')
        .map((l) => JSON.parse(l));
    }
    case 'splunk_hec': {
      // HEC batch: JSON objects one after another (here one a line)
      return text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => {
          const o = JSON.parse(l);
          assert.equal(typeof o.event, 'object', `a HEC object's event is the event object: ${l}`);
          assert.equal(o.fields?.event_id, o.event.id, `fields.event_id is the event id: ${l}`);
          assert.equal(typeof o.time, 'number', `a HEC time is a number: ${l}`);
          assert.ok(Math.abs(o.time * 1000 - Date.parse(o.event.time)) < 2, `HEC time ${o.time} is the event's ${o.event.time}`);
          return o.event;
        });
    }
    case 'loki': {
      const o = JSON.parse(text);
      assert.ok(Array.isArray(o.streams) && o.streams.length > 0, 'a Loki push has streams');
      const evs = [];
      for (const s of o.streams) {
        assert.equal(typeof s.stream, 'object', 'a Loki stream has labels');
        for (const v of s.values) {
          assert.ok(Array.isArray(v) && v.length === 2, `a Loki value is [ts, line]: ${JSON.stringify(v)}`);
          assert.equal(typeof v[0], 'string', 'the Loki timestamp is a string');
          assert.match(v[0], /^\d{19}$/, 'the Loki timestamp is nanoseconds since the epoch');
          const ev = JSON.parse(v[1]);
          assert.equal(v[0], timeNs(ev.time), `the Loki timestamp is the event's time ${ev.time}`);
          evs.push({ ...ev, _labels: s.stream });
        }
      }
      return evs;
    }
    case 'elastic': {
      assert.ok(text.endsWith('\n'), 'a _bulk body ends with a newline');
      const ls = text.slice(0, -1).split('\n');
      assert.equal(ls.length % 2, 0, 'a _bulk body is action/document pairs');
      const evs = [];
      for (let i = 0; i < ls.length; i += 2) {
        const action = JSON.parse(ls[i]);
        const doc = JSON.parse(ls[i + 1]);
        assert.deepEqual(Object.keys(action), ['create'], `a _bulk action is create: ${ls[i]}`);
        assert.equal(action.create._id, doc.id, '_id is the event id');
        assert.equal(typeof action.create._index, 'string', '_index');
        evs.push({ ...doc, _index: action.create._index });
      }
      return evs;
    }
    default:
      throw new Error(`unknown profile ${profile}`);
  }
}

/** RFC 3339 with up to nanoseconds -> nanoseconds since the epoch, as a decimal string. */
export function timeNs(t) {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(t);
  assert.ok(m, `not an RFC 3339 time: ${t}`);
  const secs = BigInt(Date.parse(`${m[1]}${m[3]}`)) / 1000n;
  const frac = BigInt((m[2] || '').padEnd(9, '0'));
  return (secs * 1_000_000_000n + frac).toString();
}

const hmac = (secret, body) => crypto.createHmac('sha256', secret).update(body).digest('hex');

/**
 * An HTTP receiver on a loopback port. Every request is recorded in `requests`
 * ({method, url, headers, body, at}); the events its body holds (per `profile`)
 * go to `events` in arrival order. With `hmacSecret`, each request's
 * X-Mcpauth-Signature is checked (a bad one is counted in badSignatures and
 * answered 401). `answer(req, events)`: {status, body} to answer instead of the
 * profile's success, or nothing for the success.
 */
export class HttpReceiver {
  constructor({ profile = 'webhook', hmacSecret, answer, port } = {}) {
    this.profile = profile;
    this.hmacSecret = hmacSecret;
    this.answer = answer;
    this.port = port;
    this.requests = [];
    this.events = [];
    this.badSignatures = 0;
    this.malformed = []; // parse errors
    this.server = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    if (!this.port) this.port = await freePort();
    const server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => this.handle(req, Buffer.concat(chunks), res));
    });
    server.keepAliveTimeout = 30_000;
    // Listening again on the port just closed: retry a little if the kernel still holds it.
    for (let i = 0; ; i++) {
      try {
        server.listen(this.port, '127.0.0.1');
        await once(server, 'listening');
        break;
      } catch (err) {
        if (err.code !== 'EADDRINUSE' || i > 50) throw err;
        await sleep(50);
      }
    }
    this.server = server;
    return this;
  }

  handle(req, body, res) {
    const rec = { method: req.method, url: req.url, headers: req.headers, body, at: Date.now() };
    this.requests.push(rec);
    if (this.hmacSecret !== undefined) {
      const want = `sha256=${hmac(this.hmacSecret, body)}`;
      if (req.headers['x-mcpauth-signature'] !== want) {
        this.badSignatures++;
        res.writeHead(401, { 'content-type': 'text/plain' }).end('bad signature');
        return;
      }
    }
    let evs;
    try {
      evs = parseBody(this.profile, rec);
    } catch (err) {
      this.malformed.push(`${err.message}\n${body.toString('utf8').slice(0, 500)}`);
      res.writeHead(400, { 'content-type': 'text/plain' }).end('malformed');
      return;
    }
    const a = (this.answer && this.answer(rec, evs)) || this.success(evs);
    rec.status = a.status;
    rec.events = evs;
    this.events.push(...evs); // arrived (whatever the answer)
    const payload = typeof a.body === 'string' ? a.body : a.body === undefined ? '' : JSON.stringify(a.body);
    res.writeHead(a.status, { 'content-type': 'application/json' }).end(payload);
  }

  success(evs) {
    switch (this.profile) {
      case 'splunk_hec':
        return { status: 200, body: { text: 'Success', code: 0 } };
      case 'loki':
        return { status: 204 };
      case 'elastic':
        return { status: 200, body: { errors: false, items: evs.map(() => ({ create: { status: 201 } })) } };
      default:
        return { status: 200, body: { ok: true } };
    }
  }

  /** Stops listening and drops every open connection (a receiver that went away). */
  async stop() {
    if (!this.server) return;
    const s = this.server;
    this.server = null;
    s.close();
    s.closeAllConnections();
    await once(s, 'close');
  }

  /** Event ids in arrival order. */
  ids() {
    return this.events.map((e) => e.id);
  }
}

export async function startHttpReceiver(opts) {
  return new HttpReceiver(opts).start();
}

/** A TCP server that accepts connections and never reads from them nor answers. */
export async function startStuckReceiver() {
  const sockets = new Set();
  const server = net.createServer((sock) => {
    sock.pause(); // never read: the peer's writes fill the buffers, then block
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: server.address().port,
    get connections() {
      return sockets.size;
    },
    accepted: () => sockets.size,
    async stop() {
      server.close();
      for (const s of sockets) s.destroy();
      await once(server, 'close');
    },
  };
}

export const RSYSLOGD = process.env.RSYSLOGD || '/usr/sbin/rsyslogd';

export async function haveRsyslog() {
  try {
    await fs.access(RSYSLOGD, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * A real rsyslogd in the foreground with a private configuration: imtcp on a
 * loopback port (octet-counted and LF-framed messages), each message's raw text
 * written as one line to `file`. Returns {port, file, lines(), stop()}.
 */
export async function startRsyslog() {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mcpauth-e2e-rsyslog-'));
  const file = path.join(dir, 'messages.log');
  const port = await freePort();
  const conf = path.join(dir, 'rsyslog.conf');
  await fs.writeFile(
    conf,
    [
      `global(workDirectory="${dir}" maxMessageSize="64k")`,
      'module(load="imtcp")',
      'template(name="raw" type="string" string="%rawmsg%\\n")',
      'ruleset(name="mcpauth") {',
      `  action(type="omfile" file="${file}" template="raw" flushOnTXEnd="on" asyncWriting="off")`,
      '}',
      `input(type="imtcp" port="${port}" address="127.0.0.1" ruleset="mcpauth")`,
      '',
    ].join('\n'),
  );
  const child = spawn(RSYSLOGD, ['-n', '-iNONE', '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  let exited = null;
  const done = new Promise((r) => child.on('close', (code, sig) => r((exited = { code, sig }))));
  // Ready when it accepts a connection.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`rsyslogd exited (${JSON.stringify(exited)}): ${out}`);
    const okConn = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (okConn) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`rsyslogd did not listen on ${port}: ${out}`);
    }
    await sleep(50);
  }
  return {
    port,
    file,
    output: () => out,
    async lines() {
      try {
        const t = await fs.readFile(file, 'utf8');
        return t.split('\n').filter((l) => l !== '');
      } catch (err) {
        if (err.code === 'ENOENT') return [];
        throw err;
      }
    },
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await done;
        clearTimeout(t);
      }
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
