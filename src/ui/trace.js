// trace.js — MCP Authorization Tracing: a live table of GET /api/v1/trace.
// EventSource cannot send an Authorization header, so the stream is read
// with fetch() and a ReadableStream reader, and the Server-Sent Events are
// parsed here. Entries are not retained by the server: the table shows what
// arrived since the page opened, newest first, at most MAX_ROWS of them.
import { api } from './api.js';
import { field, h, notice, select, severityBadge, table, timeText, txt } from './dom.js';

const MAX_ROWS = 500;
const RETRY_MS = 3000;

/**
 * Calls onEvent(type, data) for each event of an SSE byte stream (the
 * WHATWG rules: lines end in CR, LF or CRLF; a blank line dispatches; comment
 * lines start with ':'; several data lines are joined with LF).
 */
export async function readSse(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let type = '';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buf);
      if (!m) break;
      if (m[0] === '\r' && m.index === buf.length - 1) break; // maybe the CR of a CRLF split in two
      const line = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      if (line === '') {
        if (data.length) onEvent(type || 'message', data.join('\n'));
        type = '';
        data = [];
        continue;
      }
      if (line[0] === ':') continue;
      const c = line.indexOf(':');
      const name = c < 0 ? line : line.slice(0, c);
      let v = c < 0 ? '' : line.slice(c + 1);
      if (v[0] === ' ') v = v.slice(1);
      if (name === 'event') type = v;
      else if (name === 'data') data.push(v);
    }
  }
}

export function mount(view) {
  const inputs = {
    severity: select({ name: 'severity' }, [['info', 'info and above'], ['warning', 'warning and above'], ['error', 'error']], 'info'),
    client_ip: h('input', { type: 'text', name: 'client_ip', placeholder: '127.0.0.1', spellcheck: 'false' }),
    client: h('input', { type: 'text', name: 'client', placeholder: 'client id', spellcheck: 'false' }),
    system: h('input', { type: 'text', name: 'system', placeholder: 'system id', spellcheck: 'false' }),
  };
  const form = h(
    'form',
    { class: 'filters', 'aria-label': 'Trace filters' },
    h(
      'div',
      { class: 'row' },
      field('Minimum severity', inputs.severity),
      field('Client IP', inputs.client_ip),
      field('Client', inputs.client),
      field('System', inputs.system),
      h('div', { class: 'field actions' }, h('button', { type: 'submit' }, 'Apply')),
    ),
  );
  const status = h('span', { id: 'trace-status', class: 'conn', 'data-state': 'connecting', role: 'status' }, 'Connecting…');
  const pause = h('button', { type: 'button', class: 'secondary', 'aria-pressed': 'false' }, 'Pause');
  const clear = h('button', { type: 'button', class: 'secondary' }, 'Clear');
  const held = h('span', { class: 'held', 'aria-live': 'polite' });
  const dropped = h('p', { id: 'trace-dropped', class: 'notice warning', role: 'alert', hidden: true });
  const err = notice('error');
  const { table: t, tbody } = table(null, ['Time', 'Client IP', 'Endpoint', 'Client workload', 'Server workload', 'Access policy', 'Severity', 'Message'], 'grid trace');
  t.id = 'trace-table';

  view.append(
    h('h1', {}, 'MCP Authorization Tracing'),
    h('p', { class: 'hint' }, 'Inbound authorization requests as they are decided. Live only: nothing here is stored; the System log keeps the durable events.'),
    form,
    h('div', { class: 'row toolbar' }, status, pause, clear, held),
    dropped,
    err.el,
    h('div', { class: 'scroll' }, t),
  );

  let ctrl = null;
  let retry = null;
  let paused = false;
  let waiting = []; // entries that arrived while paused, newest last
  let droppedTotal = 0;
  let gone = false;

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function query() {
    const p = new URLSearchParams();
    if (inputs.severity.value !== 'info') p.set('severity', inputs.severity.value);
    for (const k of ['client_ip', 'client', 'system']) {
      const v = inputs[k].value.trim();
      if (v) p.set(k, v);
    }
    const s = p.toString();
    return s ? `/api/v1/trace?${s}` : '/api/v1/trace';
  }

  function row(e) {
    const ap = e.access_policy;
    const policy =
      ap && typeof ap === 'object'
        ? [txt(ap.id), ' ', h('span', { class: ap.active ? 'tag on' : 'tag off' }, ap.active ? 'active' : 'inactive')]
        : '–';
    const sev = typeof e.severity === 'string' ? e.severity : 'unknown';
    return h(
      'tr',
      { class: `sev-row-${['info', 'warning', 'error'].includes(sev) ? sev : 'unknown'}`, 'data-event-id': txt(e.event_id) },
      h('td', { title: txt(e.time) }, timeText(e.time)),
      h('td', {}, txt(e.client_ip)),
      h('td', {}, txt(e.endpoint)),
      h('td', {}, txt(e.client_workload)),
      h('td', {}, txt(e.server_workload)),
      h('td', {}, policy),
      h('td', {}, severityBadge(e.severity)),
      h('td', { class: 'message' }, txt(e.message)),
    );
  }

  function show(entries) {
    const frag = document.createDocumentFragment();
    for (let i = entries.length - 1; i >= 0; i--) frag.append(row(entries[i]));
    tbody.prepend(frag);
    while (tbody.children.length > MAX_ROWS) tbody.lastElementChild.remove();
  }

  function onEvent(type, data) {
    if (type === 'trace') {
      let e;
      try {
        e = JSON.parse(data);
      } catch {
        return;
      }
      if (paused) {
        waiting.push(e);
        if (waiting.length > MAX_ROWS) waiting.shift();
        held.textContent = `${waiting.length} new while paused`;
      } else {
        show([e]);
      }
    } else if (type === 'dropped') {
      let n = 0;
      try {
        n = Number(JSON.parse(data).count) || 0;
      } catch {
        /* a marker without a count still says something was lost */
      }
      droppedTotal += n;
      dropped.textContent = `The server dropped ${droppedTotal} ${droppedTotal === 1 ? 'entry' : 'entries'} for this view because it fell behind. The System log has every request.`;
      dropped.hidden = false;
    }
  }

  async function connect() {
    if (gone) return;
    clearTimeout(retry);
    if (ctrl) ctrl.abort();
    const mine = new AbortController();
    ctrl = mine;
    err.clear();
    setStatus('connecting', 'Connecting…');
    try {
      const r = await api('GET', query(), undefined, { raw: true, signal: mine.signal, accept: 'text/event-stream' });
      setStatus('live', 'Live');
      await readSse(r.body, onEvent);
      if (mine.signal.aborted) return;
      setStatus('closed', 'Disconnected; reconnecting…');
    } catch (e) {
      if (mine.signal.aborted || gone) return;
      if (e.status === 401) return; // signed out by api.js
      if (e.status === 400) {
        setStatus('closed', 'Not connected');
        err.show(e.message);
        return;
      }
      setStatus('closed', `Disconnected (${e.message}); reconnecting…`);
    }
    if (!gone && ctrl === mine) retry = setTimeout(connect, RETRY_MS);
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    connect();
  });
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    if (!paused) {
      show(waiting);
      waiting = [];
      held.textContent = '';
    }
  });
  clear.addEventListener('click', () => {
    tbody.replaceChildren();
    waiting = [];
    held.textContent = '';
    droppedTotal = 0;
    dropped.hidden = true;
  });

  connect();
  return () => {
    gone = true;
    clearTimeout(retry);
    if (ctrl) ctrl.abort();
  };
}
