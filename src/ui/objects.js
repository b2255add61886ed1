// objects.js — policy at a glance: Systems, Clients and Access policies from
// the admin API. A system can be paused (every token request for it is then
// denied with server_paused) and an access policy switched on or off; the
// server validates each change and its message is shown as it is.
import { api, seg } from './api.js';
import { h, notice, table, txt } from './dom.js';

function page(view, { title, hint, path, headers, cells, action, empty }) {
  const err = notice('error');
  const msg = notice('status');
  const { table: t, tbody } = table(null, headers, 'grid objects');
  t.id = `${path}-table`;
  view.append(h('h1', {}, title), h('p', { class: 'hint' }, hint), err.el, msg.el, h('div', { class: 'scroll' }, t));
  let gone = false;

  function row(obj) {
    const tr = h('tr', { 'data-id': txt(obj.id) }, cells(obj).map((c) => h('td', {}, c)));
    if (action) {
      const b = h('button', { type: 'button', class: 'secondary' }, action.label(obj));
      b.addEventListener('click', async () => {
        b.disabled = true;
        err.clear();
        msg.clear();
        try {
          const out = await api('PATCH', `/api/v1/${path}/${seg(obj.id)}`, action.patch(obj));
          const fresh = row(out && out.id ? out : { ...obj, ...action.patch(obj) });
          tr.replaceWith(fresh);
          msg.show(action.done(out || obj));
          const nb = fresh.querySelector('button');
          if (nb) nb.focus();
        } catch (e) {
          err.show(e.message);
          b.disabled = false;
        }
      });
      tr.append(h('td', { class: 'buttons' }, b));
    }
    return tr;
  }

  (async () => {
    try {
      const list = await api('GET', `/api/v1/${path}`);
      if (gone) return;
      if (!Array.isArray(list) || !list.length) {
        tbody.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: headers.length }, empty)));
        return;
      }
      tbody.replaceChildren(...list.map(row));
    } catch (e) {
      if (!gone) err.show(e.message);
    }
  })();
  return () => {
    gone = true;
  };
}

const grantShort = (g) => (typeof g === 'string' ? g.replace(/^urn:ietf:params:oauth:grant-type:/, '') : txt(g));

export function mountSystems(view) {
  return page(view, {
    title: 'Systems',
    hint: 'Server workloads: the MCP servers tokens are issued for. A paused system gets no tokens (server_paused) until it is resumed.',
    path: 'systems',
    empty: 'No systems yet.',
    headers: ['ID', 'Name', 'Audience', 'Resource URLs', 'Scopes', 'Token type', 'Status', 'Action'],
    cells: (s) => [
      txt(s.id),
      txt(s.name),
      txt(s.audience),
      txt(s.resource_urls),
      Array.isArray(s.scopes) && s.scopes.length
        ? s.scopes.map((sc) => h('span', { class: `scope ${sc && sc.enabled === false ? 'denied' : 'granted'}`, title: sc && sc.enabled === false ? 'not enabled' : 'enabled' }, txt(sc && sc.name)))
        : '–',
      txt(s.token_type),
      h('span', { class: s.paused ? 'tag off' : 'tag on' }, s.paused ? 'paused' : 'serving'),
    ],
    action: {
      label: (s) => (s.paused ? 'Resume' : 'Pause'),
      patch: (s) => ({ paused: !s.paused }),
      done: (s) => `System ${txt(s.id)} ${s.paused ? 'paused: its token requests are denied' : 'resumed'}.`,
    },
  });
}

export function mountClients(view) {
  return page(view, {
    title: 'Clients',
    hint: 'Client workloads: the agents and gateways that ask for tokens.',
    path: 'clients',
    empty: 'No clients yet.',
    headers: ['ID', 'Name', 'Authentication', 'Grant types', 'Redirect URIs', 'Secret'],
    cells: (c) => [
      txt(c.id),
      txt(c.name),
      txt(c.auth),
      txt(Array.isArray(c.grant_types) ? c.grant_types.map(grantShort) : c.grant_types),
      txt(c.redirect_uris),
      c.auth === 'private_key_jwt' ? 'keys' : c.secret_set ? 'set' : '–',
    ],
  });
}

export function mountPolicies(view) {
  return page(view, {
    title: 'Access policies',
    hint: 'Which client may ask for tokens to which system. An inactive policy denies (no_access_policy) without being deleted.',
    path: 'access-policies',
    empty: 'No access policies yet.',
    headers: ['ID', 'Client', 'System', 'Client ID at the system', 'State', 'Action'],
    cells: (p) => [txt(p.id), txt(p.client), txt(p.system), txt(p.client_id_at_system), h('span', { class: p.active ? 'tag on' : 'tag off' }, p.active ? 'active' : 'inactive')],
    action: {
      label: (p) => (p.active ? 'Deactivate' : 'Activate'),
      patch: (p) => ({ active: !p.active }),
      done: (p) => `Access policy ${txt(p.id)} ${p.active ? 'activated' : 'deactivated'}.`,
    },
  });
}
