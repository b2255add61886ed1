// exporters.js — Settings › Security › System log › Exporters: the exporters
// of /api/v1/exporters with each one's delivery status, a form to add one or
// edit one (PATCH: fields left as they were are not sent; secret fields left
// blank keep the stored credentials), and pause/resume, test and delete.
// Secrets (auth token, HMAC secret, username/password) are write-only: typed
// into password fields, sent once, never shown again. The form checks what it
// can before saving (required fields, the URL scheme of the type, the
// credentials a sink uses); the server checks everything and its 400 is shown.
import { api, seg } from './api.js';
import { confirmButton, field, h, notice, select, table, tableState, timeText, txt } from './dom.js';

/** Per type: the URL schemes it takes, a placeholder, the credential fields it uses. */
const TYPES = {
  syslog: { schemes: ['udp', 'tcp', 'tls', 'relp'], placeholder: 'tls://siem.example.com:6514', expect: 'udp://, tcp://, tls:// or relp://HOST:PORT', creds: [] },
  http: { schemes: ['http', 'https'], placeholder: 'https://collector.example.com/ingest', expect: 'http(s)://HOST[:PORT]/PATH', creds: ['token', 'hmac', 'username', 'password'] },
  kafka: { schemes: ['kafka'], placeholder: 'kafka://broker1:9092,broker2:9092/mcpauth-audit', expect: 'kafka://BROKER[,BROKER...]/TOPIC', creds: ['username', 'password'] },
  nats: { schemes: ['nats'], placeholder: 'nats://nats.example.com:4222/mcpauth.audit', expect: 'nats://HOST:PORT/SUBJECT', creds: ['token', 'username', 'password'] },
  file: { schemes: ['file'], placeholder: 'file:///var/log/mcpauth/audit.jsonl', expect: 'file:///ABSOLUTE/PATH', creds: [] },
};
const PROFILES = ['webhook', 'splunk_hec', 'loki', 'elastic'];
const FORMATS = ['json', 'ocsf', 'cef', 'rfc5424'];
const REFRESH_MS = 5000;
const COLS = 13;
const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * What the form can tell before the server does: [field, message] of the
 * first problem, or null. `editing`: the exporter being edited (its stored
 * credentials count for the checks that need one).
 */
export function validate(v, editing) {
  if (!editing && !v.id) return ['id', 'ID: required.'];
  if (!editing && !ID_RE.test(v.id)) return ['id', 'ID: letters, digits, ".", "_" and "-" only (at most 64).'];
  const t = TYPES[v.type];
  if (!t) return ['type', 'Type: choose one.'];
  if (!v.url) return ['url', 'URL: required.'];
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(v.url);
  if (!m || !t.schemes.includes(m[1].toLowerCase())) return ['url', `URL: a ${v.type} exporter's url is ${t.expect}.`];
  const rest = v.url.slice(m[0].length);
  if (v.type === 'syslog' && /[/?#]/.test(rest)) return ['url', 'URL: a syslog url is SCHEME://HOST:PORT, with no path.'];
  if (v.type === 'file' && !rest.startsWith('/')) return ['url', 'URL: a file url names an absolute path: file:///var/log/...'];
  if (v.type !== 'file' && !rest.replace(/[/?#].*$/, '')) return ['url', 'URL: the host is missing.'];
  if (v.type === 'http' && v.profile === 'elastic' && !['json', 'ocsf'].includes(v.format)) return ['format', 'Format: the elastic profile sends json or ocsf documents.'];
  const stored = Boolean(editing && editing.auth_set);
  if (v.type === 'http' && v.profile === 'splunk_hec' && !v.token && !stored) return ['token', 'Auth token: splunk_hec needs the HEC token.'];
  if (v.hmac && !(v.type === 'http' && v.profile === 'webhook')) return ['hmac', 'HMAC secret: only the webhook profile signs its bodies.'];
  if ((v.username || v.password) && !(v.username && v.password) && v.type === 'kafka') return ['username', 'Username and password: SASL/PLAIN needs both.'];
  if (v.type === 'nats' && v.token && (v.username || v.password)) return ['token', 'Auth token: use a token, or a username and password, not both.'];
  return null;
}

export function mount(view) {
  const listErr = notice('error');
  const msg = notice('status');
  const { table: t, tbody } = table(null, ['ID', 'Type', 'URL', 'Format', 'Filter', 'State', 'Cursor', 'Lag', 'Delivered', 'Failures', 'Dead letters', 'Last error', 'Actions'], 'grid exporters');
  t.id = 'exporters-table';
  const refresh = h('button', { type: 'button', class: 'secondary' }, 'Refresh');

  // the add / edit form
  const f = {
    id: h('input', { type: 'text', name: 'id', required: true, pattern: '[A-Za-z0-9._\\-]+', maxlength: '64', spellcheck: 'false' }),
    type: select({ name: 'type' }, Object.keys(TYPES), 'file'),
    url: h('input', { type: 'text', name: 'url', required: true, class: 'wide', spellcheck: 'false', placeholder: TYPES.file.placeholder }),
    profile: select({ name: 'profile' }, PROFILES, 'webhook'),
    format: select({ name: 'format' }, FORMATS, 'json'),
    filter: h('input', { type: 'text', name: 'filter', class: 'wide', spellcheck: 'false', placeholder: 'type eq "token.request"' }),
    start: select({ name: 'start' }, [['now', 'now (new events only)'], ['beginning', 'beginning (the whole log)']], 'now'),
    token: h('input', { type: 'password', name: 'auth_token', autocomplete: 'new-password' }),
    hmac: h('input', { type: 'password', name: 'hmac_secret', autocomplete: 'new-password' }),
    username: h('input', { type: 'text', name: 'auth_username', autocomplete: 'off', spellcheck: 'false' }),
    password: h('input', { type: 'password', name: 'auth_password', autocomplete: 'new-password' }),
    paused: h('input', { type: 'checkbox', name: 'paused' }),
  };
  const credField = {
    token: field('Auth token (write-only)', f.token, 'Bearer token (http, nats) or HEC token (splunk_hec)'),
    hmac: field('HMAC secret (write-only)', f.hmac, 'signs each webhook body'),
    username: field('Username (write-only)', f.username, 'basic auth (http), SASL/PLAIN (kafka), nats'),
    password: field('Password (write-only)', f.password),
  };
  const credHint = h('p', { class: 'hint creds-hint' });
  const credRow = h('div', { class: 'row creds' }, Object.values(credField));
  const profileField = field('Profile', f.profile);
  const idField = field('ID', f.id);
  const formErr = notice('error');
  const formTitle = h('h2', { id: 'exporter-form-title' }, 'Add an exporter');
  const submit = h('button', { type: 'submit' }, 'Add exporter');
  const cancel = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Cancel');
  const form = h(
    'form',
    { class: 'filters add', id: 'exporter-form', 'aria-labelledby': 'exporter-form-title', novalidate: true },
    formTitle,
    h('div', { class: 'row' }, idField, field('Type', f.type), profileField, field('Format', f.format), field('Start', f.start)),
    h('div', { class: 'row' }, field('URL', f.url)),
    h('div', { class: 'row' }, field('Filter (SCIM, optional)', f.filter)),
    credHint,
    credRow,
    h('div', { class: 'row' }, h('div', { class: 'field check' }, f.paused, h('label', { for: (f.paused.id = 'exp-paused') }, 'Paused'))),
    h('div', { class: 'row actions' }, submit, cancel),
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

  const rows = new Map(); // id -> {cells, doc, toggle}
  const lastStatus = new Map(); // id -> the last status seen: a refresh shows it until the new one comes
  let timer = null;
  let gone = false;
  let editing = null; // the exporter being edited, or null when adding

  function syncType() {
    const type = f.type.value;
    const http = type === 'http';
    profileField.hidden = !http;
    f.url.placeholder = TYPES[type] ? TYPES[type].placeholder : '';
    const creds = TYPES[type] ? TYPES[type].creds : [];
    for (const [k, el] of Object.entries(credField)) el.hidden = !creds.includes(k) || (k === 'hmac' && f.profile.value !== 'webhook');
    credRow.hidden = creds.length === 0;
    credHint.hidden = creds.length === 0 && !(editing && editing.auth_set);
    credHint.textContent = editing
      ? editing.auth_set
        ? 'Credentials are stored for this exporter. Leave these fields blank to keep them; typing any replaces all of them.'
        : 'No credentials are stored for this exporter.'
      : 'Credentials are write-only: sent once, sealed by the server, never shown again.';
  }
  f.type.addEventListener('change', syncType);
  f.profile.addEventListener('change', syncType);

  function values() {
    return {
      id: f.id.value.trim(),
      type: f.type.value,
      url: f.url.value.trim(),
      profile: f.profile.value,
      format: f.format.value,
      filter: f.filter.value.trim(),
      start: f.start.value,
      token: f.token.value,
      hmac: f.hmac.value,
      username: f.username.value,
      password: f.password.value,
      paused: f.paused.checked,
    };
  }

  function clearInvalid() {
    for (const el of Object.values(f)) el.removeAttribute('aria-invalid');
  }

  function startEdit(doc) {
    editing = doc;
    clearInvalid();
    formErr.clear();
    formTitle.textContent = `Edit exporter ${doc.id}`;
    submit.textContent = 'Save changes';
    cancel.hidden = false;
    f.id.value = doc.id;
    f.id.readOnly = true;
    f.type.value = TYPES[doc.type] ? doc.type : 'file';
    f.url.value = doc.url || '';
    f.profile.value = doc.profile || 'webhook';
    f.format.value = doc.format || 'json';
    f.filter.value = doc.filter || '';
    f.start.value = doc.start || 'now';
    f.paused.checked = Boolean(doc.paused);
    for (const k of ['token', 'hmac', 'username', 'password']) f[k].value = '';
    syncType();
    form.scrollIntoView({ block: 'nearest' });
    f.url.focus();
  }

  function endEdit() {
    editing = null;
    form.reset();
    f.id.readOnly = false;
    formTitle.textContent = 'Add an exporter';
    submit.textContent = 'Add exporter';
    cancel.hidden = true;
    clearInvalid();
    formErr.clear();
    syncType();
  }
  syncType();

  async function load() {
    listErr.clear();
    if (!rows.size) tableState(tbody, COLS, 'loading', 'Loading exporters…');
    let list;
    try {
      list = await api('GET', '/api/v1/exporters');
    } catch (e) {
      if (gone) return;
      listErr.show(e.message);
      rows.clear();
      tableState(tbody, COLS, 'error', 'The exporters could not be loaded (see the message above).');
      return;
    }
    if (gone) return;
    rows.clear();
    if (!Array.isArray(list) || !list.length) {
      tableState(tbody, COLS, 'empty', 'No exporters yet. Add one below to stream the system log to a SIEM.');
      return;
    }
    tbody.replaceChildren(...list.map(row));
    for (const id of lastStatus.keys()) if (!rows.has(id)) lastStatus.delete(id);
    for (const [id, r] of rows) if (lastStatus.has(id)) fill(r, lastStatus.get(id));
    await statuses();
  }

  function fill(r, s) {
    r.cells.state.textContent = txt(s.state);
    r.cells.state.dataset.state = txt(s.state);
    r.cells.cursor.textContent = txt(s.cursor);
    r.cells.lag.textContent = `${txt(s.lag_events)} events, ${typeof s.lag_seconds === 'number' ? s.lag_seconds.toFixed(1) : '–'} s`;
    r.cells.delivered.textContent = txt(s.delivered);
    r.cells.failures.textContent = txt(s.failures);
    r.cells.dead.textContent = txt(s.dead_letters);
    r.cells.error.textContent = s.last_error ? `${txt(s.last_error)}${s.last_error_at ? ` (${timeText(s.last_error_at)})` : ''}` : '–';
  }

  function row(doc) {
    const cells = {};
    const cell = (k, v, cls) => (cells[k] = h('td', { class: cls || null }, v));
    const edit = h('button', { type: 'button', class: 'secondary' }, 'Edit');
    const test = h('button', { type: 'button', class: 'secondary' }, 'Test');
    const toggle = h('button', { type: 'button', class: 'secondary' }, doc.paused ? 'Resume' : 'Pause');
    const del = confirmButton('Delete', 'Confirm delete', async () => {
      listErr.clear();
      try {
        await api('DELETE', `/api/v1/exporters/${seg(doc.id)}`);
        if (editing && editing.id === doc.id) endEdit();
        msg.show(`Exporter ${doc.id} deleted.`);
        await load();
      } catch (e) {
        listErr.show(e.message);
      }
    });
    edit.addEventListener('click', () => startEdit(doc));
    test.addEventListener('click', () => runTest(doc.id, test));
    toggle.addEventListener('click', () => setPaused(doc, toggle));
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
      cell('lag', '…', 'lag'),
      cell('delivered', '…', 'delivered'),
      cell('failures', '…', 'failures'),
      cell('dead', '…'),
      cell('error', '–', 'detail'),
      h('td', { class: 'buttons' }, edit, test, toggle, del),
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
          lastStatus.set(id, s);
          fill(r, s);
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

  /** The auth object of the form's secret fields (only those of the type), or null if none typed. */
  function authOf(v) {
    const creds = TYPES[v.type].creds;
    const auth = {};
    if (creds.includes('token') && v.token) auth.token = v.token;
    if (creds.includes('hmac') && v.hmac) auth.hmac_secret = v.hmac;
    if (creds.includes('username') && v.username) auth.username = v.username;
    if (creds.includes('password') && v.password) auth.password = v.password;
    return Object.keys(auth).length ? auth : null;
  }

  /** The merge patch from `doc` to the form: only what changed; null removes a member. */
  function patchOf(doc, v) {
    const p = {};
    const set = (k, val) => {
      if ((doc[k] ?? null) !== (val ?? null)) p[k] = val ?? null;
    };
    set('type', v.type);
    set('url', v.url);
    set('profile', v.type === 'http' ? v.profile : null);
    set('format', v.format);
    set('filter', v.filter || null);
    set('start', v.start);
    set('paused', v.paused);
    const auth = authOf(v);
    if (auth) p.auth = auth;
    else if (doc.auth_set && TYPES[v.type].creds.length === 0) p.auth = {}; // a sink without credentials: drop them
    return p;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formErr.clear();
    clearInvalid();
    const v = values();
    const bad = validate(v, editing);
    if (bad) {
      const [k, text] = bad;
      formErr.show(text);
      if (f[k]) {
        f[k].setAttribute('aria-invalid', 'true');
        f[k].focus();
      }
      return;
    }
    submit.disabled = true;
    try {
      if (editing) {
        const id = editing.id;
        const patch = patchOf(editing, v);
        if (!Object.keys(patch).length) {
          msg.show(`Exporter ${id}: nothing changed.`);
          endEdit();
          return;
        }
        await api('PATCH', `/api/v1/exporters/${seg(id)}`, patch);
        endEdit();
        msg.show(`Exporter ${id} saved.`);
      } else {
        const body = { id: v.id, type: v.type, url: v.url, format: v.format, start: v.start };
        if (v.type === 'http') body.profile = v.profile;
        if (v.filter) body.filter = v.filter;
        if (v.paused) body.paused = true;
        const auth = authOf(v);
        if (auth) body.auth = auth;
        await api('POST', '/api/v1/exporters', body);
        form.reset();
        syncType();
        msg.show(`Exporter ${body.id} added.`);
      }
      await load();
    } catch (err) {
      formErr.show(err.message);
    } finally {
      submit.disabled = false;
    }
  });
  cancel.addEventListener('click', endEdit);
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
