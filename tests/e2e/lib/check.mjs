// Assertions shared by the e2e tests.
import assert from 'node:assert/strict';

/** The admin API's error answer: exactly {"error": {"code", "message"}} with this status. */
export function assertError(r, status, code, message) {
  const where = `answer: ${r.status} ${r.text}`;
  assert.equal(r.status, status, where);
  assert.match(r.headers['content-type'] || '', /^application\/json\b/, where);
  assert.ok(r.json && typeof r.json === 'object', `not JSON: ${where}`);
  assert.deepEqual(Object.keys(r.json), ['error'], where);
  assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message'], where);
  assert.equal(typeof r.json.error.message, 'string', where);
  assert.ok(r.json.error.message.length > 0, where);
  if (code !== undefined) assert.equal(r.json.error.code, code, where);
  if (message instanceof RegExp) assert.match(r.json.error.message, message, where);
  else if (typeof message === 'string') assert.ok(r.json.error.message.includes(message), `message should mention ${JSON.stringify(message)}: ${where}`);
}

/** A 2xx answer with this status; returns its JSON. */
export function ok(r, status = 200) {
  assert.equal(r.status, status, `answer: ${r.status} ${r.text}`);
  return r.json;
}

/** Every member of `expected` is deep-equal in `actual` (actual may have more). */
export function assertFields(actual, expected, what = 'object') {
  assert.ok(actual && typeof actual === 'object', `${what}: not an object: ${JSON.stringify(actual)}`);
  for (const [k, v] of Object.entries(expected)) {
    assert.deepEqual(actual[k], v, `${what}.${k}: got ${JSON.stringify(actual[k])}, want ${JSON.stringify(v)}`);
  }
}

/** Path segment for an id ("github:user:alice@example.com", "https://idp…"). */
export const seg = (id) => encodeURIComponent(id);

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn() until it returns a truthy value or the time is up; returns the last value. */
export async function eventually(fn, { timeoutMs = 3000, intervalMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let v;
  for (;;) {
    v = await fn();
    if (v || Date.now() > deadline) return v;
    await sleep(intervalMs);
  }
}
