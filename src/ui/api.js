// api.js — every call the console makes goes through here: the admin token
// travels in an Authorization header only (never a cookie or a URL), and it
// is kept in sessionStorage, so it lives as long as this tab.

const KEY = 'mcpauth.adminToken';

export const session = {
  get token() {
    return sessionStorage.getItem(KEY);
  },
  set(token) {
    sessionStorage.setItem(KEY, token);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

/** An answer that was not 2xx: status, the API's error code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};
/** What to do when a signed-in call answers 401 (the token was rotated, say). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/**
 * fetch() with the admin token. body: an object sent as JSON. opts.token: this
 * token instead of the session's (sign-in); opts.raw: return the Response;
 * opts.signal; opts.accept. Throws ApiError on a non-2xx answer, with the
 * server's message ({"error": {"code", "message"}}) when it sent one.
 */
export async function api(method, path, body, opts = {}) {
  const token = opts.token ?? session.token;
  const headers = { Accept: opts.accept || 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, signal: opts.signal, cache: 'no-store', credentials: 'omit', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    if (!opts.token) onUnauthorized();
    throw new ApiError(401, 'unauthorized', 'The admin token was not accepted (401).');
  }
  if (!r.ok) throw await errorOf(r);
  if (opts.raw) return r;
  if (r.status === 204) return null;
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

async function errorOf(r) {
  let code = `http_${r.status}`;
  let message = `${r.status} ${r.statusText}`.trim();
  try {
    const j = await r.json();
    if (j && j.error && typeof j.error === 'object') {
      code = String(j.error.code || code);
      message = String(j.error.message || message);
    } else if (j && typeof j.error === 'string') {
      code = j.error;
      message = String(j.error_description || j.error);
    }
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(r.status, code, message);
}

/** The path and query of a Link header's rel="next" target, or null. */
export function nextLink(response) {
  const link = response.headers.get('Link');
  if (!link) return null;
  for (const part of link.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (!m || !/(^|;)\s*rel\s*=\s*"?next"?\s*(;|$)/i.test(m[2])) continue;
    try {
      const u = new URL(m[1], location.href);
      return u.pathname + u.search; // always this origin: the issuer URL may name another host
    } catch {
      return null;
    }
  }
  return null;
}

/** Path segment of an object id. */
export const seg = (id) => encodeURIComponent(id);
