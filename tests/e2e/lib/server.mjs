// Starts the real mcpauth binary for end-to-end tests and talks to it.
//
//   const srv = await startServer();
//   const r = await srv.api('GET', '/api/v1/systems');   // {status, headers, json, text}
//   const c = await srv.cli(['get', 'systems', '-o', 'json']);  // {code, stdout, stderr}
//   const s = await srv.stop();                          // {code, signal, stderr}
//
// Each server gets a free loopback port and a fresh data directory; its stderr
// is kept in memory and printed when a test fails (logServersOnFailure). Every
// request opens its own connection, so a test never depends on keep-alive.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');
export const binary = process.env.MCPAUTH_BIN
  ? path.resolve(process.env.MCPAUTH_BIN)
  : path.resolve(repoRoot, 'build/mcpauth');

const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
// generous: an apply hashes client secrets (PBKDF2, 210k rounds) and runs under ASan in `make test`
const REQUEST_TIMEOUT_MS = 30_000;
const CLI_TIMEOUT_MS = 40_000;

/** Every server this process started, for the failure report and the exit handler. */
const servers = new Set();

process.on('exit', () => {
  for (const s of servers) if (s.child && s.child.exitCode === null) s.child.kill('SIGKILL');
});

/** A port nothing listens on right now: bind port 0, note the port, close. */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/**
 * One HTTP request on a new connection. body: a string or Buffer sent as is, or
 * anything else sent as JSON. With an `expect: 100-continue` header the body is
 * sent only when the server asks for it, so an answer given on the headers alone
 * (an early 413) is read rather than lost to a reset connection.
 */
export function request(url, { method = 'GET', headers = {}, body } = {}) {
  let payload;
  if (body !== undefined && body !== null) {
    payload = typeof body === 'string' || Buffer.isBuffer(body) ? Buffer.from(body) : Buffer.from(JSON.stringify(body));
  }
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(url, {
      method,
      headers: payload && !hasHeader(headers, 'transfer-encoding') ? { 'content-length': payload.length, ...headers } : headers,
      agent: false,
      timeout: REQUEST_TIMEOUT_MS,
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    req.on('response', (res) => {
      answered = true;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, json, text });
        req.destroy(); // done with this connection (and with a body never sent)
      });
    });
    if (payload && hasHeader(headers, 'expect')) {
      // Expect: 100-continue: the body goes only once the server asks for it; a
      // server that refuses on the headers alone (413) answers at once instead.
      req.on('continue', () => req.end(payload));
      req.flushHeaders();
      return;
    }
    if (payload) req.write(payload);
    req.end();
  });
}

function hasHeader(headers, name) {
  return Object.keys(headers).some((k) => k.toLowerCase() === name);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Server {
  constructor({ port, dataDir, workDir, args, env }) {
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.dataDir = dataDir;
    this.workDir = workDir; // cwd of the server and of every CLI call
    this.extraArgs = args;
    this.extraEnv = env;
    this.stderrLog = ''; // every run's stderr, in order
    this.stdoutLog = '';
    this.child = null;
    this.token = null;
    this.runs = 0;
    this.exit = null; // {code, signal} of the last run once it ended
  }

  /** Starts the binary and waits until it answers as itself. */
  async start() {
    this.runs++;
    this.exit = null;
    this.token = null;
    this.stderrLog += `----- mcpauth run ${this.runs} on ${this.url} (data dir ${this.dataDir}) -----\n`;
    const args = ['serve', '--dev', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, ...this.extraArgs];
    const child = spawn(binary, args, {
      cwd: this.workDir,
      env: { ...process.env, ...this.extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      this.stdoutLog += d;
    });
    child.stderr.on('data', (d) => {
      this.stderrLog += d;
    });
    this.exited = new Promise((resolve) => {
      child.on('error', (err) => {
        this.stderrLog += `spawn ${binary}: ${err.message}\n`;
      });
      child.on('close', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });

    const deadline = Date.now() + READY_TIMEOUT_MS;
    let healthy = false;
    while (Date.now() < deadline) {
      if (this.exit) throw new Error(`mcpauth exited before it was ready (${fmtExit(this.exit)})\n${this.stderrLog}`);
      try {
        const r = await request(`${this.url}/healthz`);
        if (r.status === 200) {
          healthy = true;
          break;
        }
      } catch {
        /* not listening yet */
      }
      await sleep(50);
    }
    if (!healthy) {
      await this.kill();
      throw new Error(`mcpauth did not answer /healthz within ${READY_TIMEOUT_MS} ms\n${this.stderrLog}`);
    }
    // The token file is written before the server listens; a server that is not
    // this one (see below) may answer /healthz sooner, so wait for it a little.
    while (!this.token) {
      try {
        this.token = (await fs.readFile(path.join(this.dataDir, 'admin.token'), 'utf8')).trim();
      } catch (err) {
        if (err.code !== 'ENOENT' || Date.now() > deadline || this.exit) {
          await this.kill();
          throw new Error(`cannot read the admin token: ${err.message}\n${this.stderrLog}`);
        }
        await sleep(50);
      }
    }
    // A process that bound the same port with SO_REUSEPORT (mcpauth itself does not)
    // would get a share of the connections. Make sure every connection reaches this one.
    for (let i = 0; i < 8; i++) {
      const r = await this.api('GET', '/api/v1/settings');
      if (r.status !== 200) {
        await this.kill();
        const err = new Error(`another server shares ${this.url}: GET /api/v1/settings answered ${r.status}`);
        err.portShared = true;
        throw err;
      }
    }
    return this;
  }

  async kill() {
    if (this.child && !this.exit) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }

  /**
   * Admin/HTTP call. body: object (sent as JSON), string or Buffer (sent as is).
   * opts.contentType: the Content-Type (default application/json when a body is
   * given; null sends none). opts.token: the bearer token (default the admin
   * token; null sends no Authorization). opts.headers: more headers (win).
   */
  async api(method, urlPath, body, opts = {}) {
    const headers = {};
    const token = opts.token === undefined ? this.token : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined && body !== null) {
      const ct = opts.contentType === undefined ? 'application/json' : opts.contentType;
      if (ct !== null) headers['content-type'] = ct;
    }
    Object.assign(headers, opts.headers || {});
    return request(this.url + urlPath, { method, headers, body });
  }

  /** Runs `mcpauth ARGS…` against this server; opts.env adds or overrides (undefined removes). */
  cli(args, opts = {}) {
    const env = { ...process.env, MCPAUTH_ADDR: this.url, MCPAUTH_TOKEN: this.token, ...(opts.env || {}) };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
    return runCli(args, { env, cwd: opts.cwd || this.workDir, input: opts.input });
  }

  /** SIGTERM (or `signal`), wait for the exit. Never throws: the caller asserts on the result. */
  async stop(signal = 'SIGTERM') {
    if (!this.child) return { code: null, signal: null, stderr: this.stderrLog };
    if (!this.exit) {
      this.child.kill(signal);
      let handle;
      const timer = new Promise((r) => {
        handle = setTimeout(() => r('timeout'), STOP_TIMEOUT_MS);
      });
      const outcome = await Promise.race([this.exited, timer]);
      clearTimeout(handle); // a pending timer would keep the test process alive 10 s
      if (outcome === 'timeout') {
        this.stderrLog += `----- no exit ${STOP_TIMEOUT_MS} ms after SIGTERM: SIGKILL -----\n`;
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    return { code: this.exit.code, signal: this.exit.signal, stderr: this.stderrLog };
  }

  /** stop(), then start again on the same port and data directory. Returns stop()'s result. */
  async restart() {
    const stopped = await this.stop();
    await this.start();
    return stopped;
  }

  /** stop() and remove the temporary directories. Returns stop()'s result. */
  async close() {
    const stopped = await this.stop();
    await fs.rm(this.dataDir, { recursive: true, force: true });
    await fs.rm(this.workDir, { recursive: true, force: true });
    return stopped;
  }

  /** The SQLite database file. */
  get dbPath() {
    return path.join(this.dataDir, 'mcpauth.db');
  }
}

function fmtExit(e) {
  return e.signal ? `signal ${e.signal}` : `exit code ${e.code}`;
}

/** Runs the binary (client subcommands), bounded in time. */
export function runCli(args, { env = process.env, cwd, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input === undefined ? '' : input);
  });
}

/**
 * Starts a server with a fresh data directory on a free port.
 * opts.args: more `serve` arguments; opts.env: more environment; opts.port: this
 * port rather than a free one. If start-up fails the server's directories are
 * removed and the error (its message holds the server's stderr) is thrown.
 */
export async function startServer(opts = {}) {
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'mcpauth-e2e-data-'));
    const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'mcpauth-e2e-cwd-'));
    const port = opts.port || (await freePort());
    const srv = new Server({ port, dataDir, workDir, args: opts.args || [], env: opts.env || {} });
    servers.add(srv);
    try {
      return await srv.start();
    } catch (err) {
      lastErr = err;
      err.server = srv;
      await srv.kill();
      await srv.close();
      // Another process took the port between freePort() and the bind: try another one.
      if (!err.portShared || opts.port) throw err;
    }
  }
  throw lastErr;
}

/** A scratch directory, removed by the caller. */
export function tempDir(prefix = 'mcpauth-e2e-') {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/**
 * Registers hooks that print the stderr of every server started by this test
 * file when a test fails (what the server logged during that test).
 */
export function logServersOnFailure() {
  const marks = new Map();
  beforeEach(() => {
    marks.clear();
    for (const s of servers) marks.set(s, s.stderrLog.length);
  });
  afterEach((t) => {
    if (t.passed === true) return;
    for (const s of servers) {
      const from = marks.get(s) ?? 0;
      const log = s.stderrLog.slice(from);
      if (!log) continue;
      console.error(`\n===== mcpauth stderr (${s.url}, data dir ${s.dataDir}) during "${t.name}" =====\n${log}===== end =====`);
    }
  });
}

/** Asserts a stop() result says the process ended by itself with status 0. */
export function assertCleanExit(assert, stopped) {
  assert.equal(stopped.signal, null, `mcpauth was killed by ${stopped.signal}\n${stopped.stderr}`);
  assert.equal(stopped.code, 0, `mcpauth exited with ${stopped.code} (a sanitizer report makes it non-zero)\n${stopped.stderr}`);
}
