/* audit/event.c — event construction and the hash chain. The event's shape is
 * the contract of spec/audit-event.md: every common field is present in every
 * event, null when it does not apply, so every exported row has the same
 * columns. */
#include "audit/audit.h"
#include "core/buf.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "jose/crypto.h"

#include <stdlib.h>
#include <string.h>

static const char *const common_fields[] = {
    "reason", "status_detail", "user", "groups", "client", "system", "audience",
    "access_policy", "scopes", "token", "request", "prev_hash", NULL};

json_t *audit_event_new(const char *type, const char *outcome, const char *severity,
                        const char *node)
{
    char id[UUID_STR_LEN], ts[TIME_STR_LEN];
    uuid7_new(id);
    time_format_us(time_now_us(), ts);
    json_t *ev = json_pack("{s:s, s:n, s:s, s:s, s:s, s:s, s:s?}", "id", id, "seq", "time", ts,
                           "type", type, "outcome", outcome, "severity", severity, "node", node);
    if (!ev)
        return NULL;
    for (const char *const *f = common_fields; *f; f++)
        json_object_set_new(ev, *f, json_null());
    if (!node)
        json_object_set_new(ev, "node", json_null());
    return ev;
}

void audit_event_set_origin(json_t *ev, const struct audit_origin *o)
{
    if (!o)
        return;
    json_t *req = json_pack("{s:s?, s:s?, s:s?, s:s?}", "id", o->request_id, "endpoint",
                            o->endpoint, "client_ip", o->client_ip, "user_agent", o->user_agent);
    if (req)
        json_object_set_new(ev, "request", req);
}

json_t *audit_admin_event_new(const char *type, const struct audit_origin *o, const char *action,
                              const char *object, json_t *changes, const char *node)
{
    json_t *ev = audit_event_new(type, "success", "info", node);
    if (!ev) {
        json_decref(changes);
        return NULL;
    }
    audit_event_set_origin(ev, o);
    json_object_set_new(ev, "actor", o && o->actor ? json_string(o->actor) : json_null());
    json_object_set_new(ev, "action", json_string(action));
    json_object_set_new(ev, "object", json_string(object));
    json_object_set_new(ev, "changes", changes ? changes : json_null());
    return ev;
}

int audit_event_hash(const json_t *ev, const char *prev_hash, char out[44])
{
    json_t *copy = json_copy((json_t *)ev);
    if (!copy)
        return ERR_NOMEM;
    json_object_del(copy, "hash");
    char *canon = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(copy);
    if (!canon)
        return ERR_NOMEM;
    size_t pl = prev_hash ? strlen(prev_hash) : 0, cl = strlen(canon);
    char *msg = malloc(pl + cl + 1);
    if (!msg) {
        free(canon);
        return ERR_NOMEM;
    }
    memcpy(msg, prev_hash ? prev_hash : "", pl);
    memcpy(msg + pl, canon, cl);
    crypto_sha256_b64url(msg, pl + cl, out);
    free(msg);
    free(canon);
    return 0;
}

static char *dup_or_null(const json_t *ev, const char *k)
{
    const char *v = json_string_value(json_object_get(ev, k));
    return v ? strdup(v) : NULL;
}

/* Offset of the value of top-level key `key` in compact JSON `s` (no spaces), or -1. */
static long top_value_at(const char *s, size_t len, const char *key)
{
    size_t kl = strlen(key);
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '"') {
            if (depth == 1 && (s[i - 1] == '{' || s[i - 1] == ',') && i + kl + 2 < len &&
                memcmp(s + i + 1, key, kl) == 0 && s[i + 1 + kl] == '"' && s[i + 2 + kl] == ':')
                return (long)(i + kl + 3);
            for (i++; i < len && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return -1;
}

static const char *const col_names[9] = {"id",       "time",   "type",   "outcome", "severity",
                                         "reason",   "user",   "client", "system"};

int audit_prepare(json_t *ev, struct audit_prepared **ret)
{
    json_object_del(ev, "hash");
    json_object_set_new(ev, "seq", json_null());
    json_object_set_new(ev, "prev_hash", json_null());
    struct audit_prepared *p = calloc(1, sizeof(*p));
    if (!p)
        return ERR_NOMEM;
    p->canon = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
    if (!p->canon)
        return audit_prepared_free(p), ERR_NOMEM;
    p->len = strlen(p->canon);
    long pa = top_value_at(p->canon, p->len, "prev_hash");
    long sa = top_value_at(p->canon, p->len, "seq");
    if (pa < 0 || sa < 0 || pa > sa || p->len < 2)
        return audit_prepared_free(p), ERR_INTERNAL;
    p->prev_at = (size_t)pa;
    p->seq_at = (size_t)sa;
    for (int i = 0; i < 9; i++)
        p->cols[i] = dup_or_null(ev, col_names[i]);
    if (!p->cols[0] || !p->cols[1] || !p->cols[2])
        return audit_prepared_free(p), ERR_INVAL;
    *ret = p;
    return 0;
}

struct audit_prepared *audit_prepared_free(struct audit_prepared *p)
{
    if (p) {
        free(p->canon);
        for (int i = 0; i < 9; i++)
            free(p->cols[i]);
        free(p);
    }
    return NULL;
}

/* Seals one prepared event after (seq, prev) and stores it. The canonical JSON is the
 * prepared text with seq and prev_hash filled in where their null placeholders were
 * (keys are sorted, so the bytes are what a fresh sorted dump would give); the stored
 * document has "hash" spliced in before the closing brace. No JSON library here: the
 * serialisation happened on the request's thread. */
static int append_one(struct store *s, const struct audit_prepared *p, int64_t seq, char prev[64])
{
    struct buf b;
    buf_init(&b, 0);
    int r = buf_append(&b, p->canon, p->prev_at);
    if (r == 0)
        r = seq > 1 ? buf_printf(&b, "\"%s\"", prev) : buf_puts(&b, "null");
    if (r == 0)
        r = buf_append(&b, p->canon + p->prev_at + 4, p->seq_at - p->prev_at - 4);
    if (r == 0)
        r = buf_printf(&b, "%lld", (long long)seq);
    if (r == 0)
        r = buf_append(&b, p->canon + p->seq_at + 4, p->len - p->seq_at - 4);
    char hash[44];
    if (r == 0) {
        size_t pl = seq > 1 ? strlen(prev) : 0;
        /* prev || canonical, hashed without copying the two into one buffer */
        crypto_sha256_2(prev, pl, b.data, b.len, hash);
        b.len--; /* drop the closing brace: splice ,"hash":"..." in front of it */
        r = buf_printf(&b, "%s\"hash\":\"%s\"}", b.len > 1 ? "," : "", hash);
    }
    if (r < 0) {
        buf_done(&b);
        return r;
    }
    struct store_event row = {
        .seq = seq,
        .id = p->cols[0],
        .time = p->cols[1],
        .type = p->cols[2],
        .outcome = p->cols[3],
        .severity = p->cols[4],
        .reason = p->cols[5],
        .user = p->cols[6],
        .client = p->cols[7],
        .system = p->cols[8],
        .doc = b.data,
        .hash = hash,
    };
    r = store_events_insert_next(s, &row); /* seq came from store_events_last */
    buf_done(&b);
    if (r == 0)
        memcpy(prev, hash, sizeof(hash));
    return r;
}

int audit_append_prepared(struct store *s, struct audit_prepared *const *ps, size_t n)
{
    int64_t last = 0;
    char prev[64];
    int r = store_events_last(s, &last, prev);
    for (size_t i = 0; i < n && r == 0; i++)
        r = append_one(s, ps[i], last + 1 + (int64_t)i, prev);
    return r;
}

int audit_append(struct store *s, json_t *ev)
{
    struct audit_prepared *p = NULL;
    int r = audit_prepare(ev, &p);
    if (r == 0)
        r = audit_append_prepared(s, &p, 1);
    audit_prepared_free(p);
    return r;
}
