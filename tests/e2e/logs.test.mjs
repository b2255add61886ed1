// The system log API (spec/http-api.md, "System log API") and `mcpauth logs`,
// end to end: a log holding granted and denied token requests of every reason
// of spec/policy.md and admin changes; SCIM filters over every attribute,
// each result compared with the same selection computed here over the whole
// log; paging by the Link rel="next" URL (ascending tail, until, descending);
// tailing while 200 token requests are written; malformed and hostile input;
// every download format parsed back; hash-chain verification, intact and
// after a stored event was changed behind the server's back; and the CLI.
//
// The main server (the first before()) is shared by the query, paging, export,
// injection and CLI tests, which write nothing to it (only reads), so the log
// read at the start of a test is the whole log for that test. Tailing and
// tampering start their own servers.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';

import { assertError, ok, sleep } from './lib/check.mjs';
import { parseCsv } from './lib/csv.mjs';
import { assertCleanExit, logServersOnFailure, request, startServer } from './lib/server.mjs';
import { haveSqlite, query as sqlQuery } from './lib/sqlite.mjs';

logServersOnFailure();

const noSqlite = haveSqlite() ? false : 'the sqlite3 shell is not installed (scripts/deps.sh test installs it)';
const T = 30_000; // every test's bound

const TE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JB = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const CC = 'client_credentials';
const TT_ID_JAG = 'urn:ietf:params:oauth:token-type:id-jag';
const TT_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
const TT_ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
const GITHUB_AUD = 'https://auth.github.example/';
const GITHUB_RESOURCE = 'https://mcp.github.example/mcp';
const ALICE = 'alice@example.com';
const SECRETS = { desktop: 'desktop-secret-e2e-logs', bot: 'bot-secret-e2e-logs' };

/** Hostile values that must survive every encoding. */
const EVIL_UA = 'ev"il,agent';
const WEIRD_USER = 'o\'brien, "the" boss\r\nline2';
const UNICODE_USER = 'zoë-ünïcødé@example.com';
const PROBE_UA = "q-probe 50%off_now; it's \\back";

/** spec/policy.md: every denial reason, with the HTTP status of its OAuth error. */
const REASONS = {
  invalid_request: 400,
  unsupported_grant_type: 400,
  invalid_client: 401,
  unauthorized_client: 400,
  invalid_subject_token: 400,
  unknown_system: 400,
  no_access_policy: 400,
  server_paused: 400,
  target_url_not_registered: 400,
  scope_not_enabled: 400,
  no_grant: 400,
  no_signing_key: 500,
};

/** The CSV download's header (audit/encode.c; spec/audit-event.md "one column per flat field"). */
const CSV_COLUMNS = [
  'id', 'seq', 'time', 'type', 'outcome', 'severity', 'reason', 'status_detail', 'user', 'groups', 'client', 'system',
  'audience', 'access_policy', 'scopes', 'token.id', 'token.type', 'token.key_id', 'token.alg', 'token.lifetime',
  'token.expires_at', 'request.id', 'request.endpoint', 'request.grant_type', 'request.requested_token_type',
  'request.target_url', 'request.client_ip', 'request.user_agent', 'request.subject_token_sha256',
  'request.subject_issuer', 'node', 'actor', 'action', 'object', 'prev_hash', 'hash',
];

const FORMATS = {
  jsonl: { type: /^application\/x-ndjson\b/, ext: 'jsonl' },
  csv: { type: /^text\/csv\b/, ext: 'csv' },
  cef: { type: /^text\/plain\b/, ext: 'cef' },
  ocsf: { type: /^application\/x-ndjson\b/, ext: 'ocsf.jsonl' },
  rfc5424: { type: /^text\/plain\b/, ext: 'log' },
};

// ---------------------------------------------------------------- helpers

/** The policy of these tests for a server whose issuer is `issuer`: one system per reason to provoke. */
function policy(issuer) {
  const sys = (id, audience, scopes, more = {}) => ({
    id,
    audience,
    resource_urls: [audience === issuer ? `${issuer}/mcp/${id}` : `${audience}mcp`],
    scopes: scopes.map(([name, enabled]) => ({ name, enabled })),
    ...more,
  });
  return {
    systems: [
      sys('github', GITHUB_AUD, [['repo:read', true], ['repo:write', false]], { resource_urls: [GITHUB_RESOURCE], token_type: 'id-jag' }),
      sys('docs', issuer, [['docs:read', true], ['docs:write', true]], { token_type: 'access_token' }),
      sys('paused-sys', 'https://paused.example/', [['p:read', true]], { paused: true }),
      sys('orphan', 'https://orphan.example/', [['o:read', true]]),
      sys('rsa-sys', 'https://rsa.example/', [['r:read', true]], { signing_alg: 'RS256' }),
    ],
    clients: [
      { id: 'desktop-agent', auth: 'client_secret_post', secret: SECRETS.desktop, grant_types: [TE, JB] },
      { id: 'build-bot', auth: 'client_secret_post', secret: SECRETS.bot, grant_types: [CC] },
    ],
    access_policies: [
      { id: 'desktop-github', client: 'desktop-agent', system: 'github', active: true },
      { id: 'desktop-docs', client: 'desktop-agent', system: 'docs', active: true },
      { id: 'desktop-paused', client: 'desktop-agent', system: 'paused-sys', active: true },
      { id: 'desktop-rsa', client: 'desktop-agent', system: 'rsa-sys', active: true },
      { id: 'bot-docs', client: 'build-bot', system: 'docs', active: true },
    ],
    grants: [
      { subject: `user:${ALICE}`, system: 'github', scopes: ['repo:read', 'repo:write'] },
      { subject: 'group:engineering', system: 'docs', scopes: ['docs:read'] },
      { subject: 'client:build-bot', system: 'docs', scopes: ['docs:read'] },
      { subject: `user:${ALICE}`, system: 'rsa-sys', scopes: ['r:read'] },
      { subject: `user:${ALICE}`, system: 'paused-sys', scopes: ['p:read'] },
      { subject: `user:${ALICE}`, system: 'orphan', scopes: ['o:read'] },
    ],
  };
}

async function applyPolicy(srv) {
  ok(await srv.api('POST', '/api/v1/apply', policy(srv.url)));
}

/** A subject token of the development IdP. */
async function idToken(srv, user, groups = []) {
  const j = ok(await srv.api('POST', '/api/v1/dev/id-token', { user, groups }));
  assert.equal(typeof j.id_token, 'string');
  return j.id_token;
}

/** POST /oauth/token with a form (values in order), client_secret_post credentials inside. */
function tokenRequest(srv, params, userAgent = 'mcpauth-e2e-logs') {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) form.append(k, v);
  return request(`${srv.url}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': userAgent },
    body: form.toString(),
  });
}

const asDesktop = { client_id: 'desktop-agent', client_secret: SECRETS.desktop };
const asBot = { client_id: 'build-bot', client_secret: SECRETS.bot };

const jwtPart = (jwt, i) => JSON.parse(Buffer.from(jwt.split('.')[i], 'base64url').toString('utf8'));

/** The URL of a response's Link rel="next", or null. */
function nextLink(r) {
  const h = r.headers.link;
  if (!h) return null;
  const m = /<([^>]*)>\s*;\s*rel="next"/.exec(h);
  return m ? m[1] : null;
}

/** GET of an absolute URL (a next link, used exactly as given) with the admin token. */
function getUrl(srv, url) {
  return request(url, { headers: { authorization: `Bearer ${srv.token}` } });
}

const logsPath = (params = {}) => `/api/v1/logs?${new URLSearchParams(params)}`;

/**
 * Every event of a selection: pages of `limit` following the next link until a page
 * comes back empty (ascending, no until) or there is no next link. Returns the events.
 */
async function readAll(srv, params = {}, limit = 1000) {
  let url = srv.url + logsPath({ ...params, limit });
  const events = [];
  for (let guard = 0; guard < 10_000; guard++) {
    const r = await getUrl(srv, url);
    const page = ok(r);
    assert.ok(Array.isArray(page), `not an array: ${r.text}`);
    events.push(...page);
    const next = nextLink(r);
    if (!next || page.length === 0) return events;
    url = next;
  }
  throw new Error('readAll: no end');
}

const seqs = (evs) => evs.map((e) => e.seq);
const ids = (evs) => evs.map((e) => e.id);

/** ASCII-only lower case: SQLite's LIKE folds ASCII letters only. */
const asciiLower = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** Raw stored documents by seq (for q, which matches the document text). */
function rawDocs(srv) {
  return new Map(sqlQuery(srv.dbPath, 'SELECT seq, doc FROM audit_events ORDER BY seq').map((r) => [r.seq, r.doc]));
}

function sqliteCount(srv) {
  return sqlQuery(srv.dbPath, 'SELECT count(*) AS n FROM audit_events')[0].n;
}

/** The event ids a download holds, in order, per format. */
function exportIds(format, text) {
  switch (format) {
    case 'jsonl':
      return jsonLines(text).map((e) => e.id);
    case 'ocsf':
      return jsonLines(text).map((e) => e.metadata.uid);
    case 'csv': {
      const rows = parseCsv(text);
      assert.deepEqual(rows[0], CSV_COLUMNS, 'the CSV header');
      return rows.slice(1).map((r) => r[0]);
    }
    case 'cef':
      return lines(text).map((l) => {
        const m = / externalId=([0-9a-f-]+)/.exec(l);
        assert.ok(m, `a CEF line without externalId: ${l}`);
        return m[1];
      });
    case 'rfc5424':
      return lines(text).map((l) => {
        const m = /\[mcpauth@32473 id="([0-9a-f-]+)"/.exec(l);
        assert.ok(m, `an RFC 5424 line without [mcpauth@32473 id="…": ${l}`);
        return m[1];
      });
    default:
      throw new Error(format);
  }
}

/** Lines of a newline-terminated download (each record ends with \n, no blank lines). */
function lines(text) {
  if (text === '') return [];
  assert.ok(text.endsWith('\n'), 'the download ends with a newline');
  const ls = text.slice(0, -1).split('\n');
  for (const l of ls) assert.notEqual(l, '', 'a blank line in the download');
  return ls;
}

const jsonLines = (text) => lines(text).map((l) => JSON.parse(l));

/** The MSG of an RFC 5424 line: what follows the structured data (values escape \\, " and ]). */
function rfc5424Msg(line) {
  const start = line.indexOf(' [mcpauth@32473');
  assert.ok(start > 0, line);
  let i = start + 2;
  let quoted = false;
  for (; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ']') break;
  }
  assert.equal(line[i + 1], ' ', `no MSG after the structured data: ${line}`);
  return line.slice(i + 2);
}

/** GET /api/v1/logs/export: 200, attachment, the format's content type; returns the text. */
async function download(srv, format, params = {}) {
  const r = await srv.api('GET', `/api/v1/logs/export?${new URLSearchParams({ format, ...params })}`);
  assert.equal(r.status, 200, `export ${format}: ${r.status} ${r.text.slice(0, 300)}`);
  assert.match(r.headers['content-type'] || '', FORMATS[format].type, `export ${format}: content type`);
  const disp = r.headers['content-disposition'] || '';
  assert.match(disp, /^attachment\b/, `export ${format}: Content-Disposition ${disp}`);
  const ext = FORMATS[format].ext.replace('.', '\\.');
  assert.match(disp, new RegExp(`filename="[^"/\\\\]+\\.${ext}"`), `export ${format}: file name in ${disp}`);
  return r.text;
}

// ---------------------------------------------------------------- the main server

/** What the tests need to know about the events produced. */
const main = {};

/**
 * Produces admin changes, granted requests of each grant type, a denial of every
 * reason, and the hostile values. Checks each answer's status so that every
 * event is the one intended.
 */
async function produceEvents(srv) {
  const issuer = srv.url;
  await applyPolicy(srv);
  const alice = await idToken(srv, ALICE, ['engineering']);
  const bob = await idToken(srv, 'bob@example.com');
  const weird = await idToken(srv, WEIRD_USER);
  const unicode = await idToken(srv, UNICODE_USER);
  const exchange = (over = {}) => ({
    grant_type: TE,
    requested_token_type: TT_ID_JAG,
    audience: GITHUB_AUD,
    resource: GITHUB_RESOURCE,
    scope: 'repo:read',
    subject_token: alice,
    subject_token_type: TT_ID_TOKEN,
    ...asDesktop,
    ...over,
  });
  const docs = { audience: issuer, resource: `${issuer}/mcp/docs`, scope: 'docs:read' };
  const granted = {};
  const want = async (name, status, params, ua) => {
    const r = await tokenRequest(srv, params, ua);
    assert.equal(r.status, status, `${name}: ${r.status} ${r.text}`);
    if (status === 200) granted[name] = r.json;
    return r;
  };

  await want('id-jag', 200, exchange());
  await want('partial', 200, exchange({ scope: 'repo:read repo:write' }));
  await want('access-token', 200, exchange({ requested_token_type: TT_ACCESS, ...docs }));
  const jag = await want('docs-id-jag', 200, exchange(docs));
  await want('jwt-bearer', 200, { grant_type: JB, assertion: jag.json.access_token, ...asDesktop });
  await want('client-credentials', 200, { grant_type: CC, resource: `${issuer}/mcp/docs`, scope: 'docs:read', ...asBot }, EVIL_UA);
  await want('probe', 200, { grant_type: CC, resource: `${issuer}/mcp/docs`, ...asBot }, PROBE_UA);

  const denials = {
    invalid_request: { ...asBot, scope: 'x' },
    unsupported_grant_type: { grant_type: 'password', ...asBot },
    invalid_client: exchange({ client_secret: 'not-the-secret' }),
    unauthorized_client: exchange(asBot),
    invalid_subject_token: exchange({ subject_token: 'not-a-jwt' }),
    unknown_system: exchange({ audience: 'https://nowhere.example/', resource: 'https://nowhere.example/mcp' }),
    no_access_policy: exchange({ audience: 'https://orphan.example/', resource: 'https://orphan.example/mcp', scope: 'o:read' }),
    server_paused: exchange({ audience: 'https://paused.example/', resource: 'https://paused.example/mcp', scope: 'p:read' }),
    target_url_not_registered: exchange({ resource: 'https://mcp.github.example/other' }),
    scope_not_enabled: exchange({ scope: 'repo:write' }),
    no_grant: exchange({ subject_token: bob }),
    no_signing_key: exchange({ audience: 'https://rsa.example/', resource: 'https://rsa.example/mcp', scope: 'r:read' }),
  };
  for (const [reason, params] of Object.entries(denials)) await want(reason, REASONS[reason], params);
  await want('weird user', 400, exchange({ subject_token: weird }));
  await want('unicode user', 400, exchange({ subject_token: unicode }));
  // One more admin change after the token requests, so that the log interleaves kinds.
  ok(await srv.api('PATCH', '/api/v1/systems/orphan', { name: 'Orphan, "no" policy' }));

  const idJag = granted['id-jag'].access_token;
  main.jti = jwtPart(idJag, 1).jti;
  main.kid = jwtPart(idJag, 0).kid;
  assert.ok(main.jti && main.kid, 'the ID-JAG has a jti and a kid');
}

before(async () => {
  main.srv = await startServer();
  await produceEvents(main.srv);
  main.all = await readAll(main.srv);
});

after(async () => {
  if (main.srv) assertCleanExit(assert, await main.srv.close());
});

// ---------------------------------------------------------------- lib/csv.mjs

describe('lib/csv.mjs: a strict RFC 4180 parser', () => {
  test('well-formed input', () => {
    const cases = [
      ['', []],
      ['a', [['a']]],
      ['a,b\r\n', [['a', 'b']]],
      ['a,b\r\nc,d', [['a', 'b'], ['c', 'd']]],
      ['a,,\r\n', [['a', '', '']]],
      [',\r\n', [['', '']]],
      ['"",x\r\n', [['', 'x']]],
      ['"a,b","c""d"\r\n', [['a,b', 'c"d']]],
      ['"line1\r\nline2",z\r\n', [['line1\r\nline2', 'z']]],
      ['"lf\nonly"\r\n', [['lf\nonly']]],
      ['""""\r\n', [['"']]],
      ['"ev""il,agent",1\r\n2,"x"', [['ev"il,agent', '1'], ['2', 'x']]],
      ['ünï,✓\r\n', [['ünï', '✓']]],
      ['a\r\n\r\nb\r\n', [['a'], [''], ['b']]],
    ];
    for (const [text, want] of cases) assert.deepEqual(parseCsv(text), want, JSON.stringify(text));
  });

  test('malformed input throws', () => {
    for (const text of ['a\nb', 'a\rb', 'a"b', '"abc', '"a"b,c', 'x,"unterminated\r\n', '"a" ,b', 'a,b\n']) {
      assert.throws(() => parseCsv(text), /CSV: /, JSON.stringify(text));
    }
  });
});

// ---------------------------------------------------------------- the events

test('the log holds admin changes, granted requests and a denial of every reason', { timeout: T }, () => {
  const all = main.all;
  assert.deepEqual(seqs(all), all.map((_, i) => i + 1), 'seq 1..n without gaps, ascending');
  assert.equal(new Set(ids(all)).size, all.length, 'ids are unique');
  const tr = all.filter((e) => e.type === 'token.request');
  for (const [reason] of Object.entries(REASONS)) {
    const evs = tr.filter((e) => e.reason === reason);
    assert.ok(evs.length >= 1, `no ${reason} event`);
    for (const e of evs) assert.equal(e.outcome, 'denied', JSON.stringify(e));
  }
  assert.equal(tr.filter((e) => e.outcome === 'granted').length, 7, 'seven granted requests');
  for (const g of [TE, JB, CC]) assert.ok(tr.some((e) => e.outcome === 'granted' && e.request.grant_type === g), `a granted ${g}`);
  assert.ok(all.some((e) => e.type === 'admin.change'), 'admin changes');
  assert.ok(tr.some((e) => e.user === WEIRD_USER), 'the hostile user name is recorded as is');
  assert.ok(tr.some((e) => e.request.user_agent === EVIL_UA), 'the hostile user agent is recorded as is');
  const ev = tr.find((e) => e.token?.id === main.jti);
  assert.ok(ev, 'the ID-JAG jti is the event token.id');
  assert.equal(ev.token.key_id, main.kid);
});

// ---------------------------------------------------------------- filters

describe('filters: each attribute, each operator, against the same selection computed here', () => {
  const has = (v) => v !== null && v !== undefined;
  const str = (v) => (typeof v === 'string' ? v : null);
  const lc = (v) => (typeof v === 'string' ? asciiLower(v) : null);
  const scopeNames = (e) => (Array.isArray(e.scopes) ? e.scopes.map((s) => s.name).filter(has) : []);
  // [filter, predicate, may the selection be empty?]
  const queries = () => {
    const grantedId = main.all.find((e) => e.type === 'token.request' && e.outcome === 'granted').id;
    const issuer = main.srv.url;
    return [
      [`id eq "${grantedId}"`, (e) => e.id === grantedId],
      ['seq gt 5 and seq lt 12', (e) => e.seq > 5 && e.seq < 12],
      ['seq ge 30 or seq le 2', (e) => e.seq >= 30 || e.seq <= 2],
      ['seq eq 7', (e) => e.seq === 7],
      ['type eq "token.request"', (e) => e.type === 'token.request'],
      ['type ne "token.request"', (e) => e.type !== 'token.request'],
      ['type eq "key.rotate" or type eq "admin.change"', (e) => e.type === 'key.rotate' || e.type === 'admin.change'],
      ['outcome eq "denied"', (e) => e.outcome === 'denied'],
      ['outcome eq "granted"', (e) => e.outcome === 'granted'],
      ['outcome eq "success"', (e) => e.outcome === 'success'],
      ['severity eq "warning"', (e) => e.severity === 'warning'],
      ['severity eq "error"', (e) => e.severity === 'error'],
      ['severity ne "info"', (e) => e.severity !== 'info'],
      ...Object.keys(REASONS).map((r) => [`reason eq "${r}"`, (e) => e.reason === r]),
      ['reason pr', (e) => has(e.reason)],
      ['not (reason pr)', (e) => !has(e.reason)],
      ['reason sw "no_"', (e) => lc(e.reason)?.startsWith('no_') === true],
      ['reason ew "_client"', (e) => lc(e.reason)?.endsWith('_client') === true],
      ['reason co "target"', (e) => lc(e.reason)?.includes('target') === true],
      [`user eq "${ALICE}"`, (e) => e.user === ALICE],
      ['user sw "alice"', (e) => lc(e.user)?.startsWith('alice') === true],
      ['user ew "@example.com"', (e) => lc(e.user)?.endsWith('@example.com') === true],
      ['user co "brien"', (e) => lc(e.user)?.includes('brien') === true],
      ['user pr', (e) => has(e.user)],
      ['user eq null', (e) => !has(e.user)],
      [`user eq ${JSON.stringify(WEIRD_USER)}`, (e) => e.user === WEIRD_USER],
      [`user eq ${JSON.stringify(UNICODE_USER)}`, (e) => e.user === UNICODE_USER],
      ['user co "ünïcødé"', (e) => str(e.user)?.includes('ünïcødé') === true],
      ['client eq "build-bot"', (e) => e.client === 'build-bot'],
      ['client ne "build-bot" and client pr', (e) => has(e.client) && e.client !== 'build-bot'],
      ['client sw "BUILD"', (e) => lc(e.client)?.startsWith('build') === true],
      ['system eq "github" or system eq "docs"', (e) => e.system === 'github' || e.system === 'docs'],
      ['system co "aus"', (e) => lc(e.system)?.includes('aus') === true],
      [`audience eq "${issuer}"`, (e) => e.audience === issuer],
      ['audience ew ".example/"', (e) => lc(e.audience)?.endsWith('.example/') === true],
      ['access_policy eq "desktop-github"', (e) => e.access_policy === 'desktop-github'],
      ['access_policy pr', (e) => has(e.access_policy)],
      ['not (access_policy pr) and type eq "token.request"', (e) => !has(e.access_policy) && e.type === 'token.request'],
      [`token.id eq "${main.jti}"`, (e) => e.token?.id === main.jti],
      ['token.id pr', (e) => has(e.token?.id)],
      [`token.key_id eq "${main.kid}"`, (e) => e.token?.key_id === main.kid],
      ['token.alg eq "ES256"', (e) => e.token?.alg === 'ES256'],
      ['token.alg pr and not (token.alg eq "ES256")', (e) => has(e.token?.alg) && e.token.alg !== 'ES256', true],
      ['request.client_ip eq "127.0.0.1"', (e) => e.request?.client_ip === '127.0.0.1'],
      ['not (request.client_ip pr)', (e) => !has(e.request?.client_ip)],
      [`request.grant_type eq "${CC}"`, (e) => e.request?.grant_type === CC],
      ['request.grant_type sw "urn:ietf:params:oauth:grant-type:"', (e) => lc(e.request?.grant_type)?.startsWith('urn:ietf:params:oauth:grant-type:') === true],
      ['request.grant_type ew "jwt-bearer"', (e) => lc(e.request?.grant_type)?.endsWith('jwt-bearer') === true],
      ['scopes.name eq "repo:write"', (e) => scopeNames(e).includes('repo:write')],
      ['scopes.name sw "docs:"', (e) => scopeNames(e).some((n) => asciiLower(n).startsWith('docs:'))],
      ['scopes.name pr', (e) => scopeNames(e).length > 0],
      ['not (scopes.name pr) and type eq "token.request"', (e) => scopeNames(e).length === 0 && e.type === 'token.request'],
      [
        `outcome eq "denied" and (reason eq "no_grant" or reason eq "scope_not_enabled") and user sw "alice"`,
        (e) => e.outcome === 'denied' && (e.reason === 'no_grant' || e.reason === 'scope_not_enabled') && lc(e.user)?.startsWith('alice') === true,
      ],
      [
        'type eq "token.request" AND NOT (outcome eq "granted")',
        (e) => e.type === 'token.request' && e.outcome !== 'granted',
      ],
      [
        '(client eq "build-bot" or client eq "desktop-agent") and not (outcome eq "granted" or reason eq "invalid_client")',
        (e) => (e.client === 'build-bot' || e.client === 'desktop-agent') && !(e.outcome === 'granted' || e.reason === 'invalid_client'),
      ],
      [
        `scopes.name eq "docs:read" and request.grant_type ne "${CC}" and seq gt 0`,
        (e) => scopeNames(e).includes('docs:read') && e.request?.grant_type !== CC && e.seq > 0,
      ],
    ];
  };

  test('every attribute of the spec appears in some filter', () => {
    // spec/http-api.md: the attribute list.
    const attrs = ['id', 'seq', 'type', 'outcome', 'severity', 'reason', 'user', 'client', 'system', 'audience', 'access_policy', 'token.id', 'token.key_id', 'token.alg', 'request.client_ip', 'request.grant_type', 'scopes.name'];
    const text = queries().map(([f]) => f).join('\n');
    for (const a of attrs) assert.match(text, new RegExp(`(^|[ (])${a.replace('.', '\\.')} eq `, 'm'), `${a} eq`);
    for (const op of ['eq', 'ne', 'co', 'sw', 'ew', 'pr', 'gt', 'ge', 'lt', 'le', 'and', 'or', 'not']) assert.match(text, new RegExp(`\\b${op}\\b`, 'i'), op);
  });

  test('each filter selects exactly what it names', { timeout: T }, async (t) => {
    for (const [filter, pred, mayBeEmpty] of queries()) {
      await t.test(filter, async () => {
        const want = main.all.filter(pred);
        if (!mayBeEmpty) assert.ok(want.length > 0, `the log has no event for ${filter}: the test would prove nothing`);
        const got = await readAll(main.srv, { filter }, 1000);
        assert.deepEqual(seqs(got), seqs(want), `filter ${filter}`);
        assert.deepEqual(got, want, `filter ${filter}: the events are the stored ones`);
      });
    }
  });

  test('attribute names and operators are case-insensitive (RFC 7644 §3.4.2.2)', {
    timeout: T,
  }, async () => {
    const want = seqs(main.all.filter((e) => e.user === ALICE));
    // operators already fold case
    assert.deepEqual(seqs(await readAll(main.srv, { filter: `user EQ "${ALICE}"` })), want);
    for (const filter of [`User eq "${ALICE}"`, `USER EQ "${ALICE}"`]) {
      const r = await main.srv.api('GET', logsPath({ filter, limit: 1000 }));
      assert.equal(r.status, 200, `${filter}: ${r.status} ${r.text.slice(0, 300)}`);
      assert.deepEqual(seqs(r.json), want, filter);
    }
  });

  test('since and until select [since, until) by time; relative times work', { timeout: T }, async () => {
    const all = main.all;
    const a = all[Math.floor(all.length / 4)].time;
    const b = all[Math.floor((3 * all.length) / 4)].time;
    const future = new Date(Date.now() + 3600e3).toISOString();
    const cases = [
      [{ since: a }, (e) => e.time >= a],
      [{ until: b }, (e) => e.time < b],
      [{ since: a, until: b }, (e) => e.time >= a && e.time < b],
      [{ since: a, until: b, filter: 'outcome eq "denied"' }, (e) => e.time >= a && e.time < b && e.outcome === 'denied'],
      [{ since: '-1h' }, () => true],
      [{ since: '-1h', until: future }, () => true],
      [{ until: '-1h' }, () => false],
      [{ since: future }, () => false],
    ];
    for (const [params, pred] of cases) {
      const want = all.filter(pred);
      const got = await readAll(main.srv, params);
      assert.deepEqual(seqs(got), seqs(want), JSON.stringify(params));
    }
  });
});

// ---------------------------------------------------------------- paging

describe('paging by Link rel="next"', () => {
  test('limit=3 ascending: every event once in seq order; the next link never ends, even on an empty page', { timeout: T }, async () => {
    const all = main.all;
    let url = main.srv.url + logsPath({ limit: 3 });
    const got = [];
    const sizes = [];
    let empty = 0;
    for (let i = 0; i < 1000 && empty < 2; i++) {
      const r = await getUrl(main.srv, url);
      const page = ok(r);
      sizes.push(page.length);
      assert.ok(page.length <= 3, `page of ${page.length} > limit 3`);
      got.push(...page);
      const next = nextLink(r);
      assert.ok(next, `page ${i} (${page.length} events) has no next link; without until it must always have one`);
      assert.ok(next.startsWith(`${main.srv.url}/api/v1/logs?`), `next link ${next}`);
      if (page.length === 0) empty++; // poll the empty tail twice: still a link
      url = next;
    }
    assert.equal(empty, 2, 'the pages end in empty pages');
    assert.deepEqual(seqs(got), seqs(all), 'every event exactly once, in seq order');
    assert.deepEqual(ids(got), ids(all));
    const full = sizes.filter((n) => n > 0);
    assert.ok(full.slice(0, -1).every((n) => n === 3), `only the last non-empty page may be short: ${sizes}`);
  });

  test('limit=3 with until: the last page has no next link', { timeout: T }, async () => {
    const all = main.all;
    for (const until of [new Date(Date.now() + 3600e3).toISOString(), all[all.length - 5].time]) {
      const want = all.filter((e) => e.time < until);
      let url = main.srv.url + logsPath({ limit: 3, until });
      const got = [];
      const pages = [];
      for (let i = 0; i < 1000 && url; i++) {
        const r = await getUrl(main.srv, url);
        const page = ok(r);
        pages.push(page.length);
        got.push(...page);
        url = nextLink(r);
        if (url) assert.equal(page.length, 3, `a page with a next link is full (until ${until})`);
      }
      assert.equal(url, null, 'paging with until ends');
      assert.ok(pages[pages.length - 1] <= 3);
      assert.deepEqual(seqs(got), seqs(want), `until ${until}: pages ${pages}`);
    }
  });

  test('sortOrder=DESCENDING: newest first, pages to the first event and stop', { timeout: T }, async () => {
    const want = [...main.all].reverse();
    let url = main.srv.url + logsPath({ limit: 3, sortOrder: 'DESCENDING' });
    const got = [];
    for (let i = 0; i < 1000 && url; i++) {
      const r = await getUrl(main.srv, url);
      const page = ok(r);
      got.push(...page);
      url = nextLink(r);
    }
    assert.equal(url, null, 'descending paging ends');
    assert.deepEqual(seqs(got), seqs(want));
    // descending with a filter
    const denied = want.filter((e) => e.outcome === 'denied');
    const gotD = [];
    url = main.srv.url + logsPath({ limit: 4, sortOrder: 'DESCENDING', filter: 'outcome eq "denied"' });
    while (url) {
      const r = await getUrl(main.srv, url);
      gotD.push(...ok(r));
      url = nextLink(r);
    }
    assert.deepEqual(seqs(gotD), seqs(denied));
  });

  test('the next link keeps the filter, q and window', { timeout: T }, async () => {
    const params = { filter: 'type eq "token.request"', q: 'desktop-agent', since: main.all[3].time };
    const raw = rawDocs(main.srv);
    const want = main.all.filter((e) => e.type === 'token.request' && e.time >= params.since && asciiLower(raw.get(e.seq)).includes('desktop-agent'));
    assert.ok(want.length > 3);
    const got = await readAll(main.srv, params, 2);
    assert.deepEqual(seqs(got), seqs(want));
  });
});

// ---------------------------------------------------------------- tail while writing

test('tail: a poller following next links sees every event written meanwhile exactly once, in order', { timeout: T }, async (t) => {
  const srv = await startServer();
  t.after(async () => assertCleanExit(assert, await srv.close()));
  await applyPolicy(srv);

  // The poller's start: read to the end; the last link is the tail.
  let url = srv.url + logsPath({ limit: 7 });
  let startSeq = 0;
  for (;;) {
    const r = await getUrl(srv, url);
    const page = ok(r);
    if (page.length) startSeq = page[page.length - 1].seq;
    url = nextLink(r);
    assert.ok(url, 'the tail link');
    if (page.length === 0) break;
  }
  assert.ok(startSeq > 0);

  let writerDone = false;
  const seen = [];
  let pagesWhileWriting = 0; // non-empty pages asked for before the last write
  const poller = (async () => {
    let polls = 0;
    for (;;) {
      const doneBefore = writerDone; // a page asked for after the last write
      const r = await getUrl(srv, url);
      const page = ok(r);
      polls++;
      if (page.length && !doneBefore) pagesWhileWriting++;
      seen.push(...page);
      const next = nextLink(r);
      assert.ok(next, `poll ${polls}: no next link`);
      url = next;
      if (page.length === 0) {
        if (doneBefore) return polls;
        await sleep(5);
      }
    }
  })();
  const N = 200;
  const WORKERS = 4;
  let sent = 0;
  const writer = (async () => {
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        while (sent < N) {
          sent++;
          const r = await tokenRequest(srv, { grant_type: CC, resource: `${srv.url}/mcp/docs`, scope: 'docs:read', ...asBot });
          assert.equal(r.status, 200, r.text);
        }
      }),
    );
    writerDone = true;
  })();
  await Promise.all([writer, poller]);

  assert.equal(sent, N);
  assert.ok(pagesWhileWriting >= 2, `the poller read while the writer wrote (${pagesWhileWriting} pages)`);
  const final = (await readAll(srv)).filter((e) => e.seq > startSeq);
  assert.equal(final.length, N, `${N} token requests, ${N} events`);
  assert.ok(final.every((e) => e.type === 'token.request' && e.outcome === 'granted' && e.client === 'build-bot'));
  assert.deepEqual(seqs(final), Array.from({ length: N }, (_, i) => startSeq + 1 + i), 'no gaps');
  assert.deepEqual(seqs(seen), seqs(final), 'the poller saw every event once, in order');
  assert.deepEqual(ids(seen), ids(final));
  if (!noSqlite) {
    const rows = sqlQuery(srv.dbPath, `SELECT seq, id FROM audit_events WHERE seq > ${startSeq} ORDER BY seq`);
    assert.deepEqual(rows.map((r) => r.id), ids(seen), 'the same as the database');
  }
});

// ---------------------------------------------------------------- bad input

describe('bad input is a 400 that says what is wrong', () => {
  const get = (params) => main.srv.api('GET', logsPath(params));

  test('malformed filters name the column and what was expected', { timeout: T }, async () => {
    const cases = [
      ['user eq', 8, /expected a value/],
      ['user eq "x" or', 15, /expected an attribute/],
      ['(user eq "x"', 13, /expected .*'\)'/],
      ['user equals "x"', 6, /expected a comparison operator/],
      ['user eq "x" and', 16, /expected an attribute/],
      ['user eq \'x\'', 9, /double quotes|expected a value/],
      ['user eq "unterminated', 9, /string|quote/i],
      ['not user eq "x"', 5, /expected '\('/],
      ['user eq "x")', 12, /expected 'and', 'or' or end of input, found '\)'/],
      ['   ', 1, /expected an attribute/],
      ['client eq "build-bot\\u0000"', 21, /not allowed/],
      ['seq gt "5"', 8, /number/],
      ['user eq 5', 9, /string/],
      ['user pr "x"', 9, /expected 'and', 'or' or end of input/],
    ];
    for (const [filter, column, expected] of cases) {
      for (const path of [logsPath({ filter }), `/api/v1/logs/export?${new URLSearchParams({ format: 'jsonl', filter })}`]) {
        const r = await main.srv.api('GET', path);
        assertError(r, 400, undefined, `column ${column}`);
        assert.match(r.json.error.message, expected, `${filter}: ${r.json.error.message}`);
        assert.match(r.json.error.message, /filter/, `${filter}: the message names the parameter`);
      }
    }
    // An empty filter parameter is no filter.
    assert.deepEqual(ids(await readAll(main.srv, { filter: '' })), ids(main.all));
  });

  test('an unknown attribute is named', { timeout: T }, async () => {
    for (const [filter, name] of [
      ['bogus eq "x"', 'bogus'],
      ['token.bogus pr', 'token.bogus'],
      ['user eq "x" or groups eq "eng"', 'groups'],
      ['request.user_agent co "x"', 'request.user_agent'],
    ]) {
      const r = await get({ filter });
      assertError(r, 400, undefined, name);
    }
  });

  test('bad since and until', { timeout: T }, async () => {
    for (const [params, name] of [
      [{ since: 'yesterday' }, 'since'],
      [{ since: '2026-13-01T00:00:00Z' }, 'since'],
      [{ since: '-5 fortnights' }, 'since'],
      [{ until: 'tomorrow' }, 'until'],
      [{ until: '2026-02-30T25:00:00Z' }, 'until'],
      [{ since: '2026-11-22T10:00:00Z', until: '2026-11-22T09:00:00Z' }, 'since'],
    ]) {
      assertError(await get(params), 400, undefined, name);
      const r = await main.srv.api('GET', `/api/v1/logs/export?${new URLSearchParams({ format: 'csv', ...params })}`);
      assertError(r, 400, undefined, name);
    }
  });

  test('a forged cursor, or one from another query, is refused', { timeout: T }, async () => {
    const first = await get({ limit: 3, filter: 'type eq "token.request"' });
    const next = nextLink(first);
    assert.ok(next);
    const u = new URL(next);
    const after = u.searchParams.get('after');
    assert.match(after, /^\d+\.[A-Za-z0-9_-]+$/, `cursor ${after}`);
    // as given: fine
    ok(await getUrl(main.srv, next));
    const [seq, mac] = after.split('.');
    const mid = Math.floor(mac.length / 2);
    const flipped = mac[mid] === 'A' ? 'B' : 'A';
    const forged = [
      `${seq}.${mac.slice(0, mid)}${flipped}${mac.slice(mid + 1)}`, // one character of the MAC
      `${Number(seq) + 3}.${mac}`, // another position with this MAC
      `${seq}.`,
      seq,
      'abc',
      `-1.${mac}`,
    ];
    for (const a of forged) {
      const f = new URL(next);
      f.searchParams.set('after', a);
      assertError(await getUrl(main.srv, f.toString()), 400, undefined, 'after');
    }
    // the right cursor with another filter, another q, another order, another window
    for (const [k, v] of [
      ['filter', 'outcome eq "denied"'],
      ['filter', null],
      ['q', 'alice'],
      ['sortOrder', 'DESCENDING'],
      ['since', '-1h'],
    ]) {
      const f = new URL(next);
      if (v === null) f.searchParams.delete(k);
      else f.searchParams.set(k, v);
      assertError(await getUrl(main.srv, f.toString()), 400, undefined, 'after');
    }
    // the same query with another limit is the same selection: the cursor holds
    const f = new URL(next);
    f.searchParams.set('limit', '5');
    const page = ok(await getUrl(main.srv, f.toString()));
    assert.ok(page.length > 0 && page[0].seq > Number(seq));
    // an export takes no cursor
    assertError(await main.srv.api('GET', `/api/v1/logs/export?format=jsonl&after=${encodeURIComponent(after)}`), 400, undefined, 'after');
  });

  test('limit outside 1..1000 and sortOrder other than ASCENDING/DESCENDING', { timeout: T }, async () => {
    for (const limit of ['0', '1001', 'abc', '-1', '1.5', '', '10x', '99999999999999999999']) {
      assertError(await get({ limit }), 400, undefined, 'limit');
    }
    for (const limit of ['1', '1000']) ok(await get({ limit }));
    for (const sortOrder of ['UP', 'DOWN', 'asc', '']) {
      assertError(await get({ sortOrder }), 400, undefined, 'sortOrder');
    }
    assertError(await main.srv.api('GET', '/api/v1/logs/export?format=xml'), 400, undefined, 'format');
  });

  test('without the admin token: 401', { timeout: T }, async () => {
    for (const p of ['/api/v1/logs', '/api/v1/logs/export?format=csv', '/api/v1/logs/verify']) {
      const r = await main.srv.api('GET', p, undefined, { token: null });
      assert.equal(r.status, 401, `${p}: ${r.status} ${r.text}`);
      const r2 = await main.srv.api('GET', p, undefined, { token: 'mcpa_wrong' });
      assert.equal(r2.status, 401, `${p}: ${r2.status}`);
    }
  });
});

// ---------------------------------------------------------------- injection

test('injection: quotes, SQL and LIKE wildcards in filter values and q select only what they literally say', { timeout: T, skip: noSqlite }, async () => {
  const srv = main.srv;
  const countBefore = sqliteCount(srv);
  const raw = rawDocs(srv);
  const all = main.all;

  // filter values: exactly the events whose attribute holds the literal value
  const filters = [
    ['user eq "x\\" or 1=1 --"', () => false],
    ['user eq "a\'; DROP TABLE audit_events; --"', () => false],
    ['user eq "x" or user eq "\') OR 1=1 --"', () => false],
    ['user co "%"', () => false],
    ['user co "_"', () => false],
    ['user sw "%alice"', () => false],
    ['user ew "example_com"', () => false],
    ['user co "\\\\"', () => false],
    ['user co "\'"', (e) => typeof e.user === 'string' && e.user.includes("'")],
    ['user co "\\""', (e) => typeof e.user === 'string' && e.user.includes('"')],
    ['user co "\\r\\n"', (e) => typeof e.user === 'string' && e.user.includes('\r\n')],
  ];
  for (const [filter, pred] of filters) {
    const got = ok(await srv.api('GET', logsPath({ filter, limit: 1000 })));
    assert.deepEqual(seqs(got), seqs(all.filter(pred)), filter);
  }

  // q: each keyword occurs in the event, literally (ASCII case folded)
  const qs = [
    '"',
    '%',
    '_',
    ';',
    "'",
    '\\',
    'ünïcødé',
    'Q-PROBE',
    '50%off_now;',
    'a%z',
    's_stem',
    '%_%',
    "it's \\back",
    "x' OR '1'='1",
    "'; DROP TABLE audit_events; --",
    'desktop-agent denied',
    '✓',
  ];
  for (const q of qs) {
    const r = await srv.api('GET', logsPath({ q, limit: 1000 }));
    const got = ok(r);
    const words = q.split(' ').filter(Boolean);
    const want = all.filter((e) => words.every((w) => asciiLower(raw.get(e.seq)).includes(asciiLower(w))));
    assert.deepEqual(seqs(got), seqs(want), `q=${q}`);
  }
  // sanity: the wildcard probes are literal, so some select nothing that a wildcard would
  assert.deepEqual(ok(await srv.api('GET', logsPath({ q: 'a%z' }))), []);
  assert.ok(ok(await srv.api('GET', logsPath({ q: '50%off_now;' }))).length === 1);

  // the log is intact
  assert.equal(sqliteCount(srv), countBefore, 'no event added or removed');
  assert.deepEqual(ids(await readAll(srv)), ids(all));
  const v = ok(await srv.api('GET', '/api/v1/logs/verify'));
  assert.equal(v.ok, true, JSON.stringify(v));
  assert.equal(v.verified, all.length);
});

// ---------------------------------------------------------------- export

describe('export: every format, parsed back', () => {
  test('each format downloads the whole log as an attachment, one record per event', { timeout: T }, async () => {
    for (const format of Object.keys(FORMATS)) {
      const text = await download(main.srv, format);
      assert.deepEqual(exportIds(format, text), ids(main.all), `export ${format}: the events, in order`);
    }
  });

  test('jsonl: each line is the event the API returns', { timeout: T }, async () => {
    const evs = jsonLines(await download(main.srv, 'jsonl'));
    assert.deepEqual(evs, main.all);
  });

  test('csv: RFC 4180, the documented header, one row per event, hostile values round-trip', { timeout: T }, async () => {
    const rows = parseCsv(await download(main.srv, 'csv'));
    assert.deepEqual(rows[0], CSV_COLUMNS, 'header');
    const body = rows.slice(1);
    assert.equal(body.length, main.all.length, 'one row per event');
    const col = (name) => CSV_COLUMNS.indexOf(name);
    const get = (e, path) => path.split('.').reduce((o, k) => (o === null || o === undefined ? null : o[k]), e);
    // Text that a spreadsheet would evaluate gets a leading ' (documented in audit/encode.c).
    const cell = (v) => (v === null || v === undefined ? '' : typeof v === 'number' ? String(v) : /^[=+\-@\t\r]/.test(v) ? `'${v}` : String(v));
    main.all.forEach((e, i) => {
      const row = body[i];
      assert.equal(row.length, CSV_COLUMNS.length, `row ${i + 1}: ${row.length} fields`);
      for (const name of CSV_COLUMNS) {
        if (name === 'groups' || name === 'scopes') continue; // lists, joined
        assert.equal(row[col(name)], cell(get(e, name)), `seq ${e.seq}, column ${name}`);
      }
      if (Array.isArray(e.groups)) assert.equal(row[col('groups')], e.groups.join(';'), `seq ${e.seq} groups`);
    });
    const evil = body.filter((r) => r[col('request.user_agent')] === EVIL_UA);
    assert.equal(evil.length, 1, 'the user agent with a quote and a comma');
    const weird = body.filter((r) => r[col('user')] === WEIRD_USER);
    assert.equal(weird.length, 1, 'the user name with a quote, a comma and CRLF');
    assert.equal(body.filter((r) => r[col('user')] === UNICODE_USER).length, 1, 'UTF-8');
  });

  test('cef: CEF:0|mcpauth|mcpauth| headers, one line per event', { timeout: T }, async () => {
    const ls = lines(await download(main.srv, 'cef'));
    assert.equal(ls.length, main.all.length);
    ls.forEach((l, i) => {
      const e = main.all[i];
      assert.ok(l.startsWith('CEF:0|mcpauth|mcpauth|'), l);
      const header = l.split('|');
      assert.equal(header[4], e.type, `signature id of ${l}`);
      assert.match(header[6], /^\d+$/, `severity of ${l}`);
      assert.ok(l.includes(` externalId=${e.id}`), l);
      if (e.outcome) assert.ok(l.includes(` outcome=${e.outcome}`), l);
    });
    assert.ok(ls.some((l) => l.includes("suser=o'brien, \"the\" boss\\r\\nline2")), 'CRLF escaped in an extension value');
  });

  test('ocsf: JSON lines, 3003 for token.request and 6003 for admin.change', { timeout: T }, async () => {
    const evs = jsonLines(await download(main.srv, 'ocsf'));
    assert.equal(evs.length, main.all.length);
    evs.forEach((o, i) => {
      const e = main.all[i];
      assert.equal(o.metadata.uid, e.id);
      if (e.type === 'token.request') assert.equal(o.class_uid, 3003, JSON.stringify(o));
      if (e.type === 'admin.change') assert.equal(o.class_uid, 6003, JSON.stringify(o));
      assert.equal(o.status_id, e.outcome === 'granted' || e.outcome === 'success' ? 1 : 2, JSON.stringify(o));
      if (e.status_detail !== null) assert.equal(o.status_detail, e.status_detail);
      if (e.type === 'token.request') {
        const granted = (e.scopes || []).filter((s) => s.outcome === 'granted').map((s) => s.name);
        assert.deepEqual(o.privileges, granted, `privileges of seq ${e.seq}`);
      }
    });
    assert.ok(evs.some((o) => o.class_uid === 3003) && evs.some((o) => o.class_uid === 6003));
  });

  test('rfc5424: <PRI>1 … mcpauth … [mcpauth@32473 id="…"] and the event as MSG', { timeout: T }, async () => {
    const ls = lines(await download(main.srv, 'rfc5424'));
    assert.equal(ls.length, main.all.length);
    ls.forEach((l, i) => {
      const e = main.all[i];
      assert.match(l, /^<\d{1,3}>1 /, l);
      assert.ok(l.includes(` mcpauth - ${e.type} [mcpauth@32473 id="${e.id}"`), l);
      assert.deepEqual(JSON.parse(rfc5424Msg(l)), e, `MSG of seq ${e.seq}`);
    });
  });

  test('the export of a filter (and q, since) is the API selection, in every format', { timeout: T }, async () => {
    for (const params of [
      { filter: 'outcome eq "denied"' },
      { filter: 'type eq "token.request" and not (user pr)', since: main.all[5].time },
      { q: 'desktop-agent', filter: 'severity eq "warning"' },
      { filter: 'user eq "nobody"' },
    ]) {
      const want = ids(await readAll(main.srv, params));
      for (const format of Object.keys(FORMATS)) {
        const text = await download(main.srv, format, params);
        assert.deepEqual(exportIds(format, text), want, `${format} ${JSON.stringify(params)}`);
      }
    }
  });
});

// ---------------------------------------------------------------- CLI

describe('mcpauth logs', () => {
  test('--format jsonl --filter prints the API selection', { timeout: T }, async () => {
    const filter = 'outcome eq "denied" and type eq "token.request"';
    const c = await main.srv.cli(['logs', '--format', 'jsonl', '--filter', filter]);
    assert.equal(c.code, 0, c.stderr);
    const want = await readAll(main.srv, { filter });
    assert.ok(want.length > 10);
    assert.deepEqual(jsonLines(c.stdout), want);
  });

  test('--limit 5 piped prints five JSON lines', { timeout: T }, async () => {
    const c = await main.srv.cli(['logs', '--limit', '5']);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(jsonLines(c.stdout), main.all.slice(0, 5));
  });

  test('piped without options: the whole log as JSON lines', { timeout: T }, async () => {
    const c = await main.srv.cli(['logs']);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(jsonLines(c.stdout), main.all);
  });

  test('--format csv > file parses; stderr holds progress only', { timeout: T }, async () => {
    const c = await main.srv.cli(['logs', '--format', 'csv']);
    assert.equal(c.code, 0, c.stderr);
    const rows = parseCsv(c.stdout);
    assert.deepEqual(rows[0], CSV_COLUMNS);
    assert.deepEqual(rows.slice(1).map((r) => r[0]), ids(main.all));
    // Progress ("N events, R events/s") goes to stderr on a terminal, or off one once a
    // download passes 10,000 lines (cli/logs.c); a small piped download may print none.
    // Whatever is printed is progress with the true count, never an error.
    if (c.stderr !== '') assert.match(c.stderr, new RegExp(`^${main.all.length} events, [\\d,]+ events/s$`, 'm'), c.stderr);
  });

  test('--format cef/ocsf/rfc5424 with --filter equal the API download', { timeout: T }, async () => {
    const filter = 'client eq "build-bot"';
    for (const format of ['cef', 'ocsf', 'rfc5424']) {
      const c = await main.srv.cli(['logs', '--format', format, '--filter', filter]);
      assert.equal(c.code, 0, c.stderr);
      assert.equal(c.stdout, await download(main.srv, format, { filter }), format);
    }
  });

  test('a bad filter exits 1 with the server message', { timeout: T }, async () => {
    const c = await main.srv.cli(['logs', '--filter', 'user eq']);
    assert.equal(c.code, 1, `${c.code} ${c.stdout} ${c.stderr}`);
    assert.match(c.stderr, /column 8/);
    assert.equal(c.stdout, '');
  });

  test('logs verify exits 0 on an intact log', { timeout: T }, async () => {
    const c = await main.srv.cli(['logs', 'verify']);
    assert.equal(c.code, 0, `${c.stdout} ${c.stderr}`);
    assert.match(c.stdout, new RegExp(`\\b${main.all.length}\\b`), c.stdout);
  });
});

// ---------------------------------------------------------------- verify and tamper

test('verify: intact chain, then one stored event changed on a stopped server', { timeout: T, skip: noSqlite }, async (t) => {
  const srv = await startServer();
  t.after(async () => assertCleanExit(assert, await srv.close()));
  await applyPolicy(srv);
  const bob = await idToken(srv, 'bob@example.com');
  for (let i = 0; i < 3; i++) {
    const r = await tokenRequest(srv, {
      grant_type: TE,
      requested_token_type: TT_ID_JAG,
      audience: GITHUB_AUD,
      resource: GITHUB_RESOURCE,
      scope: 'repo:read',
      subject_token: bob,
      subject_token_type: TT_ID_TOKEN,
      ...asDesktop,
    });
    assert.equal(r.status, 400, r.text);
    const g = await tokenRequest(srv, { grant_type: CC, resource: `${srv.url}/mcp/docs`, scope: 'docs:read', ...asBot });
    assert.equal(g.status, 200, g.text);
  }
  const all = await readAll(srv);
  let v = ok(await srv.api('GET', '/api/v1/logs/verify'));
  assert.deepEqual(v, { ok: true, verified: all.length, first_seq: 1, last_seq: all.length });
  const c0 = await srv.cli(['logs', 'verify']);
  assert.equal(c0.code, 0, c0.stdout + c0.stderr);

  // The second denied token request, not the last event.
  const target = all.filter((e) => e.outcome === 'denied')[1];
  const N = target.seq;
  assert.ok(N < all.length);

  assertCleanExit(assert, await srv.stop());
  execFileSync('sqlite3', [srv.dbPath, `DROP TRIGGER audit_events_no_update; UPDATE audit_events SET doc = replace(doc, 'denied', 'granted') WHERE seq = ${N};`], { timeout: 10_000 });
  const [row] = sqlQuery(srv.dbPath, `SELECT doc FROM audit_events WHERE seq = ${N}`);
  assert.ok(row.doc.includes('"outcome":"granted"'), 'the stored event was changed');
  await srv.start();

  v = ok(await srv.api('GET', '/api/v1/logs/verify'));
  assert.equal(v.ok, false, JSON.stringify(v));
  assert.equal(v.broken_seq, N, JSON.stringify(v));
  assert.equal(v.verified, N - 1, JSON.stringify(v));
  assert.equal(typeof v.reason, 'string');
  const c = await srv.cli(['logs', 'verify']);
  assert.equal(c.code, 1, `${c.code}: ${c.stdout} ${c.stderr}`);
  assert.match(c.stdout + c.stderr, new RegExp(`seq ${N}\\b`), `the CLI names seq ${N}: ${c.stdout} ${c.stderr}`);

  // A window that starts after the change holds: the chain is anchored on the stored hash before it.
  const after = await readAll(srv);
  const from = after.find((e) => e.seq === N + 1);
  const w = ok(await srv.api('GET', `/api/v1/logs/verify?${new URLSearchParams({ since: from.time })}`));
  assert.equal(w.ok, true, JSON.stringify(w));
  assert.equal(w.first_seq, N + 1, JSON.stringify(w));
  assert.equal(w.verified, after.length - N, JSON.stringify(w));
  // ...and one that includes it does not.
  const w2 = ok(await srv.api('GET', `/api/v1/logs/verify?${new URLSearchParams({ until: from.time })}`));
  assert.equal(w2.ok, false, JSON.stringify(w2));
  assert.equal(w2.broken_seq, N);
  const c2 = await srv.cli(['logs', 'verify', '--since', from.time]);
  assert.equal(c2.code, 0, c2.stdout + c2.stderr);
});
