// dom.js — the console builds every element with h(): strings become text
// nodes, never markup. Nothing in the console assigns innerHTML, so a user
// name, scope or message from the log is shown as the characters it is.

/**
 * h('button', {class: 'x', type: 'button', onclick: fn}, 'Label', child, ...)
 * Attributes: `class`, `for`, any other name set with setAttribute; a function
 * value under an `on…` name becomes an event listener; `hidden`, `disabled`,
 * `checked`, `selected` as booleans; null/undefined/false values are skipped.
 * Children: strings and numbers as text, nodes as they are, arrays flattened,
 * null/undefined/false skipped.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'selected') el.defaultSelected = el.selected = true; // a form's reset comes back to it
    else if (k === 'checked') el.defaultChecked = el.checked = true;
    else if (k === 'hidden' || k === 'disabled' || k === 'required') el[k] = Boolean(v);
    else if (k === 'value') el.value = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** A <label> and its control, as one block. */
export function field(label, control, hint) {
  if (!control.id) control.id = `f-${Math.random().toString(36).slice(2, 10)}`;
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hint ? h('small', { class: 'hint' }, hint) : null);
}

/** A <select> from [value, label] pairs (or plain values). */
export function select(attrs, options, current) {
  return h(
    'select',
    attrs,
    options.map((o) => {
      const [v, l] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: v, selected: v === current }, l);
    }),
  );
}

/** A table with a header row; rows: arrays of cells (nodes or text). */
export function table(caption, headers, className) {
  const tbody = h('tbody');
  const t = h('table', { class: className || 'grid' }, caption ? h('caption', {}, caption) : null, h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))), tbody);
  return { table: t, tbody };
}

/** Text of a value for a cell: null and undefined as an en dash. */
export function txt(v) {
  if (v === null || v === undefined || v === '') return '–';
  if (Array.isArray(v)) return v.length ? v.join(', ') : '–';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

const SEVERITIES = new Set(['info', 'warning', 'error']);

/** A severity badge; the class is one of three known names, whatever the server sent. */
export function severityBadge(sev) {
  const known = SEVERITIES.has(sev) ? sev : 'unknown';
  return h('span', { class: `sev sev-${known}` }, txt(sev));
}

/** A message area (role=alert for errors, status otherwise) with show/clear. */
export function notice(kind = 'error') {
  const el = h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status', hidden: true });
  return {
    el,
    show(msg) {
      el.textContent = msg;
      el.hidden = !msg;
    },
    clear() {
      el.textContent = '';
      el.hidden = true;
    },
  };
}

/** Local time of an RFC 3339 timestamp, with the original in the title. */
export function timeText(iso) {
  if (typeof iso !== 'string') return txt(iso);
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/**
 * The state row of a table body: 'loading' (while the first answer is on its
 * way), 'empty' (the answer had no rows) or 'error' (it failed; the page's
 * notice says why). One full-width cell, so the header stays as it is.
 */
export function tableState(tbody, cols, kind, text) {
  const role = kind === 'error' ? 'alert' : 'status';
  tbody.replaceChildren(h('tr', { class: `state ${kind}`, 'data-state': kind }, h('td', { colspan: cols, role }, text)));
}

/** A definition list from [term, value] pairs (value: text or nodes); null values as an en dash. */
export function dl(pairs, className) {
  return h(
    'dl',
    { class: className || 'facts' },
    pairs.map(([k, v, cls]) => [h('dt', {}, k), h('dd', { class: cls || null }, v instanceof Node || Array.isArray(v) ? v : txt(v))]),
  );
}

/** A button that asks for a second press within 5 s before it runs `fn`. */
export function confirmButton(label, confirmLabel, fn, cls = 'danger') {
  const b = h('button', { type: 'button', class: cls }, label);
  let armed = null;
  b.addEventListener('click', async () => {
    if (!armed) {
      b.textContent = confirmLabel;
      armed = setTimeout(() => {
        armed = null;
        b.textContent = label;
      }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    b.disabled = true;
    try {
      await fn();
    } finally {
      b.disabled = false;
      b.textContent = label;
    }
  });
  return b;
}
