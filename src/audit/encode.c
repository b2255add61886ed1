/* audit/encode.c — one audit event rendered as JSON, CSV, CEF, OCSF 1.3 or
 * RFC 5424 (spec/audit-event.md, "Encodings"). The input is an event as
 * stored, but nothing here trusts its content: user names, groups, scope names
 * and status details come from tokens and requests an attacker controls, so
 * every value goes through the escaping of the format it lands in, and a field
 * of an unexpected JSON type is rendered (numbers in decimal, arrays and
 * objects as compact JSON) rather than refused. The invariant: a record is one
 * line in every format but CSV (whose quoted fields may hold CR/LF, as RFC 4180
 * allows), and on ERR_TOOBIG/ERR_NOMEM the buffer is left exactly as it was,
 * so a download can stop at a record boundary.
 *
 * Format notes, where the standards leave a choice:
 * - CSV: `changes` (admin.change) is not a column; it is arbitrarily nested
 *   and the JSON download carries it. A field beginning with = + - @ TAB or CR
 *   gets a leading single quote (OWASP "CSV injection"), so a spreadsheet shows
 *   text instead of evaluating a formula; readers of the CSV see that quote,
 *   which is intended. Numbers are never prefixed: "-5" is a number, not a
 *   formula.
 * - RFC 5424: PARAM-VALUE has no escape for control characters, and a LF
 *   would split the record for LF-framed transports, so C0 controls and DEL in
 *   structured-data values become a space; MSG (JSON) keeps the exact value.
 * - CEF: admin-shaped events (actor/action/object) report the actor as suser,
 *   the action as act and the object in cs1; token events put granted scopes in
 *   cs1. Empty scope lists are omitted like nulls.
 * - OCSF: token.request is 3003 Authorize Session, everything else 6003 API
 *   Activity. The request's id goes to http_request.uid; the request fields
 *   without an OCSF home sit in unmapped.request (nested, not dotted keys). A
 *   token without a user (client credentials) is the client's own: user is
 *   {type_id 3 "System", name/uid = client}. For 6003, every other non-null
 *   field of the event (a gateway.call's user, client...) is kept in unmapped.
 * - Unknown severities map to CEF 3 and syslog informational, like "info", and
 *   to OCSF severity_id 0 "Unknown". */
#include "audit/encode.h"
#include "core/timeutil.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MCPAUTH_VERSION
#define MCPAUTH_VERSION "0.0.0"
#endif

/* ---- formats ---- */

static const struct {
    const char *name, *content_type, *extension, *terminator;
} formats[] = {
    [AUDIT_FMT_JSON] = {"jsonl", "application/x-ndjson", "jsonl", "\n"},
    [AUDIT_FMT_CSV] = {"csv", "text/csv; charset=utf-8", "csv", "\r\n"},
    [AUDIT_FMT_CEF] = {"cef", "text/plain; charset=utf-8", "cef", "\n"},
    [AUDIT_FMT_OCSF] = {"ocsf", "application/x-ndjson", "ocsf.jsonl", "\n"},
    [AUDIT_FMT_RFC5424] = {"rfc5424", "text/plain; charset=utf-8", "log", "\n"},
};
#define N_FORMATS (sizeof(formats) / sizeof(formats[0]))

static bool valid_format(enum audit_format f)
{
    return (unsigned)f < N_FORMATS;
}

int audit_format_parse(const char *name, enum audit_format *ret)
{
    if (!name)
        return ERR_INVAL;
    if (strcmp(name, "json") == 0) {
        *ret = AUDIT_FMT_JSON;
        return 0;
    }
    for (size_t i = 0; i < N_FORMATS; i++)
        if (strcmp(name, formats[i].name) == 0) {
            *ret = (enum audit_format)i;
            return 0;
        }
    return ERR_INVAL;
}

const char *audit_format_name(enum audit_format f)
{
    return valid_format(f) ? formats[f].name : NULL;
}

const char *audit_format_content_type(enum audit_format f)
{
    return valid_format(f) ? formats[f].content_type : NULL;
}

const char *audit_format_extension(enum audit_format f)
{
    return valid_format(f) ? formats[f].extension : NULL;
}

const char *audit_format_terminator(enum audit_format f)
{
    return valid_format(f) ? formats[f].terminator : NULL;
}

/* ---- output with a sticky error ---- */

struct out {
    struct buf *b;
    int err;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (!o->err && n)
        o->err = buf_append(o->b, s, n);
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putc_(struct out *o, char c)
{
    put(o, &c, 1);
}

/* ---- reading the event ---- */

/* Member `path` of `ev`, one level of nesting allowed ("token.id"). NULL when absent
 * or when the parent is not an object. */
static const json_t *get(const json_t *ev, const char *path)
{
    const char *dot = strchr(path, '.');
    if (!dot)
        return json_object_get(ev, path);
    char parent[32];
    size_t n = (size_t)(dot - path);
    if (n >= sizeof(parent))
        return NULL;
    memcpy(parent, path, n);
    parent[n] = '\0';
    return json_object_get(json_object_get(ev, parent), dot + 1);
}

static const char *str(const json_t *ev, const char *path)
{
    return json_string_value(get(ev, path));
}

/* The text of a value: strings as they are, integers and reals in decimal, booleans as
 * words, arrays and objects as compact JSON (allocated into *heap, which the caller
 * frees). NULL for null or absent, or when dumping fails for lack of memory (*heap
 * stays NULL and *oom is set). */
static const char *text(const json_t *v, char tmp[32], char **heap, bool *oom)
{
    *heap = NULL;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_value(v);
    case JSON_INTEGER:
        snprintf(tmp, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return tmp;
    case JSON_REAL:
        snprintf(tmp, 32, "%.17g", json_real_value(v));
        return tmp;
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_OBJECT:
    case JSON_ARRAY:
        *heap = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
        if (!*heap)
            *oom = true;
        return *heap;
    case JSON_NULL:
    default:
        return NULL;
    }
}

/* Appends the text of `v` through `esc`; false (nothing written) for null or absent. */
static bool put_value(struct out *o, const json_t *v,
                      void (*esc)(struct out *, const char *, size_t))
{
    if (!v)
        return false;
    char tmp[32], *heap;
    bool oom = false;
    const char *s = text(v, tmp, &heap, &oom);
    if (oom && !o->err)
        o->err = ERR_NOMEM;
    if (!s)
        return false;
    esc(o, s, strlen(s));
    free(heap);
    return true;
}

/* Event time in milliseconds since the epoch; false when missing or malformed. */
static bool event_ms(const json_t *ev, int64_t *ret_ms)
{
    const char *t = str(ev, "time");
    int64_t us;
    if (!t || time_parse_rfc3339(t, &us) < 0)
        return false;
    *ret_ms = us / 1000;
    return true;
}

/* admin.change and key.rotate (audit_admin_event_new) carry actor/action/object. */
static bool is_admin(const json_t *ev)
{
    return json_object_get(ev, "action") != NULL || json_object_get(ev, "actor") != NULL;
}

static bool is_success(const json_t *ev)
{
    const char *o = str(ev, "outcome");
    return o && (strcmp(o, "granted") == 0 || strcmp(o, "success") == 0);
}

struct severity {
    const char *name;
    int cef, syslog, ocsf_id;
    const char *ocsf;
};

static const struct severity severities[] = {
    {"info", 3, 6, 1, "Informational"},
    {"warning", 6, 4, 3, "Medium"},
    {"error", 8, 3, 4, "High"},
};
static const struct severity severity_unknown = {NULL, 3, 6, 0, "Unknown"};

static const struct severity *severity_of(const json_t *ev)
{
    const char *s = str(ev, "severity");
    for (size_t i = 0; s && i < sizeof(severities) / sizeof(severities[0]); i++)
        if (strcmp(s, severities[i].name) == 0)
            return &severities[i];
    return &severity_unknown;
}

/* Scope names whose outcome is `outcome`, separated by `sep`, into `b` (unbounded
 * scratch). For CSV (`with_outcome`): "name=granted" / "name=denied:reason". */
static int join_scopes(const json_t *ev, const char *outcome, bool with_outcome, const char *sep,
                       struct buf *b)
{
    const json_t *scopes = json_object_get(ev, "scopes");
    size_t i;
    const json_t *s;
    struct out o = {.b = b};
    bool first = true;
    json_array_foreach(scopes, i, s)
    {
        const char *name = str(s, "name"), *oc = str(s, "outcome"), *reason = str(s, "reason");
        if (!name || (outcome && (!oc || strcmp(oc, outcome) != 0)))
            continue;
        if (!first)
            puts_(&o, sep);
        first = false;
        puts_(&o, name);
        if (with_outcome && oc) {
            putc_(&o, '=');
            puts_(&o, oc);
            if (reason && strcmp(oc, "granted") != 0) {
                putc_(&o, ':');
                puts_(&o, reason);
            }
        }
    }
    return o.err;
}

/* ---- JSON ---- */

static void encode_json(struct out *o, const json_t *ev)
{
    char *s = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s) {
        if (!o->err)
            o->err = ERR_NOMEM;
        return;
    }
    puts_(o, s);
    free(s);
}

/* ---- CSV (RFC 4180) ---- */

static const char *const csv_columns[] = {
    "id",
    "seq",
    "time",
    "type",
    "outcome",
    "severity",
    "reason",
    "status_detail",
    "user",
    "groups",
    "client",
    "system",
    "audience",
    "access_policy",
    "scopes",
    "token.id",
    "token.type",
    "token.key_id",
    "token.alg",
    "token.lifetime",
    "token.expires_at",
    "request.id",
    "request.endpoint",
    "request.grant_type",
    "request.requested_token_type",
    "request.target_url",
    "request.client_ip",
    "request.user_agent",
    "request.subject_token_sha256",
    "request.subject_issuer",
    "node",
    "actor",
    "action",
    "object",
    "prev_hash",
    "hash",
};

/* One field; `text_guard` arms the formula-injection prefix (text, not numbers). */
static void csv_field(struct out *o, const char *s, size_t n, bool text_guard)
{
    bool formula = text_guard && n && memchr("=+-@\t\r", s[0], 6);
    bool quote = false;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (quote)
        putc_(o, '"');
    if (formula)
        putc_(o, '\'');
    size_t start = 0;
    for (size_t i = 0; quote && i < n; i++)
        if (s[i] == '"') {
            put(o, s + start, i + 1 - start); /* through the quote, then once more */
            start = i;
        }
    put(o, s + start, n - start);
    if (quote)
        putc_(o, '"');
}

static void csv_text(struct out *o, const char *s, size_t n)
{
    csv_field(o, s, n, true);
}

static void csv_value(struct out *o, const json_t *v)
{
    if (json_is_integer(v) || json_is_real(v) || json_is_boolean(v)) {
        char tmp[32], *heap;
        bool oom = false;
        const char *s = text(v, tmp, &heap, &oom);
        csv_field(o, s, strlen(s), false);
        return;
    }
    put_value(o, v, csv_text);
}

static void encode_csv_header(struct out *o)
{
    for (size_t i = 0; i < sizeof(csv_columns) / sizeof(csv_columns[0]); i++) {
        if (i)
            putc_(o, ',');
        puts_(o, csv_columns[i]);
    }
    puts_(o, "\r\n");
}

static void encode_csv(struct out *o, const json_t *ev)
{
    struct buf scratch;
    buf_init(&scratch, 0);
    for (size_t i = 0; i < sizeof(csv_columns) / sizeof(csv_columns[0]); i++) {
        const char *col = csv_columns[i];
        const json_t *v = get(ev, col);
        if (i)
            putc_(o, ',');
        buf_reset(&scratch);
        if (strcmp(col, "groups") == 0 && json_is_array(v)) {
            struct out so = {.b = &scratch};
            size_t j;
            const json_t *g;
            json_array_foreach(v, j, g)
            {
                if (j)
                    putc_(&so, ';');
                put_value(&so, g, put);
            }
            if (so.err && !o->err)
                o->err = so.err;
            csv_text(o, scratch.data ? scratch.data : "", scratch.len);
        } else if (strcmp(col, "scopes") == 0 && json_is_array(v)) {
            int r = join_scopes(ev, NULL, true, ";", &scratch);
            if (r < 0 && !o->err)
                o->err = r;
            csv_text(o, scratch.data ? scratch.data : "", scratch.len);
        } else {
            csv_value(o, v);
        }
    }
    buf_done(&scratch);
}

/* ---- CEF ---- */

/* Header fields: `\` and `|` escaped; a line break would end the record, so it
 * becomes a space. */
static void cef_header_esc(struct out *o, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = s[i] == '\\'                   ? "\\\\"
                          : s[i] == '|'                  ? "\\|"
                          : s[i] == '\r' || s[i] == '\n' ? " "
                                                         : NULL;
        if (!rep)
            continue;
        put(o, s + start, i - start);
        puts_(o, rep);
        start = i + 1;
    }
    put(o, s + start, n - start);
}

/* Extension values: `\`, `=`, CR and LF escaped; `|` is legal there. */
static void cef_ext_esc(struct out *o, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = s[i] == '\\'   ? "\\\\"
                          : s[i] == '='  ? "\\="
                          : s[i] == '\r' ? "\\r"
                          : s[i] == '\n' ? "\\n"
                                         : NULL;
        if (!rep)
            continue;
        put(o, s + start, i - start);
        puts_(o, rep);
        start = i + 1;
    }
    put(o, s + start, n - start);
}

struct cef {
    struct out *o;
    bool first;
};

static void cef_key(struct cef *c, const char *key)
{
    if (!c->first)
        putc_(c->o, ' ');
    c->first = false;
    puts_(c->o, key);
    putc_(c->o, '=');
}

/* key=value, nothing when the value is null or absent. */
static void cef_kv(struct cef *c, const char *key, const json_t *v)
{
    if (!v || json_is_null(v))
        return;
    cef_key(c, key);
    put_value(c->o, v, cef_ext_esc);
}

/* keyLabel=label key=value, nothing when the value is null, absent or empty. */
static void cef_labeled(struct cef *c, const char *key, const char *label, const json_t *v,
                        const char *s)
{
    if (!s && (!v || json_is_null(v)))
        return;
    if (s && !*s)
        return;
    char lk[24];
    snprintf(lk, sizeof(lk), "%sLabel", key);
    cef_key(c, lk);
    puts_(c->o, label);
    cef_key(c, key);
    if (s)
        cef_ext_esc(c->o, s, strlen(s));
    else
        put_value(c->o, v, cef_ext_esc);
}

static const char *cef_name(const char *type)
{
    static const struct {
        const char *type, *name;
    } names[] = {
        {"token.request", "Token request"},
        {"admin.change", "Admin change"},
        {"key.rotate", "Key rotation"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(type, names[i].type) == 0)
            return names[i].name;
    return type;
}

static void encode_cef(struct out *o, const json_t *ev)
{
    const char *type = str(ev, "type");
    if (!type)
        type = "";
    bool admin = is_admin(ev);
    puts_(o, "CEF:0|mcpauth|mcpauth|");
    cef_header_esc(o, MCPAUTH_VERSION, strlen(MCPAUTH_VERSION));
    putc_(o, '|');
    cef_header_esc(o, type, strlen(type));
    putc_(o, '|');
    const char *name = cef_name(type);
    cef_header_esc(o, name, strlen(name));
    char sev[16];
    snprintf(sev, sizeof(sev), "|%d|", severity_of(ev)->cef);
    puts_(o, sev);

    struct cef c = {.o = o, .first = true};
    int64_t ms;
    if (event_ms(ev, &ms)) {
        char tmp[32];
        snprintf(tmp, sizeof(tmp), "%" PRId64, ms);
        cef_key(&c, "rt");
        puts_(o, tmp);
    }
    cef_kv(&c, "externalId", get(ev, "id"));
    cef_kv(&c, "cat", get(ev, "type"));
    cef_kv(&c, "outcome", get(ev, "outcome"));
    cef_kv(&c, "reason", get(ev, "reason"));
    cef_kv(&c, "suser", get(ev, admin ? "actor" : "user"));
    cef_kv(&c, "app", get(ev, "client"));
    cef_kv(&c, "dhost", get(ev, "system"));
    cef_kv(&c, "request", get(ev, "audience"));
    cef_kv(&c, "msg", get(ev, "status_detail"));
    cef_kv(&c, "src", get(ev, "request.client_ip"));
    cef_kv(&c, "requestClientApplication", get(ev, "request.user_agent"));
    if (admin) {
        cef_kv(&c, "act", get(ev, "action"));
        cef_labeled(&c, "cs1", "object", get(ev, "object"), NULL);
    }
    struct buf scopes;
    buf_init(&scopes, 0);
    if (!admin) {
        int r = join_scopes(ev, "granted", false, " ", &scopes);
        if (r < 0 && !o->err)
            o->err = r;
        cef_labeled(&c, "cs1", "scopesGranted", NULL, scopes.data ? scopes.data : "");
    }
    buf_reset(&scopes);
    int r = join_scopes(ev, "denied", false, " ", &scopes);
    if (r < 0 && !o->err)
        o->err = r;
    cef_labeled(&c, "cs2", "scopesDenied", NULL, scopes.data ? scopes.data : "");
    buf_done(&scopes);
    cef_labeled(&c, "cs3", "tokenId", get(ev, "token.id"), NULL);
    cef_labeled(&c, "cs4", "keyId", get(ev, "token.key_id"), NULL);
    cef_labeled(&c, "cs5", "alg", get(ev, "token.alg"), NULL);
    cef_labeled(&c, "cn1", "lifetime", get(ev, "token.lifetime"), NULL);
    cef_labeled(&c, "cs6", "seq", get(ev, "seq"), NULL);
}

/* ---- RFC 5424 ---- */

/* HOSTNAME, MSGID: PRINTUSASCII only (others become '_'), at most `max` octets, NILVALUE
 * when empty. */
static void syslog_token(struct out *o, const char *s, size_t max)
{
    if (!s || !*s) {
        putc_(o, '-');
        return;
    }
    char tmp[256];
    size_t n = 0;
    for (; s[n] && n < max && n < sizeof(tmp); n++)
        tmp[n] = (unsigned char)s[n] >= 33 && (unsigned char)s[n] <= 126 ? s[n] : '_';
    put(o, tmp, n);
}

/* PARAM-VALUE: `"`, `\` and `]` escaped with a backslash (RFC 5424 6.3.3); control
 * characters, which it cannot escape, become a space. */
static void sd_esc(struct out *o, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool esc = ch == '"' || ch == '\\' || ch == ']';
        bool ctl = ch < 0x20 || ch == 0x7f;
        if (!esc && !ctl)
            continue;
        put(o, s + start, i - start);
        if (esc) {
            putc_(o, '\\');
            start = i;
        } else {
            putc_(o, ' ');
            start = i + 1;
        }
    }
    put(o, s + start, n - start);
}

static void encode_rfc5424(struct out *o, const json_t *ev)
{
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "<%d>1 ", 10 * 8 + severity_of(ev)->syslog);
    puts_(o, tmp);
    const char *t = str(ev, "time");
    int64_t us;
    if (t && time_parse_rfc3339(t, &us) == 0) {
        char ts[TIME_STR_LEN];
        time_format_us(us, ts); /* RFC 5424's subset: UTC, 'T', 'Z', 6 digits */
        puts_(o, ts);
    } else {
        putc_(o, '-');
    }
    putc_(o, ' ');
    syslog_token(o, str(ev, "node"), 255);
    puts_(o, " mcpauth - ");
    syslog_token(o, str(ev, "type"), 32);
    puts_(o, " [mcpauth@32473");
    static const char *const params[] = {"id",     "seq",    "outcome", "user",
                                         "client", "system", "reason"};
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        const json_t *v = get(ev, params[i]);
        if (!v || json_is_null(v))
            continue;
        snprintf(tmp, sizeof(tmp), " %s=\"", params[i]);
        puts_(o, tmp);
        put_value(o, v, sd_esc);
        putc_(o, '"');
    }
    puts_(o, "] ");
    encode_json(o, ev);
}

/* ---- OCSF 1.3 ---- */

/* Sets key to a copy of `v` when `v` is present (null included). */
static void copy_member(json_t *dst, const char *key, const json_t *v)
{
    if (v)
        json_object_set_new(dst, key, json_deep_copy(v));
}

/* Sets key to a copy of `v` unless it is null or absent. */
static void copy_value(json_t *dst, const char *key, const json_t *v)
{
    if (v && !json_is_null(v))
        json_object_set_new(dst, key, json_deep_copy(v));
}

/* Sets key to `obj` when it has members; frees it otherwise. */
static void set_nonempty(json_t *dst, const char *key, json_t *obj)
{
    if (json_object_size(obj))
        json_object_set_new(dst, key, obj);
    else
        json_decref(obj);
}

/* The members every OCSF class shares: time, severity, status, metadata, endpoints. */
static void ocsf_common(json_t *oc, const json_t *ev)
{
    int64_t ms;
    bool have_ms = event_ms(ev, &ms);
    if (have_ms)
        json_object_set_new(oc, "time", json_integer(ms));
    const struct severity *sev = severity_of(ev);
    json_object_set_new(oc, "severity_id", json_integer(sev->ocsf_id));
    json_object_set_new(oc, "severity", json_string(sev->ocsf));
    bool ok = is_success(ev);
    json_object_set_new(oc, "status_id", json_integer(ok ? 1 : 2));
    json_object_set_new(oc, "status", json_string(ok ? "Success" : "Failure"));
    const json_t *reason = get(ev, "reason"), *detail = get(ev, "status_detail");
    json_object_set_new(oc, "status_code", reason ? json_deep_copy(reason) : json_null());
    json_object_set_new(oc, "status_detail", detail ? json_deep_copy(detail) : json_null());

    json_t *md = json_pack("{s:s, s:{s:s, s:s, s:s}}", "version", "1.3.0", "product", "name",
                           "mcpauth", "vendor_name", "mcpauth", "version", MCPAUTH_VERSION);
    if (md) {
        copy_value(md, "uid", get(ev, "id"));
        if (have_ms)
            json_object_set_new(md, "logged_time", json_integer(ms));
        copy_value(md, "sequence", get(ev, "seq"));
        json_object_set_new(oc, "metadata", md);
    }
    json_t *src = json_object();
    copy_value(src, "ip", get(ev, "request.client_ip"));
    set_nonempty(oc, "src_endpoint", src);
    json_t *http = json_object();
    copy_value(http, "uid", get(ev, "request.id"));
    copy_value(http, "user_agent", get(ev, "request.user_agent"));
    set_nonempty(oc, "http_request", http);
}

static json_t *ocsf_authorize_session(const json_t *ev)
{
    json_t *oc = json_pack("{s:i, s:i, s:i, s:i, s:s, s:s, s:s}", "class_uid", 3003, "category_uid",
                           3, "activity_id", 1, "type_uid", 300301, "activity_name",
                           "Assign Privileges", "class_name", "Authorize Session", "category_name",
                           "Identity & Access Management");
    if (!oc)
        return NULL;
    ocsf_common(oc, ev);

    /* OCSF requires user; a client-credentials token is the client's own. */
    json_t *user = json_object();
    const json_t *u = get(ev, "user");
    if (u && !json_is_null(u)) {
        copy_value(user, "name", u);
        copy_value(user, "uid", u);
        const json_t *groups = get(ev, "groups");
        if (json_is_array(groups)) {
            json_t *ga = json_array();
            size_t i;
            const json_t *g;
            json_array_foreach(groups, i, g)
            {
                json_t *go = json_object();
                copy_value(go, "name", g);
                json_array_append_new(ga, go);
            }
            json_object_set_new(user, "groups", ga);
        }
    } else {
        json_object_set_new(user, "type_id", json_integer(3));
        json_object_set_new(user, "type", json_string("System"));
        copy_value(user, "name", get(ev, "client"));
        copy_value(user, "uid", get(ev, "client"));
    }
    json_object_set_new(oc, "user", user);

    json_t *priv = json_array();
    size_t i;
    const json_t *s;
    json_array_foreach(get(ev, "scopes"), i, s)
    {
        const char *oc_s = str(s, "outcome");
        const json_t *name = get(s, "name");
        if (oc_s && strcmp(oc_s, "granted") == 0 && name && !json_is_null(name))
            json_array_append_new(priv, json_deep_copy(name));
    }
    json_object_set_new(oc, "privileges", priv);

    json_t *svc = json_object();
    copy_value(svc, "name", get(ev, "system"));
    copy_value(svc, "uid", get(ev, "audience"));
    set_nonempty(oc, "service", svc);

    json_t *um = json_object();
    static const char *const top[] = {"client", "access_policy", "scopes", "token",
                                      "reason", "prev_hash",     "hash",   "node"};
    for (size_t k = 0; k < sizeof(top) / sizeof(top[0]); k++)
        copy_member(um, top[k], get(ev, top[k]));
    json_t *req = json_object();
    static const char *const rq[] = {"grant_type", "target_url", "requested_token_type",
                                     "subject_issuer", "subject_token_sha256"};
    const json_t *request = get(ev, "request");
    for (size_t k = 0; k < sizeof(rq) / sizeof(rq[0]); k++)
        copy_member(req, rq[k], json_object_get(request, rq[k]));
    set_nonempty(um, "request", req);
    json_object_set_new(oc, "unmapped", um);
    return oc;
}

static json_t *ocsf_api_activity(const json_t *ev)
{
    static const struct {
        const char *action, *name;
        int id;
    } activities[] = {{"create", "Create", 1}, {"update", "Update", 3}, {"delete", "Delete", 4}};
    const char *action = str(ev, "action");
    const char *activity_name = "Other";
    int activity = 99;
    for (size_t i = 0; action && i < sizeof(activities) / sizeof(activities[0]); i++)
        if (strcmp(action, activities[i].action) == 0) {
            activity = activities[i].id;
            activity_name = activities[i].name;
        }
    json_t *oc = json_pack("{s:i, s:i, s:i, s:i, s:s, s:s, s:s}", "class_uid", 6003, "category_uid",
                           6, "activity_id", activity, "type_uid", 600300 + activity,
                           "activity_name", activity_name, "class_name", "API Activity",
                           "category_name", "Application Activity");
    if (!oc)
        return NULL;
    ocsf_common(oc, ev);
    /* actor, api and src_endpoint are required by 6003. */
    if (!json_object_get(oc, "src_endpoint"))
        json_object_set_new(oc, "src_endpoint", json_object());
    json_t *user = json_object();
    const json_t *who = get(ev, "actor");
    if (!who || json_is_null(who))
        who = get(ev, "user");
    if (!who || json_is_null(who))
        who = get(ev, "client");
    copy_value(user, "name", who);
    json_object_set_new(oc, "actor", json_pack("{s:o}", "user", user));
    json_t *api = json_pack("{s:{s:s}}", "service", "name", "mcpauth");
    if (api) {
        copy_value(api, "operation", action ? get(ev, "action") : get(ev, "type"));
        json_object_set_new(oc, "api", api);
    }
    const char *object = str(ev, "object");
    if (object) {
        json_t *res = json_pack("{s:s}", "uid", object);
        const char *colon = strchr(object, ':');
        if (res && colon)
            json_object_set_new(res, "type", json_stringn(object, (size_t)(colon - object)));
        json_object_set_new(oc, "resources", json_pack("[o]", res));
    }

    /* The chain and node always; any other field this class has no home for (a
     * gateway.call's user, client, system...) when it has a value. */
    json_t *um = json_object();
    static const char *const always[] = {"changes", "prev_hash", "hash", "node"};
    for (size_t k = 0; k < sizeof(always) / sizeof(always[0]); k++)
        copy_member(um, always[k], get(ev, always[k]));
    static const char *const mapped[] = {
        "id",    "seq",    "time",   "type",    "outcome", "severity",  "reason", "status_detail",
        "actor", "action", "object", "request", "changes", "prev_hash", "hash",   "node"};
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)ev, key, v)
    {
        bool seen = false;
        for (size_t k = 0; k < sizeof(mapped) / sizeof(mapped[0]) && !seen; k++)
            seen = strcmp(key, mapped[k]) == 0;
        if (!seen)
            copy_value(um, key, v);
    }
    json_object_set_new(oc, "unmapped", um);
    return oc;
}

static void encode_ocsf(struct out *o, const json_t *ev)
{
    const char *type = str(ev, "type");
    json_t *oc = type && strcmp(type, "token.request") == 0 ? ocsf_authorize_session(ev)
                                                            : ocsf_api_activity(ev);
    if (!oc) {
        if (!o->err)
            o->err = ERR_NOMEM;
        return;
    }
    encode_json(o, oc);
    json_decref(oc);
}

/* ---- entry points ---- */

/* Runs one encoder; on failure the buffer is put back as it was. */
static int finish(struct out *o, size_t mark)
{
    if (o->err && o->b->data) {
        o->b->len = mark;
        o->b->data[mark] = '\0';
    }
    return o->err;
}

int audit_encode_header(enum audit_format f, struct buf *out)
{
    if (!valid_format(f))
        return ERR_INVAL;
    struct out o = {.b = out};
    size_t mark = out->len;
    if (f == AUDIT_FMT_CSV)
        encode_csv_header(&o);
    return finish(&o, mark);
}

int audit_encode(enum audit_format f, const json_t *ev, struct buf *out)
{
    if (!valid_format(f) || !json_is_object(ev))
        return ERR_INVAL;
    struct out o = {.b = out};
    size_t mark = out->len;
    switch (f) {
    case AUDIT_FMT_JSON:
        encode_json(&o, ev);
        break;
    case AUDIT_FMT_CSV:
        encode_csv(&o, ev);
        break;
    case AUDIT_FMT_CEF:
        encode_cef(&o, ev);
        break;
    case AUDIT_FMT_OCSF:
        encode_ocsf(&o, ev);
        break;
    case AUDIT_FMT_RFC5424:
        encode_rfc5424(&o, ev);
        break;
    }
    return finish(&o, mark);
}
