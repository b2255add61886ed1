// Reads mcpauth's SQLite database with the sqlite3 command-line shell
// (scripts/deps.sh test installs it), read-only, while the server runs.
import { execFileSync, spawnSync } from 'node:child_process';

let available;

/** Whether the sqlite3 shell is installed. */
export function haveSqlite() {
  if (available === undefined) {
    const r = spawnSync('sqlite3', ['-version'], { encoding: 'utf8' });
    available = r.status === 0;
  }
  return available;
}

/** Runs one query; returns its rows as objects (sqlite3 -json). */
export function query(dbPath, sql) {
  const out = execFileSync('sqlite3', ['-readonly', '-json', '-cmd', '.timeout 5000', dbPath, sql], {
    encoding: 'utf8',
    timeout: 10_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return out.trim() ? JSON.parse(out) : [];
}
