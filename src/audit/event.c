/* audit/event.c — event construction and the hash chain. The event's shape is
 * the contract of spec/audit-event.md: every common field is present in every
 * event, null when it does not apply, so every exported row has the same
 * columns. */
#include "audit/audit.h"
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

static const char *s_or_null(const json_t *ev, const char *k)
{
    return json_string_value(json_object_get(ev, k));
}

/* Seals one event after (seq, prev) and stores it; the stored document is the canonical
 * JSON with "hash" spliced in before the closing brace, so the chain hash is computed
 * over exactly the bytes stored minus that member, with one serialisation. */
static int append_one(struct store *s, json_t *ev, int64_t seq, char prev[64])
{
    json_object_del(ev, "hash");
    json_object_set_new(ev, "seq", json_integer(seq));
    json_object_set_new(ev, "prev_hash", seq > 1 ? json_string(prev) : json_null());
    char *canon = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
    if (!canon)
        return ERR_NOMEM;
    size_t pl = seq > 1 ? strlen(prev) : 0, cl = strlen(canon);
    char hash[44];
    char *msg = malloc(pl + cl + 1);
    if (!msg) {
        free(canon);
        return ERR_NOMEM;
    }
    memcpy(msg, prev, pl);
    memcpy(msg + pl, canon, cl);
    crypto_sha256_b64url(msg, pl + cl, hash);
    free(msg);
    /* canon ends with '}': splice ,"hash":"..." in front of it */
    char *doc = malloc(cl + 64);
    if (!doc) {
        free(canon);
        return ERR_NOMEM;
    }
    memcpy(doc, canon, cl - 1);
    snprintf(doc + cl - 1, 64, "%s\"hash\":\"%s\"}", cl > 2 ? "," : "", hash);
    free(canon);
    json_object_set_new(ev, "hash", json_string(hash));
    struct store_event row = {
        .seq = seq,
        .id = s_or_null(ev, "id"),
        .time = s_or_null(ev, "time"),
        .type = s_or_null(ev, "type"),
        .outcome = s_or_null(ev, "outcome"),
        .severity = s_or_null(ev, "severity"),
        .reason = s_or_null(ev, "reason"),
        .user = s_or_null(ev, "user"),
        .client = s_or_null(ev, "client"),
        .system = s_or_null(ev, "system"),
        .doc = doc,
        .hash = hash,
    };
    int r = store_events_insert_next(s, &row); /* seq came from store_events_last */
    free(doc);
    if (r == 0)
        memcpy(prev, hash, sizeof(hash));
    return r;
}

int audit_append_batch(struct store *s, json_t *const *evs, size_t n)
{
    int64_t last = 0;
    char prev[64];
    int r = store_events_last(s, &last, prev);
    for (size_t i = 0; i < n && r == 0; i++)
        r = append_one(s, evs[i], last + 1 + (int64_t)i, prev);
    return r;
}

int audit_append(struct store *s, json_t *ev)
{
    return audit_append_batch(s, &ev, 1);
}
