/* admin/keys.c — signing key lifecycle: create (generated here, sealed under
 * the KEK before it touches the store), activate, retire.
 *
 * Per algorithm at most one key signs ("active"; the newest if several); the
 * others stay "published" in the JWKS so tokens they signed still verify, and
 * "retired" keys are gone from the JWKS for good. Each step is one
 * transaction with its key.rotate audit event and a snapshot rebuild. */
#include "admin/admin_priv.h"
#include "core/timeutil.h"
#include "core/uuid.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_t *key_json(const struct store_key *k)
{
    json_t *jwk = json_loads(k->public_jwk, 0, NULL);
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:o?}", "kid", k->kid, "alg", k->alg, "status",
                     k->status, "created", (json_int_t)k->created, "updated",
                     (json_int_t)k->updated, "public_jwk", jwk);
}

int admin_keys_list(struct admin *a, json_t **ret)
{
    struct store_key *keys = NULL;
    size_t n = 0;
    int r = store_key_list(a->cfg.store, &keys, &n);
    if (r < 0)
        return r;
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, key_json(&keys[i]));
    store_keys_free(keys, n);
    *ret = out;
    return 0;
}

/* Finds kid among the stored keys; returns its index or -1. */
static long find(const struct store_key *keys, size_t n, const char *kid)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].kid, kid) == 0)
            return (long)i;
    return -1;
}

int admin_key_get(struct admin *a, const char *kid, json_t **ret, struct err_detail *d)
{
    struct store_key *keys = NULL;
    size_t n = 0;
    int r = store_key_list(a->cfg.store, &keys, &n);
    if (r < 0)
        return r;
    long i = find(keys, n, kid);
    if (i < 0)
        r = err_set(d, ERR_NOTFOUND, "key:%s does not exist", kid);
    else
        *ret = key_json(&keys[i]);
    store_keys_free(keys, n);
    return r;
}

static json_t *key_event(struct admin *a, const struct audit_origin *o, const char *action,
                         const struct store_key *k, const char *old_status)
{
    char obj[200];
    snprintf(obj, sizeof(obj), "key:%s", k->kid);
    json_t *changes = json_pack("{s:{s:s, s:s?}, s:{s:s, s:s}}", "before", "alg", k->alg, "status",
                                old_status, "after", "alg", k->alg, "status", k->status);
    return audit_admin_event_new("key.rotate", o, action, obj, changes, a->cfg.node);
}

static int create_locked(struct admin *a, const struct audit_origin *o, enum jose_alg alg,
                         struct changes *c, json_t **ret_key, struct err_detail *d)
{
    struct store *st = a->cfg.store;
    struct store_key *keys = NULL;
    size_t n = 0;
    int r = store_key_list(st, &keys, &n);
    if (r < 0)
        return err_set(d, r, "reading keys failed");
    int has_active = 0;
    for (size_t i = 0; i < n; i++)
        has_active |= strcmp(keys[i].alg, jose_alg_name(alg)) == 0 &&
                      strcmp(keys[i].status, "active") == 0;
    store_keys_free(keys, n);

    /* kid: "es256-20261122-1a2b3c" — readable, sortable by day, unique by the random tail */
    char kid[64], day[16], lower[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(day, sizeof(day), "%Y%m%d", &tm);
    const char *name = jose_alg_name(alg);
    size_t j = 0;
    for (; name[j] && j < sizeof(lower) - 1; j++)
        lower[j] = (char)tolower((unsigned char)name[j]);
    lower[j] = '\0';
    unsigned char rnd[3];
    core_random(rnd, sizeof(rnd));
    snprintf(kid, sizeof(kid), "%s-%s-%02x%02x%02x", lower, day, rnd[0], rnd[1], rnd[2]);

    struct jose_key *key = NULL;
    char *sealed = NULL, *jwk_text = NULL;
    r = jose_key_generate(alg, kid, &key);
    if (r == 0)
        r = jose_key_seal(key, a->cfg.kek, &sealed);
    json_t *jwk = r == 0 ? jose_key_public_jwk(key) : NULL;
    if (r == 0 && !jwk)
        r = ERR_NOMEM;
    if (r == 0) {
        jwk_text = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
        r = jwk_text ? 0 : ERR_NOMEM;
    }
    json_decref(jwk);
    jose_key_free(key);
    if (r < 0) {
        free(sealed);
        free(jwk_text);
        return err_set(d, r, "generating a %s key failed", name);
    }
    int64_t t = (int64_t)now;
    struct store_key row = {kid, (char *)name, has_active ? "published" : "active", t, t,
                            jwk_text, sealed};
    r = store_key_insert(st, &row);
    if (r == 0) {
        json_t *ev = key_event(a, o, "create", &row, NULL);
        if (!c->extra_events)
            c->extra_events = json_array();
        r = ev ? json_array_append_new(c->extra_events, ev) == 0 ? 0 : ERR_NOMEM : ERR_NOMEM;
    }
    if (r == 0 && ret_key)
        *ret_key = key_json(&row);
    free(sealed);
    free(jwk_text);
    return r < 0 ? err_set(d, r, "storing the key failed") : 0;
}

int admin_key_create(struct admin *a, const struct audit_origin *o, const char *alg_name,
                     json_t **ret, struct err_detail *d)
{
    enum jose_alg alg;
    if (!alg_name || jose_alg_parse(alg_name, &alg) < 0)
        return err_set(d, ERR_INVAL, "alg: expected one of ES256, ES384, RS256, PS256, EdDSA");
    int r = store_begin(a->cfg.store);
    if (r < 0)
        return err_set(d, r, "the store is unavailable");
    struct changes c = {0};
    json_t *key = NULL;
    r = create_locked(a, o, alg, &c, &key, d);
    if (r == 0)
        r = tx_finish(a, o, &c, ERR_CONFLICT, d);
    else
        store_rollback(a->cfg.store);
    changes_done(&c);
    if (r < 0) {
        json_decref(key);
        return r;
    }
    *ret = key;
    return 0;
}

static int set_status(struct admin *a, const struct audit_origin *o, const char *kid,
                      const char *status, json_t **ret, struct err_detail *d)
{
    struct store *st = a->cfg.store;
    int r = store_begin(st);
    if (r < 0)
        return err_set(d, r, "the store is unavailable");
    struct store_key *keys = NULL;
    size_t n = 0;
    struct changes c = {0};
    r = store_key_list(st, &keys, &n);
    long i = r == 0 ? find(keys, n, kid) : -1;
    if (r == 0 && i < 0)
        r = err_set(d, ERR_NOTFOUND, "key:%s does not exist", kid);
    if (r < 0)
        goto fail;
    struct store_key *k = &keys[i];
    if (strcmp(k->status, status) == 0) { /* already so: nothing to record */
        store_rollback(st);
        *ret = key_json(k);
        store_keys_free(keys, n);
        return 0;
    }
    if (strcmp(k->status, "retired") == 0) {
        r = err_set(d, ERR_CONFLICT, "key:%s is retired; create a new key instead", kid);
        goto fail;
    }
    int64_t now = time_now_us() / 1000000;
    c.extra_events = json_array();
    if (strcmp(status, "active") == 0) {
        for (size_t j = 0; j < n; j++) {
            if ((long)j == i || strcmp(keys[j].alg, k->alg) || strcmp(keys[j].status, "active"))
                continue;
            r = store_key_set_status(st, keys[j].kid, "published", now);
            if (r < 0)
                goto fail;
            free(keys[j].status);
            keys[j].status = strdup("published");
            json_array_append_new(c.extra_events, key_event(a, o, "publish", &keys[j], "active"));
        }
    } else if (strcmp(k->status, "active") == 0) {
        struct policy_snapshot *snap = policy_holder_get(a->cfg.policy);
        enum jose_alg alg;
        int needed = 0;
        if (snap && jose_alg_parse(k->alg, &alg) == 0)
            needed = snap->settings.default_signing_alg == alg ||
                     (snap->settings.maintained_algs & (1u << alg));
        policy_snapshot_unref(snap);
        int others = 0;
        for (size_t j = 0; j < n; j++)
            others += (long)j != i && !strcmp(keys[j].alg, k->alg) &&
                      !strcmp(keys[j].status, "active");
        if (needed && !others) {
            r = err_set(d, ERR_CONFLICT,
                        "key:%s is the only active %s key and %s is a maintained algorithm; "
                        "create and activate another %s key first",
                        kid, k->alg, k->alg, k->alg);
            goto fail;
        }
    }
    char *old = k->status;
    k->status = (char *)status;
    k->updated = now;
    r = store_key_set_status(st, kid, status, now);
    if (r == 0)
        json_array_append_new(c.extra_events,
                              key_event(a, o, strcmp(status, "active") ? "retire" : "activate", k,
                                        old));
    json_t *out = r == 0 ? key_json(k) : NULL;
    k->status = old;
    if (r < 0)
        goto fail;
    r = tx_finish(a, o, &c, ERR_CONFLICT, d);
    changes_done(&c);
    store_keys_free(keys, n);
    if (r < 0) {
        json_decref(out);
        return r;
    }
    *ret = out;
    return 0;
fail:
    store_rollback(st);
    changes_done(&c);
    store_keys_free(keys, n);
    return r;
}

int admin_key_activate(struct admin *a, const struct audit_origin *o, const char *kid,
                       json_t **ret, struct err_detail *d)
{
    return set_status(a, o, kid, "active", ret, d);
}

int admin_key_retire(struct admin *a, const struct audit_origin *o, const char *kid,
                     json_t **ret, struct err_detail *d)
{
    return set_status(a, o, kid, "retired", ret, d);
}

int admin_keys_ensure(struct admin *a, const struct audit_origin *o, struct err_detail *d)
{
    struct policy_snapshot *snap = policy_holder_get(a->cfg.policy);
    if (!snap)
        return err_set(d, ERR_INTERNAL, "no policy snapshot");
    unsigned want = snap->settings.maintained_algs | (1u << snap->settings.default_signing_alg);
    for (int alg = 0; alg < JOSE_ALG_COUNT; alg++)
        if (snap->active_key[alg])
            want &= ~(1u << alg);
    policy_snapshot_unref(snap);
    if (!want)
        return 0;
    int r = store_begin(a->cfg.store);
    if (r < 0)
        return err_set(d, r, "the store is unavailable");
    struct changes c = {0};
    int made = 0;
    for (int alg = 0; alg < JOSE_ALG_COUNT && r == 0; alg++)
        if (want & (1u << alg)) {
            r = create_locked(a, o, (enum jose_alg)alg, &c, NULL, d);
            made += r == 0;
        }
    if (r == 0)
        r = tx_finish(a, o, &c, ERR_CONFLICT, d);
    else
        store_rollback(a->cfg.store);
    changes_done(&c);
    return r < 0 ? r : made;
}
