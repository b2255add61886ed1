// logs.js — System log: the audit events of GET /api/v1/logs, selected by
// time range, SCIM filter, keywords and order, paged by the Link rel="next"
// the server sends; an event's JSON in a drawer; the selection downloaded
// from /api/v1/logs/export (fetched with the token, saved through a Blob URL).
import { api, nextLink } from './api.js';
import { field, h, notice, select, severityBadge, table, timeText, txt } from './dom.js';

const FORMATS = [
  ['jsonl', 'JSON lines'],
  ['csv', 'CSV'],
  ['cef', 'CEF'],
  ['ocsf', 'OCSF (JSON lines)'],
  ['rfc5424', 'RFC 5424 (syslog)'],
];

export function mount(view) {
  const inputs = {
    since: h('input', { type: 'text', name: 'since', placeholder: '-1h or 2026-11-22T09:00:00Z', spellcheck: 'false' }),
    until: h('input', { type: 'text', name: 'until', placeholder: 'now', spellcheck: 'false' }),
    filter: h('input', { type: 'text', name: 'filter', class: 'wide', placeholder: 'outcome eq "denied" and user sw "alice"', spellcheck: 'false' }),
    q: h('input', { type: 'search', name: 'q', placeholder: 'keywords' }),
    sortOrder: select({ name: 'sortOrder' }, [['DESCENDING', 'Newest first'], ['ASCENDING', 'Oldest first']], 'DESCENDING'),
    limit: select({ name: 'limit' }, ['10', '25', '50', '100', '250'], '50'),
  };
  const err = notice('error');
  const info = notice('status');
  const form = h(
    'form',
    { class: 'filters', 'aria-label': 'Log selection' },
    h('div', { class: 'row' }, field('Since', inputs.since), field('Until', inputs.until), field('Order', inputs.sortOrder), field('Per page', inputs.limit)),
    h('div', { class: 'row' }, field('Filter (SCIM)', inputs.filter), field('Keywords', inputs.q)),
    h('div', { class: 'row actions' }, h('button', { type: 'submit' }, 'Search'), h('button', { type: 'reset', class: 'secondary' }, 'Reset')),
  );
  const format = select({ name: 'format' }, FORMATS, 'jsonl');
  const download = h('button', { type: 'button', class: 'secondary' }, 'Download');
  const { table: t, tbody } = table(null, ['Time', 'Type', 'Outcome', 'Severity', 'User', 'Client', 'System', 'Scopes', 'Detail'], 'grid log');
  t.id = 'log-table';
  const prev = h('button', { type: 'button', class: 'secondary' }, '← Previous');
  const next = h('button', { type: 'button', class: 'secondary' }, 'Next →');
  const pageLabel = h('span', { class: 'page-label', 'aria-live': 'polite' });
  const drawerPre = h('pre', { class: 'json' });
  const drawerTitle = h('h2', { id: 'drawer-title' }, 'Event');
  const closeDrawer = h('button', { type: 'button', class: 'secondary', 'aria-label': 'Close the event' }, 'Close');
  const drawer = h('aside', { class: 'drawer', role: 'dialog', 'aria-labelledby': 'drawer-title', hidden: true }, h('div', { class: 'drawer-head' }, drawerTitle, closeDrawer), drawerPre);

  view.append(
    h('h1', {}, 'System log'),
    form,
    err.el,
    h('div', { class: 'row toolbar' }, field('Download format', format), download, info.el),
    h('div', { class: 'scroll' }, t),
    h('div', { class: 'pager' }, prev, pageLabel, next),
    drawer,
  );

  // paging: the URL of each page shown so far; the next one from the Link header
  let pages = [];
  let nextUrl = null;
  let lastFocus = null;
  let seq = 0; // answers to an older request are dropped

  function selection() {
    const p = new URLSearchParams();
    for (const k of ['since', 'until', 'filter', 'q']) {
      const v = inputs[k].value.trim();
      if (v) p.set(k, v);
    }
    p.set('sortOrder', inputs.sortOrder.value);
    return p;
  }

  async function load(url) {
    const mine = ++seq;
    err.clear();
    view.dataset.loading = 'true';
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
      tbody.replaceChildren();
      nextUrl = null;
    } finally {
      if (mine === seq) {
        delete view.dataset.loading;
        prev.disabled = pages.length < 2;
        // ascending without `until` always links on (a tail); an empty page ends it here
        next.disabled = !nextUrl || tbody.children.length === 0 || tbody.querySelector('.empty') !== null;
        pageLabel.textContent = `Page ${pages.length}`;
      }
    }
  }

  function render(events) {
    if (!events.length) {
      tbody.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: 9 }, 'No events match.')));
      return;
    }
    tbody.replaceChildren(...events.map(row));
  }

  function row(ev) {
    const open = h('button', { type: 'button', class: 'link', title: txt(ev.time) }, timeText(ev.time));
    open.addEventListener('click', () => show(ev, open));
    const scopes = Array.isArray(ev.scopes)
      ? ev.scopes.map((s) => h('span', { class: `scope ${s && s.outcome === 'denied' ? 'denied' : 'granted'}` }, txt(s && s.name)))
      : '–';
    const tr = h(
      'tr',
      { 'data-id': txt(ev.id) },
      h('td', {}, open),
      h('td', {}, txt(ev.type)),
      h('td', {}, h('span', { class: `outcome ${ev.outcome === 'denied' || ev.outcome === 'failure' ? 'bad' : 'good'}` }, txt(ev.outcome))),
      h('td', {}, severityBadge(ev.severity)),
      h('td', { class: 'user' }, txt(ev.user ?? ev.actor)),
      h('td', {}, txt(ev.client)),
      h('td', {}, txt(ev.system ?? ev.object)),
      h('td', { class: 'scopes' }, scopes),
      h('td', { class: 'detail' }, txt(ev.status_detail ?? ev.reason ?? ev.action)),
    );
    return tr;
  }

  function show(ev, from) {
    lastFocus = from;
    drawerTitle.textContent = `Event ${txt(ev.seq)} · ${txt(ev.type)}`;
    drawerPre.textContent = JSON.stringify(ev, null, 2);
    drawer.hidden = false;
    closeDrawer.focus();
  }

  function hideDrawer() {
    drawer.hidden = true;
    if (lastFocus && lastFocus.isConnected) lastFocus.focus();
  }

  async function save() {
    err.clear();
    info.clear();
    const p = selection();
    p.set('format', format.value);
    download.disabled = true;
    try {
      const r = await api('GET', `/api/v1/logs/export?${p}`, undefined, { raw: true, accept: '*/*' });
      const blob = await r.blob();
      const cd = r.headers.get('Content-Disposition') || '';
      const m = /filename="?([^";]+)"?/i.exec(cd);
      const name = m ? m[1].replace(/[^A-Za-z0-9._-]/g, '_') : `mcpauth-log.${format.value}`;
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      info.show(`Downloaded ${name} (${blob.size} bytes).`);
    } catch (e) {
      err.show(`Download failed: ${e.message}`);
    } finally {
      download.disabled = false;
    }
  }

  function search() {
    const p = selection();
    p.set('limit', inputs.limit.value);
    pages = [`/api/v1/logs?${p}`];
    load(pages[0]);
  }

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
  download.addEventListener('click', save);
  closeDrawer.addEventListener('click', hideDrawer);
  const onKey = (e) => {
    if (e.key === 'Escape' && !drawer.hidden) hideDrawer();
  };
  document.addEventListener('keydown', onKey);

  search();
  return () => {
    seq++;
    document.removeEventListener('keydown', onKey);
  };
}
