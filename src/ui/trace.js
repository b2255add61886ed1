// trace.js — MCP Authorization Tracing: a live table of GET /api/v1/trace.
// EventSource cannot send an Authorization header, so the stream is read
// with fetch() and a ReadableStream reader, and the Server-Sent Events are
// parsed here. Entries are not retained by the server: the table shows what
// arrived since the page opened, newest first, at most MAX_ROWS of them.
// Each row links to its durable audit event (#/logs?id=EVENT_ID: the System
// log filtered by that id, with the event's panel open).
import { api } from './api.js';
import { field, h, notice, select, severityBadge, table, tableState, timeText, txt } from './dom.js';

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
  const HEADERS = ['Time', 'Client IP', 'Endpoint', 'Access policy', 'Redirect URI / client workload', 'Resource server / server workload', 'Severity', 'Message', 'Audit event'];
  const { table: t, tbody } = table(null, HEADERS, 'grid trace');
  t.id = 'trace-table';
  const waitingRow = () => tableState(tbody, HEADERS.length, 'empty', 'Waiting for authorization requests… Entries appear here as they are decided.');
  waitingRow();

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

  /** A workload cell: the matched workload (or "no match"), and under it what was presented. */
  function workload(name, presented, presentedLabel) {
    return [
      name ? h('span', { class: 'wl' }, txt(name)) : h('span', { class: 'wl none' }, 'no match'),
      presented ? h('small', { class: 'sub', title: presentedLabel }, txt(presented)) : null,
    ];
  }

  function row(e) {
    const ap = e.access_policy;
    const policy =
      ap && typeof ap === 'object'
        ? [txt(ap.id), ' ', h('span', { class: ap.active ? 'tag on' : 'tag off' }, ap.active ? 'active' : 'inactive')]
        : h('span', { class: 'tag off' }, 'none active');
    const sev = typeof e.severity === 'string' ? e.severity : 'unknown';
    const id = typeof e.event_id === 'string' && e.event_id ? e.event_id : null;
    const link = id
      ? h('a', { href: `#/logs?${new URLSearchParams({ id })}`, class: 'event-link', title: `Open audit event ${id} in the System log` }, 'Event')
      : h('span', { class: 'hint', title: 'The audit event of this request could not be stored' }, '–');
    return h(
      'tr',
      { class: `entry sev-row-${['info', 'warning', 'error'].includes(sev) ? sev : 'unknown'}`, 'data-event-id': id || '' },
      h('td', { class: 'time', title: txt(e.time) }, timeText(e.time)),
      h('td', {}, txt(e.client_ip)),
      h('td', {}, txt(e.endpoint)),
      h('td', { class: 'policy' }, policy),
      h('td', { class: 'client-wl' }, workload(e.client_workload, e.redirect_uri, 'redirect URI')),
      h('td', { class: 'server-wl' }, workload(e.server_workload, e.resource, 'resource server (resource or audience presented)')),
      h('td', {}, severityBadge(e.severity)),
      h('td', { class: 'message' }, txt(e.message)),
      h('td', {}, link),
    );
  }

  function show(entries) {
    if (!entries.length) return;
    if (tbody.querySelector('tr.state')) tbody.replaceChildren();
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
    waitingRow();
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
