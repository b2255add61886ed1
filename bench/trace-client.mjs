// trace-client.mjs: live trace subscribers for bench/trace.sh (node, no packages).
//
//   node bench/trace-client.mjs sink N URL       N streams of URL read to nowhere
//   node bench/trace-client.mjs latency URL      one stream; the delay of each entry
//
// URL is http://127.0.0.1:PORT/api/v1/trace; the admin token comes from
// MCPAUTH_TOKEN. Prints `ready` once every stream answered 200 and sent its
// opening comment (the subscriptions exist), then reads until SIGTERM and, once
// its streams were idle for 1 s (what was sent is read), prints one line:
//   sink:    trace-client: streams N entries E dropped D bytes B min_entries M min_accounted A
//            (A: the least, over the streams, of entries read plus entries a `dropped`
//            marker counted)
//   latency: trace-client: entries E dropped D p50 X p99 Y max Z (ms)
// The delay is the time an entry is read here minus its `time` field, the
// moment the server received the request (same machine, same realtime clock),
// so it spans the request's handling up to the publish, the hub's wake-up and
// the socket. Exits 1 when a stream fails or ends early.
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const [mode, ...rest] = process.argv.slice(2);
const token = process.env.MCPAUTH_TOKEN;
if (!token || !['sink', 'latency'].includes(mode)) {
  console.error('usage: MCPAUTH_TOKEN=... node trace-client.mjs sink N URL | latency URL');
  process.exit(2);
}
const n = mode === 'sink' ? Number(rest[0]) : 1;
const url = mode === 'sink' ? rest[1] : rest[0];
if (!Number.isInteger(n) || n < 1 || !url) {
  console.error('trace-client: need a stream count >= 1 and a URL');
  process.exit(2);
}

const fail = (msg) => {
  console.error(`trace-client: ${msg}`);
  process.exit(1);
};

// realtime now in ms with sub-ms resolution
const nowMs = () => performance.timeOrigin + performance.now();
// "2026-11-22T09:14:03.512384Z" -> ms since the epoch, microseconds kept
const timeMs = (s) => Date.parse(`${s.slice(0, 23)}Z`) + Number(s.slice(23, 26)) / 1000;

const streams = [];
let opened = 0;
let stopping = false;
const delays = [];

function open(i) {
  const st = { entries: 0, dropped: 0, bytes: 0, rest: '' };
  streams.push(st);
  const req = http.get(url, { headers: { authorization: `Bearer ${token}` }, agent: false });
  req.on('error', (err) => stopping || fail(`stream ${i}: ${err.message}`));
  req.on('response', (res) => {
    if (res.statusCode !== 200) fail(`stream ${i}: HTTP ${res.statusCode}`);
    let first = true;
    res.setEncoding('utf8');
    res.on('data', (d) => {
      const t = nowMs();
      lastData = t;
      st.bytes += d.length;
      if (first) {
        first = false;
        if (++opened === n) console.log('ready');
      }
      if (mode === 'sink') {
        // counting frames is enough; a frame may straddle two chunks
        const s = st.rest + d;
        let i0 = 0;
        for (;;) {
          const j = s.indexOf('\n\n', i0);
          if (j < 0) break;
          if (s.startsWith('event: trace', i0)) st.entries++;
          else if (s.startsWith('event: dropped', i0)) st.dropped += Number(/"count": ?(\d+)/.exec(s.slice(i0, j))[1]);
          i0 = j + 2;
        }
        st.rest = s.slice(i0);
        return;
      }
      const s = st.rest + d;
      let i0 = 0;
      for (;;) {
        const j = s.indexOf('\n\n', i0);
        if (j < 0) break;
        const frame = s.slice(i0, j);
        i0 = j + 2;
        if (frame.startsWith('event: trace\ndata: ')) {
          st.entries++;
          delays.push(t - timeMs(JSON.parse(frame.slice(19)).time));
        } else if (frame.startsWith('event: dropped')) {
          st.dropped += Number(/"count": ?(\d+)/.exec(frame)[1]);
        }
      }
      st.rest = s.slice(i0);
    });
    res.on('end', () => stopping || fail(`stream ${i}: the server ended the stream`));
  });
}

for (let i = 0; i < n; i++) open(i);

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

let lastData = 0;
process.on('SIGTERM', () => {
  stopping = true;
  // what the server already sent is still read: report once the streams are idle (1 s: with 100 streams the
  // server writes to each every 100 ms, and a sender out of CPU budget waits for its next window)
  const check = () => (nowMs() - lastData >= 1000 ? report() : setTimeout(check, 50));
  check();
});

function report() {
  const sum = (k) => streams.reduce((a, s) => a + s[k], 0);
  if (mode === 'sink') {
    const min = Math.min(...streams.map((s) => s.entries));
    // every entry is either read or counted in a `dropped` marker: nothing lost silently
    const acc = Math.min(...streams.map((s) => s.entries + s.dropped));
    console.log(`trace-client: streams ${n} entries ${sum('entries')} dropped ${sum('dropped')} bytes ${sum('bytes')} min_entries ${min} min_accounted ${acc}`);
  } else {
    const d = Float64Array.from(delays).sort();
    const f = (v) => (Number.isFinite(v) ? v.toFixed(2) : 'nan');
    console.log(`trace-client: entries ${sum('entries')} dropped ${sum('dropped')} p50 ${f(pct(d, 50))} p99 ${f(pct(d, 99))} max ${f(d[d.length - 1])}`);
  }
  process.exit(0);
}
