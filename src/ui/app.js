// app.js — the console's shell: sign-in, the page router (#/logs, #/trace,
// #/systems, #/clients, #/access-policies, #/grants, #/keys,
// #/settings/exporters; a page may take a query, #/logs?id=…), the menu
// button of narrow screens, and sign-out. Each page module exports
// mount(container, params) and returns a function that stops whatever it
// started (streams, timers) when the page is left.
import { api, ApiError, session, setUnauthorizedHandler } from './api.js';
import * as exporters from './exporters.js';
import * as logs from './logs.js';
import * as objects from './objects.js';
import * as trace from './trace.js';

const pages = {
  logs: { title: 'System log', mount: logs.mount },
  trace: { title: 'MCP Authorization Tracing', mount: trace.mount },
  systems: { title: 'Systems', mount: objects.mountSystems },
  clients: { title: 'Clients', mount: objects.mountClients },
  'access-policies': { title: 'Access policies', mount: objects.mountPolicies },
  grants: { title: 'Grants', mount: objects.mountGrants },
  keys: { title: 'Signing keys', mount: objects.mountKeys },
  exporters: { title: 'Exporters', mount: exporters.mount },
};

const $ = (id) => document.getElementById(id);
let unmount = null;

function pageOf(hash) {
  const p = hash.replace(/^#\/?/, '').replace(/\?.*$/, '');
  if (p === 'settings/exporters' || p === 'settings' || p.startsWith('settings/')) return 'exporters';
  return pages[p] ? p : 'logs';
}

function leave() {
  if (unmount) {
    try {
      unmount();
    } catch {
      /* the page is going away anyway */
    }
  }
  unmount = null;
}

function route() {
  if (!session.token) return;
  leave();
  const name = pageOf(location.hash);
  const q = location.hash.indexOf('?');
  const params = new URLSearchParams(q < 0 ? '' : location.hash.slice(q + 1));
  const view = $('view');
  setMenu(false);
  view.replaceChildren();
  view.dataset.page = name;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${pages[name].title} · mcpauth`;
  unmount = pages[name].mount(view, params) || null;
}

/** Narrow screens: the nav is a menu opened by a button (CSS hides it otherwise). */
function setMenu(open) {
  $('menu').setAttribute('aria-expanded', String(open));
  $('nav').classList.toggle('open', open);
}

function showSignIn(message) {
  leave();
  $('view').hidden = true;
  $('view').replaceChildren();
  $('nav').hidden = true;
  $('menu').hidden = true;
  $('signout').hidden = true;
  $('signin').hidden = false;
  const err = $('signin-error');
  err.textContent = message || '';
  err.hidden = !message;
  $('signin-token').value = '';
  $('signin-token').focus();
}

function showConsole() {
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('menu').hidden = false;
  $('signout').hidden = false;
  $('view').hidden = false;
  route();
}

async function signIn(ev) {
  ev.preventDefault();
  const err = $('signin-error');
  const token = $('signin-token').value.trim();
  err.hidden = true;
  if (!token) {
    err.textContent = 'Paste the admin token.';
    err.hidden = false;
    return;
  }
  const button = ev.target.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    await api('GET', '/api/v1/systems', undefined, { token });
    session.set(token);
    $('signin-token').value = '';
    showConsole();
  } catch (e) {
    err.textContent =
      e instanceof ApiError && e.status === 401
        ? 'That token was not accepted (401). Check that it is the admin token of this server.'
        : `Cannot reach the server: ${e.message}`;
    err.hidden = false;
  } finally {
    button.disabled = false;
  }
}

function signOut() {
  session.clear();
  showSignIn();
}

document.addEventListener('DOMContentLoaded', () => {
  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  $('menu').addEventListener('click', () => setMenu($('menu').getAttribute('aria-expanded') !== 'true'));
  window.addEventListener('hashchange', route);
  setUnauthorizedHandler(() => {
    session.clear();
    showSignIn('The server no longer accepts this token (401). Sign in again.');
  });
  if (session.token) showConsole();
  else showSignIn();
});
