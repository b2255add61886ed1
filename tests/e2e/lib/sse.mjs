// Server-Sent Events for the e2e tests: a line parser (the WHATWG event-stream
// rules the live trace needs: `event:`, `data:` joined by "\n", comments,
// CR/LF/CRLF line ends, a frame dispatched on its blank line) and a subscriber
// to GET /api/v1/trace over fetch streaming.
//
//   const sub = await traceSubscribe(srv, { severity: 'error' });
//   const f = await sub.next();        // {event: 'trace', data, json} | {event: 'dropped', ...}
//   await sub.none(300);               // nothing more arrives within 300 ms
//   sub.close();

/** Feeds text in any chunking; calls onFrame({event, data, id}) and onComment(text). */
export class SSEParser {
  constructor({ onFrame, onComment } = {}) {
    this.onFrame = onFrame || (() => {});
    this.onComment = onComment || (() => {});
    this.rest = '';
    this.pendingCR = false;
    this.reset();
  }

  reset() {
    this.event = '';
    this.data = [];
    this.id = undefined;
  }

  push(text) {
    let s = this.rest + text;
    // a CR that ended the previous chunk already ended a line: its LF is not another
    if (this.pendingCR && s.startsWith('\n')) s = s.slice(1);
    this.pendingCR = false;
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s[i];
      if (c !== '\n' && c !== '\r') continue;
      this.line(s.slice(start, i));
      if (c === '\r') {
        if (i + 1 === s.length) this.pendingCR = true;
        else if (s[i + 1] === '\n') i++;
      }
      start = i + 1;
    }
    this.rest = s.slice(start);
  }

  line(l) {
    if (l === '') {
      if (this.data.length || this.event) this.onFrame({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      this.reset();
      return;
    }
    if (l[0] === ':') {
      this.onComment(l.slice(1).trimStart());
      return;
    }
    const colon = l.indexOf(':');
    const name = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'event') this.event = value;
    else if (name === 'data') this.data.push(value);
    else if (name === 'id') this.id = value;
  }
}

/** A frame as the tests see it: trace frames with their JSON, dropped frames with count. */
function decorate(f) {
  const out = { ...f };
  try {
    out.json = JSON.parse(f.data);
  } catch {
    out.json = undefined;
  }
  if (f.event === 'dropped') out.count = out.json?.count;
  return out;
}

/**
 * A queue of frames with waiting readers. next(ms) resolves with the next frame or
 * rejects after ms; none(ms) resolves if nothing arrives within ms (rejects otherwise).
 */
export class FrameQueue {
  constructor() {
    this.frames = [];
    this.comments = [];
    this.waiters = [];
    this.ended = null;
  }

  put(frame) {
    const w = this.waiters.shift();
    if (w) w.resolve(frame);
    else this.frames.push(frame);
  }

  end(err) {
    this.ended = err || new Error('the stream ended');
    for (const w of this.waiters.splice(0)) w.reject(this.ended);
  }

  next(ms = 5000) {
    if (this.frames.length) return Promise.resolve(this.frames.shift());
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const w = {};
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no SSE frame within ${ms} ms`));
      }, ms);
      w.resolve = (f) => {
        clearTimeout(timer);
        resolve(f);
      };
      w.reject = (e) => {
        clearTimeout(timer);
        reject(e);
      };
      this.waiters.push(w);
    });
  }

  /** Resolves when nothing is queued and nothing arrives within ms; rejects with the frame otherwise. */
  async none(ms) {
    if (this.frames.length) throw new Error(`unexpected frame: ${JSON.stringify(this.frames[0])}`);
    let f;
    try {
      f = await this.next(ms);
    } catch {
      return;
    }
    throw new Error(`unexpected frame: ${JSON.stringify(f)}`);
  }

  /** Every frame queued now (taken). */
  drain() {
    return this.frames.splice(0);
  }
}

/**
 * GET /api/v1/trace with the admin token (opts.token: another, null: none), query:
 * filters. Resolves once the stream is open (status 200 and the opening comment
 * read: the subscription exists); for another status resolves {status, text}.
 */
export async function traceSubscribe(srv, query = {}, opts = {}) {
  const qs = new URLSearchParams(query).toString();
  const url = `${srv.url}/api/v1/trace${qs ? `?${qs}` : ''}`;
  const headers = {};
  const token = opts.token === undefined ? srv.token : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const ac = new AbortController();
  const res = await fetch(url, { headers, signal: ac.signal });
  if (res.status !== 200) {
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, close() {} };
  }
  const q = new FrameQueue();
  let opened;
  const open = new Promise((r) => (opened = r));
  const parser = new SSEParser({
    onFrame: (f) => q.put(decorate(f)),
    onComment: (c) => {
      q.comments.push(c);
      opened();
    },
  });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(decoder.decode(value, { stream: true }));
      }
      q.end();
    } catch (err) {
      q.end(err);
    }
    opened();
  })();
  await open;
  return {
    status: res.status,
    headers: res.headers,
    queue: q,
    next: (ms) => q.next(ms),
    none: (ms) => q.none(ms),
    drain: () => q.drain(),
    /** The next trace entry (JSON), skipping nothing: a dropped frame is an error here. */
    async entry(ms) {
      const f = await q.next(ms);
      if (f.event !== 'trace') throw new Error(`expected a trace frame, got ${JSON.stringify(f)}`);
      return f.json;
    },
    close() {
      ac.abort();
    },
  };
}
