// logs.js — System log: the audit events of GET /api/v1/logs, selected by
// time range, the common attributes (outcome, severity, type, user, client,
// system) and a free SCIM filter (all composed into one `filter`), keywords
// and order, paged by the Link rel="next" the server sends; an event in a
// side panel (token, request, hash chain, raw JSON); the selection downloaded
// from /api/v1/logs/export in each format (fetched with the token, saved
// through a Blob URL).
//
// #/logs?id=EVENT_ID (the trace page's links) opens the log filtered by
// `id eq "EVENT_ID"` with that event's panel open.
import { api, nextLink } from './api.js';
import { dl, field, h, notice, select, severityBadge, table, tableState, timeText, txt } from './dom.js';

const FORMATS = [
  ['jsonl', 'JSON lines'],
  ['csv', 'CSV'],
  ['cef', 'CEF'],
  ['ocsf', 'OCSF'],
  ['rfc5424', 'RFC 5424'],
];
const RANGES = [
  ['', 'All time'],
  ['-15m', 'Last 15 minutes'],
  ['-1h', 'Last hour'],
  ['-24h', 'Last 24 hours'],
  ['-7d', 'Last 7 days'],
  ['custom', 'Custom'],
];
const COLS = 8;

/** A SCIM string literal: the filter language takes JSON string syntax. */
const lit = (v) => JSON.stringify(v);

/**
 * The filter the API gets: the free box (in parentheses when anything is
 * added to it) and `attr eq "value"` for each attribute chosen, joined by and.
 */
export function composeFilter(free, attrs) {
  const parts = [];
  for (const [k, v] of attrs) if (v) parts.push(`${k} eq ${lit(v)}`);
  const f = free.trim();
  if (f) parts.unshift(parts.length ? `(${f})` : f);
  return parts.join(' and ');
}

export function mount(view, params = new URLSearchParams()) {
  const inputs = {
    range: select({ name: 'range' }, RANGES, ''),
    since: h('input', { type: 'text', name: 'since', placeholder: '-1h or 2026-11-22T09:00:00Z', spellcheck: 'false' }),
    until: h('input', { type: 'text', name: 'until', placeholder: 'now', spellcheck: 'false' }),
    outcome: select({ name: 'outcome' }, [['', 'Any'], 'granted', 'denied', 'success', 'failure'], ''),
    severity: select({ name: 'severity' }, [['', 'Any'], 'info', 'warning', 'error'], ''),
    type: select({ name: 'type' }, [['', 'Any'], 'token.request', 'admin.change', 'key.rotate', 'authorize.request', 'client.register', 'gateway.call'], ''),
    user: h('input', { type: 'text', name: 'user', placeholder: 'alice@example.com', spellcheck: 'false' }),
    client: h('input', { type: 'text', name: 'client', placeholder: 'client id', spellcheck: 'false' }),
    system: h('input', { type: 'text', name: 'system', placeholder: 'system id', spellcheck: 'false' }),
    filter: h('input', { type: 'text', name: 'filter', class: 'wide', placeholder: 'reason eq "no_grant" and scopes.name sw "repo:"', spellcheck: 'false' }),
    q: h('input', { type: 'search', name: 'q', placeholder: 'keywords' }),
    sortOrder: select({ name: 'sortOrder' }, [['DESCENDING', 'Newest first'], ['ASCENDING', 'Oldest first']], 'DESCENDING'),
    limit: select({ name: 'limit' }, ['10', '25', '50', '100', '250'], '50'),
  };
  const ATTRS = ['outcome', 'severity', 'type', 'user', 'client', 'system'];
  const effective = h('code', { id: 'log-effective-filter' });
  const err = notice('error');
  const info = notice('status');
  const form = h(
    'form',
    { class: 'filters', 'aria-label': 'Log selection' },
    h('div', { class: 'row' }, field('Time range', inputs.range), field('Since', inputs.since), field('Until', inputs.until), field('Order', inputs.sortOrder), field('Per page', inputs.limit)),
    h('div', { class: 'row' }, field('Outcome', inputs.outcome), field('Severity', inputs.severity), field('Type', inputs.type), field('User', inputs.user), field('Client', inputs.client), field('System', inputs.system)),
    h('div', { class: 'row' }, field('Filter (SCIM)', inputs.filter, 'Combined with the fields above by "and".'), field('Keywords', inputs.q)),
    h('div', { class: 'row actions' }, h('button', { type: 'submit' }, 'Search'), h('button', { type: 'reset', class: 'secondary' }, 'Reset'), h('small', { class: 'hint effective' }, 'Filter sent: ', effective)),
  );
  const downloads = FORMATS.map(([fmt, label]) => {
    const b = h('button', { type: 'button', class: 'secondary', 'data-format': fmt }, label);
    b.addEventListener('click', () => save(fmt, b));
    return b;
  });
  const { table: t, tbody } = table(null, ['Time', 'Outcome', 'Severity', 'User', 'Client', 'System', 'Scopes', 'Status detail'], 'grid log');
  t.id = 'log-table';
  const prev = h('button', { type: 'button', class: 'secondary' }, '← Previous');
  const next = h('button', { type: 'button', class: 'secondary' }, 'Next →');
  const pageLabel = h('span', { class: 'page-label', 'aria-live': 'polite' });
  const drawerBody = h('div', { class: 'drawer-body' });
  const drawerTitle = h('h2', { id: 'drawer-title' }, 'Event');
  const closeDrawer = h('button', { type: 'button', class: 'secondary', 'aria-label': 'Close the event' }, 'Close');
  const drawer = h('aside', { id: 'event-panel', class: 'drawer', role: 'dialog', 'aria-labelledby': 'drawer-title', hidden: true }, h('div', { class: 'drawer-head' }, drawerTitle, closeDrawer), drawerBody);

  view.append(
    h('h1', {}, 'System log'),
    form,
    err.el,
    h('div', { class: 'row toolbar', role: 'group', 'aria-label': 'Download the selection' }, h('span', { class: 'toolbar-label' }, 'Download:'), downloads, info.el),
    h('div', { class: 'scroll' }, t),
    h('div', { class: 'pager' }, prev, pageLabel, next),
    drawer,
  );

  // paging: the URL of each page shown so far; the next one from the Link header
  let pages = [];
  let nextUrl = null;
  let lastFocus = null;
  let seq = 0; // answers to an older request are dropped
  let openFirst = false; // #/logs?id=…: open the event's panel once it is shown

  function filterValue() {
    return composeFilter(
      inputs.filter.value,
      ATTRS.map((k) => [k, inputs[k].value.trim()]),
    );
  }

  function syncEffective() {
    effective.textContent = filterValue() || '(none)';
  }

  function selection() {
    const p = new URLSearchParams();
    for (const k of ['since', 'until', 'q']) {
      const v = inputs[k].value.trim();
      if (v) p.set(k, v);
    }
    const f = filterValue();
    if (f) p.set('filter', f);
    p.set('sortOrder', inputs.sortOrder.value);
    return p;
  }

  async function load(url) {
    const mine = ++seq;
    err.clear();
    view.dataset.loading = 'true';
    tableState(tbody, COLS, 'loading', 'Loading events…');
    prev.disabled = true;
    next.disabled = true;
    try {
      const r = await api('GET', url, undefined, { raw: true });
      const events = await r.json();
      if (mine !== seq) return;
      nextUrl = nextLink(r);
      if (nextUrl && !nextUrl.startsWith('/api/v1/logs')) nextUrl = null;
      render(Array.isArray(events) ? events : []);
    } catch (e) {
      if (mine !== seq) return;
      err.show(e.message);
      tableState(tbody, COLS, 'error', 'The events could not be loaded (see the message above).');
      nextUrl = null;
    } finally {
      if (mine === seq) {
        delete view.dataset.loading;
        prev.disabled = pages.length < 2;
        // ascending without `until` always links on (a tail); an empty page ends it here
        next.disabled = !nextUrl || tbody.querySelector('tr[data-id]') === null;
        pageLabel.textContent = `Page ${pages.length}`;
      }
    }
  }

  function render(events) {
    if (!events.length) {
      tableState(tbody, COLS, 'empty', pages.length > 1 ? 'No more events.' : 'No events match this selection.');
      return;
    }
    tbody.replaceChildren(...events.map(row));
    if (openFirst) {
      openFirst = false;
      const b = tbody.querySelector('tr[data-id] button.link');
      if (b) b.click();
    }
  }

  function scopeChips(scopes) {
    if (!Array.isArray(scopes) || !scopes.length) return '–';
    return scopes.map((s) => {
      const denied = s && s.outcome === 'denied';
      return h(
        'span',
        { class: `scope ${denied ? 'denied' : 'granted'}`, title: denied ? `denied${s.reason ? `: ${s.reason}` : ''}` : 'granted' },
        h('span', { class: 'mark', 'aria-hidden': 'true' }, denied ? '✗ ' : '✓ '),
        txt(s && s.name),
        h('span', { class: 'sr' }, denied ? ` (denied${s.reason ? `: ${s.reason}` : ''})` : ' (granted)'),
      );
    });
  }

  function detailOf(ev) {
    if (ev.status_detail) return ev.status_detail;
    if (ev.type === 'token.request') return ev.reason;
    // admin and key events: what changed
    return [ev.type, ev.action, ev.object].filter(Boolean).join(' ') || null;
  }

  function row(ev) {
    const open = h('button', { type: 'button', class: 'link', title: `${txt(ev.time)} · ${txt(ev.type)}`, 'aria-haspopup': 'dialog' }, timeText(ev.time));
    open.addEventListener('click', () => show(ev, open));
    return h(
      'tr',
      { 'data-id': txt(ev.id) },
      h('td', { class: 'time' }, open),
      h('td', { class: 'outcome' }, h('span', { class: `outcome ${ev.outcome === 'denied' || ev.outcome === 'failure' ? 'bad' : 'good'}` }, txt(ev.outcome))),
      h('td', {}, severityBadge(ev.severity)),
      h('td', { class: 'user' }, txt(ev.user ?? ev.actor)),
      h('td', {}, txt(ev.client)),
      h('td', {}, txt(ev.system)),
      h('td', { class: 'scopes' }, scopeChips(ev.scopes)),
      h('td', { class: 'detail' }, txt(detailOf(ev))),
    );
  }

  function section(title, pairs) {
    return h('section', { class: 'panel-section' }, h('h3', {}, title), dl(pairs));
  }

  function show(ev, from) {
    lastFocus = from;
    drawerTitle.textContent = `Event ${txt(ev.seq)} · ${txt(ev.type)}`;
    const tok = ev.token && typeof ev.token === 'object' ? ev.token : null;
    const req = ev.request && typeof ev.request === 'object' ? ev.request : {};
    const parts = [
      section('Decision', [
        ['Event id', ev.id, 'mono'],
        ['Time', ev.time],
        ['Outcome', ev.outcome],
        ['Severity', severityBadge(ev.severity)],
        ['Reason', ev.reason],
        ['Status detail', ev.status_detail],
        ['User', ev.user ?? ev.actor],
        ['Groups', ev.groups],
        ['Client', ev.client],
        ['System', ev.system],
        ['Access policy', ev.access_policy],
      ]),
    ];
    if (Array.isArray(ev.scopes) && ev.scopes.length) {
      parts.push(h('section', { class: 'panel-section' }, h('h3', {}, 'Scopes'), h('div', { class: 'scopes' }, scopeChips(ev.scopes))));
    }
    parts.push(
      tok
        ? section('Token', [
            ['Token id', tok.id, 'mono token-id'],
            ['Key id', tok.key_id, 'mono key-id'],
            ['Algorithm', tok.alg, 'alg'],
            ['Lifetime', typeof tok.lifetime === 'number' ? `${tok.lifetime} s` : tok.lifetime, 'lifetime'],
            ['Type', tok.type],
            ['Expires', tok.expires_at],
          ])
        : h('section', { class: 'panel-section' }, h('h3', {}, 'Token'), h('p', { class: 'hint' }, 'No token was issued.')),
      section('Request', [
        ['Request id', req.id, 'mono'],
        ['Endpoint', req.endpoint],
        ['Client IP', req.client_ip],
        ['Grant type', req.grant_type],
        ['Requested token type', req.requested_token_type],
        ['Target URL', req.target_url],
        ['User agent', req.user_agent],
        ['Subject issuer', req.subject_issuer],
        ['Subject token SHA-256', req.subject_token_sha256, 'mono'],
      ]),
    );
    if (ev.action || ev.object || ev.changes) {
      parts.push(section('Change', [['Action', ev.action], ['Object', ev.object], ['Changes', ev.changes ? h('pre', { class: 'json small' }, JSON.stringify(ev.changes, null, 2)) : null]]));
    }
    parts.push(
      section('Hash chain', [
        ['Sequence', ev.seq],
        ['Hash', ev.hash, 'mono hash'],
        ['Previous hash', ev.prev_hash, 'mono'],
      ]),
      h('details', { class: 'raw' }, h('summary', {}, 'Raw JSON'), h('pre', { class: 'json' }, JSON.stringify(ev, null, 2))),
    );
    drawerBody.replaceChildren(...parts);
    drawer.hidden = false;
    closeDrawer.focus();
  }

  function hideDrawer() {
    drawer.hidden = true;
    if (lastFocus && lastFocus.isConnected) lastFocus.focus();
  }

  async function save(fmt, button) {
    err.clear();
    info.clear();
    const p = selection();
    p.set('format', fmt);
    for (const b of downloads) b.disabled = true;
    info.show(`Preparing the ${button.textContent} download…`);
    try {
      const r = await api('GET', `/api/v1/logs/export?${p}`, undefined, { raw: true, accept: '*/*' });
      const blob = await r.blob();
      const cd = r.headers.get('Content-Disposition') || '';
      const m = /filename="?([^";]+)"?/i.exec(cd);
      const name = m ? m[1].replace(/[^A-Za-z0-9._-]/g, '_') : `mcpauth-log.${fmt}`;
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      info.show(`Downloaded ${name} (${blob.size} bytes).`);
    } catch (e) {
      info.clear();
      err.show(`Download failed: ${e.message}`);
    } finally {
      for (const b of downloads) b.disabled = false;
    }
  }

  function search() {
    syncEffective();
    const p = selection();
    p.set('limit', inputs.limit.value);
    pages = [`/api/v1/logs?${p}`];
    load(pages[0]);
  }

  inputs.range.addEventListener('change', () => {
    if (inputs.range.value === 'custom') {
      inputs.since.focus();
      return;
    }
    inputs.since.value = inputs.range.value;
    inputs.until.value = '';
  });
  for (const k of ['since', 'until']) inputs[k].addEventListener('input', () => (inputs.range.value = 'custom'));
  for (const k of [...ATTRS, 'filter']) inputs[k].addEventListener(inputs[k].tagName === 'SELECT' ? 'change' : 'input', syncEffective);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    search();
  });
  form.addEventListener('reset', () => setTimeout(search, 0));
  next.addEventListener('click', () => {
    if (!nextUrl) return;
    pages.push(nextUrl);
    load(nextUrl);
  });
  prev.addEventListener('click', () => {
    if (pages.length < 2) return;
    pages.pop();
    load(pages[pages.length - 1]);
  });
  closeDrawer.addEventListener('click', hideDrawer);
  const onKey = (e) => {
    if (e.key === 'Escape' && !drawer.hidden) hideDrawer();
  };
  document.addEventListener('keydown', onKey);

  const id = params.get('id');
  if (id) {
    inputs.filter.value = `id eq ${lit(id)}`;
    openFirst = true;
  }
  search();
  return () => {
    seq++;
    document.removeEventListener('keydown', onKey);
  };
}
