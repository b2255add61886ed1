// exporters.js — Settings › Security › System log › Exporters: the exporters
// of /api/v1/exporters with each one's delivery status, a form to add one,
// and pause/resume, test and delete. Secrets (auth token, HMAC secret) are
// write-only: typed into password fields, sent once, never shown again.
import { api, seg } from './api.js';
import { field, h, notice, select, table, timeText, txt } from './dom.js';

const TYPES = {
  syslog: 'tls://siem.example.com:6514',
  http: 'https://collector.example.com/ingest',
  kafka: 'kafka://broker1:9092,broker2:9092/mcpauth-audit',
  nats: 'nats://nats.example.com:4222/mcpauth.audit',
  file: 'file:///var/log/mcpauth/audit.jsonl',
};
const PROFILES = ['webhook', 'splunk_hec', 'loki', 'elastic'];
const FORMATS = ['json', 'ocsf', 'cef', 'rfc5424'];
const REFRESH_MS = 5000;

export function mount(view) {
  const listErr = notice('error');
  const msg = notice('status');
  const { table: t, tbody } = table(null, ['ID', 'Type', 'URL', 'Format', 'Filter', 'State', 'Cursor', 'Lag', 'Delivered', 'Failures', 'Dead letters', 'Last error', 'Actions'], 'grid exporters');
  t.id = 'exporters-table';
  const refresh = h('button', { type: 'button', class: 'secondary' }, 'Refresh');

  // the add form
  const f = {
    id: h('input', { type: 'text', name: 'id', required: true, pattern: '[A-Za-z0-9._-]+', spellcheck: 'false' }),
    type: select({ name: 'type' }, Object.keys(TYPES), 'file'),
    url: h('input', { type: 'text', name: 'url', required: true, class: 'wide', spellcheck: 'false', placeholder: TYPES.file }),
    profile: select({ name: 'profile' }, PROFILES, 'webhook'),
    format: select({ name: 'format' }, FORMATS, 'json'),
    filter: h('input', { type: 'text', name: 'filter', class: 'wide', spellcheck: 'false', placeholder: 'type eq "token.request"' }),
    start: select({ name: 'start' }, [['now', 'now (new events only)'], ['beginning', 'beginning (the whole log)']], 'now'),
    token: h('input', { type: 'password', name: 'auth_token', autocomplete: 'new-password' }),
    hmac: h('input', { type: 'password', name: 'hmac_secret', autocomplete: 'new-password' }),
    paused: h('input', { type: 'checkbox', name: 'paused' }),
  };
  const profileField = field('Profile', f.profile);
  const formErr = notice('error');
  const form = h(
    'form',
    { class: 'filters add', 'aria-labelledby': 'add-exporter-title' },
    h('h2', { id: 'add-exporter-title' }, 'Add an exporter'),
    h('div', { class: 'row' }, field('ID', f.id), field('Type', f.type), profileField, field('Format', f.format), field('Start', f.start)),
    h('div', { class: 'row' }, field('URL', f.url)),
    h('div', { class: 'row' }, field('Filter (SCIM, optional)', f.filter)),
    h('div', { class: 'row' }, field('Auth token (write-only)', f.token, 'Bearer token or HEC token, if the receiver needs one'), field('HMAC secret (write-only)', f.hmac, 'signs each webhook body')),
    h('div', { class: 'row' }, h('div', { class: 'field check' }, f.paused, h('label', { for: (f.paused.id = 'exp-paused') }, 'Start paused'))),
    h('div', { class: 'row actions' }, h('button', { type: 'submit' }, 'Add exporter')),
    formErr.el,
  );

  view.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('ol', {}, h('li', {}, 'Settings'), h('li', {}, 'Security'), h('li', {}, 'System log'), h('li', { 'aria-current': 'page' }, 'Exporters'))),
    h('h1', {}, 'Exporters'),
    h('p', { class: 'hint' }, 'Each exporter streams the system log to a SIEM from its own cursor, at least once; an outage only grows its lag.'),
    h('div', { class: 'row toolbar' }, refresh, msg.el),
    listErr.el,
    h('div', { class: 'scroll' }, t),
    form,
  );

  const rows = new Map(); // id -> {cells, doc}
  let timer = null;
  let gone = false;

  function syncType() {
    const http = f.type.value === 'http';
    profileField.hidden = !http;
    f.url.placeholder = TYPES[f.type.value] || '';
  }
  f.type.addEventListener('change', syncType);
  syncType();

  async function load() {
    listErr.clear();
    let list;
    try {
      list = await api('GET', '/api/v1/exporters');
    } catch (e) {
      listErr.show(e.message);
      return;
    }
    if (gone) return;
    rows.clear();
    if (!Array.isArray(list) || !list.length) {
      tbody.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: 13 }, 'No exporters yet.')));
      return;
    }
    tbody.replaceChildren(...list.map(row));
    await statuses();
  }

  function row(doc) {
    const cells = {};
    const cell = (k, v, cls) => (cells[k] = h('td', { class: cls || null }, v));
    const test = h('button', { type: 'button', class: 'secondary' }, 'Test');
    const toggle = h('button', { type: 'button', class: 'secondary' }, doc.paused ? 'Resume' : 'Pause');
    const del = h('button', { type: 'button', class: 'danger' }, 'Delete');
    test.addEventListener('click', () => runTest(doc.id, test));
    toggle.addEventListener('click', () => setPaused(doc, toggle));
    let armed = null;
    del.addEventListener('click', async () => {
      if (!armed) {
        del.textContent = 'Confirm delete';
        armed = setTimeout(() => {
          armed = null;
          del.textContent = 'Delete';
        }, 5000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      try {
        await api('DELETE', `/api/v1/exporters/${seg(doc.id)}`);
        msg.show(`Exporter ${doc.id} deleted.`);
        await load();
      } catch (e) {
        listErr.show(e.message);
        del.textContent = 'Delete';
      }
    });
    const tr = h(
      'tr',
      { 'data-id': txt(doc.id) },
      cell('id', txt(doc.id)),
      cell('type', doc.type === 'http' && doc.profile ? `http (${doc.profile})` : txt(doc.type)),
      cell('url', txt(doc.url), 'url'),
      cell('format', txt(doc.format)),
      cell('filter', txt(doc.filter), 'filter'),
      cell('state', doc.paused ? 'paused' : '…', 'state'),
      cell('cursor', '…'),
      cell('lag', '…'),
      cell('delivered', '…'),
      cell('failures', '…'),
      cell('dead', '…'),
      cell('error', '–', 'detail'),
      h('td', { class: 'buttons' }, test, toggle, del),
    );
    rows.set(doc.id, { cells, doc, toggle });
    return tr;
  }

  async function statuses() {
    await Promise.all(
      [...rows.keys()].map(async (id) => {
        const r = rows.get(id);
        try {
          const s = await api('GET', `/api/v1/exporters/${seg(id)}/status`);
          if (gone || rows.get(id) !== r) return;
          r.cells.state.textContent = txt(s.state);
          r.cells.state.dataset.state = txt(s.state);
          r.cells.cursor.textContent = txt(s.cursor);
          r.cells.lag.textContent = `${txt(s.lag_events)} events, ${typeof s.lag_seconds === 'number' ? s.lag_seconds.toFixed(1) : '–'} s`;
          r.cells.delivered.textContent = txt(s.delivered);
          r.cells.failures.textContent = txt(s.failures);
          r.cells.dead.textContent = txt(s.dead_letters);
          r.cells.error.textContent = s.last_error ? `${txt(s.last_error)}${s.last_error_at ? ` (${timeText(s.last_error_at)})` : ''}` : '–';
        } catch (e) {
          if (e.status === 401 || gone) return;
          r.cells.state.textContent = 'unknown';
          r.cells.error.textContent = e.message;
        }
      }),
    );
  }

  async function runTest(id, button) {
    button.disabled = true;
    msg.clear();
    listErr.clear();
    try {
      const r = await api('POST', `/api/v1/exporters/${seg(id)}/test`);
      if (r && r.delivered) msg.show(`Test of ${id}: delivered (event ${txt(r.event_id)}).`);
      else listErr.show(`Test of ${id} failed: ${txt(r && r.error)}`);
    } catch (e) {
      listErr.show(`Test of ${id} failed: ${e.message}`);
    } finally {
      button.disabled = false;
      statuses();
    }
  }

  async function setPaused(doc, button) {
    button.disabled = true;
    listErr.clear();
    try {
      const out = await api('PATCH', `/api/v1/exporters/${seg(doc.id)}`, { paused: !doc.paused });
      doc.paused = Boolean(out && out.paused);
      button.textContent = doc.paused ? 'Resume' : 'Pause';
      msg.show(`Exporter ${doc.id} ${doc.paused ? 'paused' : 'resumed'}.`);
      await statuses();
    } catch (e) {
      listErr.show(e.message);
    } finally {
      button.disabled = false;
    }
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formErr.clear();
    const body = { id: f.id.value.trim(), type: f.type.value, url: f.url.value.trim(), format: f.format.value, start: f.start.value };
    if (f.type.value === 'http') body.profile = f.profile.value;
    if (f.filter.value.trim()) body.filter = f.filter.value.trim();
    if (f.paused.checked) body.paused = true;
    const auth = {};
    if (f.token.value) auth.token = f.token.value;
    if (f.hmac.value) auth.hmac_secret = f.hmac.value;
    if (Object.keys(auth).length) body.auth = auth;
    try {
      await api('POST', '/api/v1/exporters', body);
      form.reset();
      syncType();
      msg.show(`Exporter ${body.id} added.`);
      await load();
    } catch (err) {
      formErr.show(err.message);
    }
  });
  refresh.addEventListener('click', load);

  load();
  timer = setInterval(() => {
    if (!document.hidden) statuses();
  }, REFRESH_MS);
  return () => {
    gone = true;
    clearInterval(timer);
  };
}
