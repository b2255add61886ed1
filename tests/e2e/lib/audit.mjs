// The audit log, read straight from SQLite (lib/sqlite.mjs): events with their
// document parsed, and the hash chain of spec/audit-event.md recomputed.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { query } from './sqlite.mjs';

/** Events with seq > afterSeq, in order: {seq, id, type, outcome, ..., raw, doc}. */
export function auditEvents(dbPath, afterSeq = 0, where = '') {
  const rows = query(
    dbPath,
    `SELECT seq, id, time, type, outcome, severity, reason, user, client, system, doc, hash FROM audit_events WHERE seq > ${Number(afterSeq)} ${where ? `AND (${where})` : ''} ORDER BY seq`,
  );
  return rows.map((r) => ({ ...r, raw: r.doc, doc: JSON.parse(r.doc) }));
}

export function auditLastSeq(dbPath) {
  const [row] = query(dbPath, 'SELECT COALESCE(MAX(seq), 0) AS n FROM audit_events');
  return row.n;
}

/** JSON with object keys sorted at every level, no whitespace. */
export function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** spec/audit-event.md: hash = SHA-256 over prev_hash and the canonical JSON without hash. */
export function expectedHash(doc) {
  const { hash, ...rest } = doc;
  return crypto
    .createHash('sha256')
    .update((doc.prev_hash || '') + canonical(rest))
    .digest('base64url');
}

/** The whole log: seq 1..n without gaps, each event chained to the one before. Returns the events. */
export function assertAuditChain(dbPath) {
  const all = auditEvents(dbPath, 0);
  assert.ok(all.length > 0, 'the log is empty');
  all.forEach((e, i) => {
    const where = `event seq ${e.seq}`;
    assert.equal(e.seq, i + 1, `${where}: seq has a gap or does not start at 1`);
    assert.equal(e.doc.seq, e.seq, `${where}: doc.seq`);
    assert.equal(e.doc.id, e.id, `${where}: doc.id`);
    assert.equal(e.doc.hash, e.hash, `${where}: doc.hash`);
    assert.equal(e.doc.prev_hash, i === 0 ? null : all[i - 1].hash, `${where}: prev_hash is not the previous event's hash`);
    assert.equal(e.hash, expectedHash(e.doc), `${where}: hash does not match the event`);
  });
  return all;
}
