// objects.js — the policy: Systems, Clients, Access policies, Grants and
// Signing keys from the admin API. A system can be paused with one click
// (every token request for it is then denied with server_paused) and an
// access policy switched on or off; grants are created and deleted; signing
// keys created, activated and retired. Every change is an admin API call, so
// the server validates it and records it as an admin.change (or key.rotate)
// audit event; a refused change shows the server's message as it is.
import { api, seg } from './api.js';
import { confirmButton, field, h, notice, select, table, tableState, timeText, txt } from './dom.js';

/**
 * A table page: title, hint, the list at `path`, one row per object.
 * cells(obj) → the cells; actions(obj, ctx) → buttons for the last column,
 * where ctx.patch(body, doneText) PATCHes the object and redraws its row,
 * ctx.reload() reloads the list and ctx.err / ctx.msg are the page's notices.
 * before: nodes shown above the table (a form); extra(): a promise of data
 * the cells need (settings), loaded with the list.
 */
function page(view, { title, hint, path, api: apiPath, headers, cells, actions, empty, before, extra }) {
  const err = notice('error');
  const msg = notice('status');
  const cols = headers.length + (actions ? 1 : 0);
  const { table: t, tbody } = table(null, actions ? [...headers, 'Actions'] : headers, 'grid objects');
  t.id = `${path}-table`;
  view.append(h('h1', {}, title), h('p', { class: 'hint' }, hint), ...(before || []), err.el, msg.el, h('div', { class: 'scroll' }, t));
  const url = apiPath || `/api/v1/${path}`;
  let gone = false;
  let ctxData = null;

  const ctx = { err, msg, reload: () => load(), data: () => ctxData };

  function row(obj) {
    const tr = h('tr', { 'data-id': txt(obj.id ?? obj.kid) }, cells(obj, ctxData).map((c) => h('td', {}, c)));
    if (actions) {
      const rowCtx = {
        ...ctx,
        async patch(body, done) {
          err.clear();
          msg.clear();
          try {
            const out = await api('PATCH', `${url}/${seg(obj.id)}`, body);
            const fresh = row(out && out.id ? out : { ...obj, ...body });
            tr.replaceWith(fresh);
            msg.show(done(out || obj));
            const nb = fresh.querySelector('td.buttons button');
            if (nb) nb.focus();
          } catch (e) {
            err.show(e.message);
          }
        },
      };
      tr.append(h('td', { class: 'buttons' }, actions(obj, rowCtx)));
    }
    return tr;
  }

  async function load() {
    if (!tbody.querySelector('tr[data-id]')) tableState(tbody, cols, 'loading', `Loading ${title.toLowerCase()}…`);
    try {
      const [list, data] = await Promise.all([api('GET', url), extra ? extra().catch(() => null) : null]);
      if (gone) return;
      ctxData = data;
      if (!Array.isArray(list) || !list.length) {
        tableState(tbody, cols, 'empty', empty);
        return;
      }
      tbody.replaceChildren(...list.map(row));
    } catch (e) {
      if (gone) return;
      err.show(e.message);
      tableState(tbody, cols, 'error', `The ${title.toLowerCase()} could not be loaded (see the message above).`);
    }
  }

  load();
  return {
    ctx,
    stop() {
      gone = true;
    },
  };
}

const grantShort = (g) => (typeof g === 'string' ? g.replace(/^urn:ietf:params:oauth:grant-type:/, '') : txt(g));

function scopeList(scopes) {
  if (!Array.isArray(scopes) || !scopes.length) return '–';
  return h(
    'ul',
    { class: 'chips' },
    scopes.map((sc) => {
      const name = typeof sc === 'string' ? sc : sc && sc.name;
      const on = !(sc && sc.enabled === false);
      return h('li', { class: `scope ${on ? 'granted' : 'disabled'}`, title: on ? 'enabled' : 'disabled' }, txt(name), h('span', { class: 'state-word' }, on ? ' enabled' : ' disabled'));
    }),
  );
}

function urlList(urls) {
  if (!Array.isArray(urls) || !urls.length) return '–';
  return h('ul', { class: 'plain' }, urls.map((u) => h('li', { class: 'mono' }, txt(u))));
}

export function mountSystems(view) {
  const p = page(view, {
    title: 'Systems',
    hint: 'Server workloads: the MCP servers tokens are issued for. A paused system gets no tokens (denied with "Server paused") until it is resumed.',
    path: 'systems',
    empty: 'No systems yet. Add them with the CLI, the admin API or a policy file (mcpauth apply).',
    headers: ['ID', 'Name', 'Audience', 'Target URLs', 'Scopes', 'Algorithm', 'Lifetime', 'Token type', 'Status'],
    extra: () => api('GET', '/api/v1/settings'),
    cells: (s, settings) => [
      txt(s.id),
      txt(s.name),
      h('span', { class: 'mono' }, txt(s.audience)),
      urlList(s.resource_urls),
      scopeList(s.scopes),
      !s.signing_alg || s.signing_alg === 'inherit'
        ? h('span', { class: 'alg', title: 'the default_signing_alg setting' }, `inherit${settings && settings.default_signing_alg ? ` (${settings.default_signing_alg})` : ''}`)
        : h('span', { class: 'alg' }, txt(s.signing_alg)),
      s.max_lifetime
        ? h('span', { class: 'lifetime' }, txt(s.max_lifetime))
        : h('span', { class: 'lifetime', title: 'the default_lifetime setting' }, `default${settings && settings.default_lifetime ? ` (${settings.default_lifetime})` : ''}`),
      txt(s.token_type),
      h('span', { class: s.paused ? 'tag off' : 'tag on' }, s.paused ? 'paused' : 'serving'),
    ],
    actions: (s, ctx) => {
      const b = h('button', { type: 'button', class: s.paused ? 'secondary' : 'danger' }, s.paused ? 'Resume' : 'Pause');
      b.addEventListener('click', async () => {
        b.disabled = true;
        await ctx.patch({ paused: !s.paused }, (o) => `System ${txt(o.id)} ${o.paused ? 'paused: its token requests are denied (Server paused)' : 'resumed'}.`);
        b.disabled = false;
      });
      return b;
    },
  });
  return p.stop;
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
      urlList(c.redirect_uris),
      c.auth === 'private_key_jwt' ? 'keys' : c.secret_set ? 'set' : '–',
    ],
  }).stop;
}

export function mountPolicies(view) {
  return page(view, {
    title: 'Access policies',
    hint: 'Which client may ask for tokens to which system. An inactive policy denies (no_access_policy) without being deleted.',
    path: 'access-policies',
    empty: 'No access policies yet.',
    headers: ['ID', 'Client', 'System', 'Client ID at the system', 'State'],
    cells: (p) => [txt(p.id), txt(p.client), txt(p.system), txt(p.client_id_at_system), h('span', { class: p.active ? 'tag on' : 'tag off' }, p.active ? 'active' : 'inactive')],
    actions: (p, ctx) => {
      const b = h('button', { type: 'button', class: 'secondary' }, p.active ? 'Deactivate' : 'Activate');
      b.addEventListener('click', async () => {
        b.disabled = true;
        await ctx.patch({ active: !p.active }, (o) => `Access policy ${txt(o.id)} ${o.active ? 'activated' : 'deactivated'}.`);
        b.disabled = false;
      });
      return b;
    },
  }).stop;
}

/** Scope names typed in a box: separated by spaces or commas, duplicates dropped. */
const splitScopes = (s) => [...new Set(s.split(/[\s,]+/).filter(Boolean))];

export function mountGrants(view) {
  const f = {
    kind: select({ name: 'subject_kind' }, [['user', 'user'], ['group', 'group'], ['client', 'client']], 'user'),
    subject: h('input', { type: 'text', name: 'subject', spellcheck: 'false', placeholder: 'alice@example.com' }),
    system: select({ name: 'system' }, [['', 'Loading systems…']], ''),
    scopes: h('input', { type: 'text', name: 'scopes', class: 'wide', spellcheck: 'false', placeholder: 'repo:read repo:write' }),
  };
  const known = h('small', { class: 'hint' });
  const formErr = notice('error');
  const add = h('button', { type: 'submit' }, 'Create grant');
  const form = h(
    'form',
    { class: 'filters add', id: 'grant-form', 'aria-labelledby': 'grant-form-title', novalidate: true },
    h('h2', { id: 'grant-form-title' }, 'Create a grant'),
    h('div', { class: 'row' }, field('Subject type', f.kind), field('Subject', f.subject, 'a user id, a group name or a client id'), field('System', f.system)),
    h('div', { class: 'row' }, h('div', { class: 'field grow' }, h('label', { for: (f.scopes.id = 'grant-scopes') }, 'Scopes'), f.scopes, known)),
    h('div', { class: 'row actions' }, add),
    formErr.el,
  );
  let systems = [];

  const p = page(view, {
    title: 'Grants',
    hint: 'Who holds which scopes on a system: a user, a group (from the ID token) or a client (client credentials). A token is issued only for enabled scopes the subject holds.',
    path: 'grants',
    empty: 'No grants yet: every token request is denied with no_grant. Create one below.',
    headers: ['ID', 'Subject', 'System', 'Scopes'],
    cells: (g) => [h('span', { class: 'mono' }, txt(g.id)), txt(g.subject), txt(g.system), Array.isArray(g.scopes) && g.scopes.length ? h('ul', { class: 'chips' }, g.scopes.map((s) => h('li', { class: 'scope granted' }, txt(s)))) : '–'],
    actions: (g, ctx) =>
      confirmButton('Delete', 'Confirm delete', async () => {
        ctx.err.clear();
        ctx.msg.clear();
        try {
          await api('DELETE', `/api/v1/grants/${seg(g.id)}`);
          ctx.msg.show(`Grant ${g.id} deleted.`);
          await ctx.reload();
        } catch (e) {
          ctx.err.show(e.message);
        }
      }),
  });
  view.append(form);

  function syncKnown() {
    const s = systems.find((x) => x.id === f.system.value);
    const names = s && Array.isArray(s.scopes) ? s.scopes.map((x) => (typeof x === 'string' ? x : x && x.name)).filter(Boolean) : [];
    known.textContent = names.length ? `Scopes of ${s.id}: ${names.join(' ')}` : 'Separate scope names with spaces.';
    f.subject.placeholder = { user: 'alice@example.com', group: 'engineering', client: 'build-bot' }[f.kind.value];
  }
  f.system.addEventListener('change', syncKnown);
  f.kind.addEventListener('change', syncKnown);

  (async () => {
    try {
      systems = (await api('GET', '/api/v1/systems')) || [];
    } catch (e) {
      formErr.show(`The systems could not be loaded: ${e.message}`);
      systems = [];
    }
    f.system.replaceChildren(...(systems.length ? systems.map((s) => h('option', { value: s.id }, txt(s.id))) : [h('option', { value: '' }, 'No systems')]));
    syncKnown();
  })();

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formErr.clear();
    for (const el of Object.values(f)) el.removeAttribute('aria-invalid');
    const subject = f.subject.value.trim();
    const problem = !subject ? [f.subject, 'Subject: required.'] : !f.system.value ? [f.system, 'System: choose one.'] : null;
    if (problem) {
      problem[0].setAttribute('aria-invalid', 'true');
      problem[0].focus();
      formErr.show(problem[1]);
      return;
    }
    const body = { subject: `${f.kind.value}:${subject}`, system: f.system.value, scopes: splitScopes(f.scopes.value) };
    add.disabled = true;
    try {
      const out = await api('POST', '/api/v1/grants', body);
      f.subject.value = '';
      f.scopes.value = '';
      p.ctx.msg.show(`Grant ${txt(out && out.id)} created.`);
      await p.ctx.reload();
    } catch (err) {
      formErr.show(err.message);
    } finally {
      add.disabled = false;
    }
  });
  return p.stop;
}

const ALGS = ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'];
const unix = (s) => (typeof s === 'number' ? timeText(new Date(s * 1000).toISOString()).replace(/\.000$/, '') : txt(s));

export function mountKeys(view) {
  const alg = select({ name: 'alg', id: 'key-alg' }, ALGS, 'ES256');
  const create = h('button', { type: 'submit' }, 'Create key');
  const formErr = notice('error');
  const form = h(
    'form',
    { class: 'filters add', id: 'key-form', 'aria-labelledby': 'key-form-title' },
    h('h2', { id: 'key-form-title' }, 'Create a signing key'),
    h('p', { class: 'hint' }, 'A new key is active when no key of its algorithm is; otherwise it is published (in the JWKS) until you activate it.'),
    h('div', { class: 'row' }, field('Algorithm', alg), h('div', { class: 'field actions' }, create)),
    formErr.el,
  );
  const p = page(view, {
    title: 'Signing keys',
    hint: 'Per algorithm one key signs (active); published keys stay in the JWKS so the tokens they signed still verify; retired keys are gone for good. Rotate: create, activate the new key, retire the old one once its tokens have expired.',
    path: 'keys',
    empty: 'No signing keys.',
    headers: ['Key id', 'Algorithm', 'Status', 'Created', 'Updated'],
    before: [form],
    cells: (k) => [h('span', { class: 'mono' }, txt(k.kid)), txt(k.alg), h('span', { class: `tag key-${['active', 'published', 'retired'].includes(k.status) ? k.status : 'unknown'}` }, txt(k.status)), unix(k.created), unix(k.updated)],
    actions: (k, ctx) => {
      if (k.status === 'retired') return h('span', { class: 'hint' }, 'retired');
      const out = [];
      const step = async (what, b) => {
        ctx.err.clear();
        ctx.msg.clear();
        b.disabled = true;
        try {
          await api('POST', `/api/v1/keys/${seg(k.kid)}/${what}`);
          ctx.msg.show(`Key ${k.kid} ${what === 'activate' ? 'activated' : 'retired'}.`);
          await ctx.reload();
        } catch (e) {
          ctx.err.show(e.message);
        } finally {
          b.disabled = false;
        }
      };
      if (k.status !== 'active') {
        const b = h('button', { type: 'button', class: 'secondary' }, 'Activate');
        b.addEventListener('click', () => step('activate', b));
        out.push(b);
      }
      const r = confirmButton('Retire', 'Confirm retire', () => step('retire', r));
      out.push(r);
      return out;
    },
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formErr.clear();
    p.ctx.err.clear();
    create.disabled = true;
    try {
      const k = await api('POST', '/api/v1/keys', { alg: alg.value });
      p.ctx.msg.show(`Key ${txt(k && k.kid)} created (${txt(k && k.status)}).`);
      await p.ctx.reload();
    } catch (err) {
      formErr.show(err.message);
    } finally {
      create.disabled = false;
    }
  });
  return p.stop;
}
