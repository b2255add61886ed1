/* admin/admin.c — policy object administration and `apply`.
 *
 * One path for every mutation: stage the changes (validated, canonical, compared
 * with what is stored), then tx_finish(): rebuild the snapshot inside the
 * transaction (cross-object rules), append one audit event per change, commit,
 * swap. A change that changes nothing writes nothing and records nothing, so
 * re-applying the same file is a no-op. */
#include "admin/admin_priv.h"
#include "core/b64.h"
#include "core/uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int admin_new(const struct admin_config *cfg, struct admin **ret)
{
    struct admin *a = calloc(1, sizeof(*a));
    if (!a)
        return ERR_NOMEM;
    a->cfg = *cfg;
    *ret = a;
    return 0;
}

struct admin *admin_free(struct admin *a)
{
    free(a);
    return NULL;
}

uint64_t admin_version(struct admin *a)
{
    return __atomic_load_n(&a->version, __ATOMIC_RELAXED);
}

int admin_reload(struct admin *a, struct err_detail *d)
{
    struct policy_snapshot *snap = NULL;
    struct policy_error pe = {0};
    uint64_t v = __atomic_add_fetch(&a->version, 1, __ATOMIC_RELAXED);
    int r = policy_snapshot_load(a->cfg.store, a->cfg.kek, v, &snap, &pe);
    if (r < 0)
        return err_set(d, r, "stored policy: %s", pe.msg);
    policy_holder_set_take(a->cfg.policy, snap);
    return 0;
}

void admin_object_ref(enum store_kind kind, const char *id, char *out, size_t n)
{
    const struct policy_kind_info *ki = policy_kind_info(kind);
    if (kind == STORE_SETTINGS)
        snprintf(out, n, "settings");
    else
        snprintf(out, n, "%s:%s", ki ? ki->singular : "object", id);
}

/* {"before": {changed members}, "after": {changed members}} with secrets masked. */
static json_t *diff(enum store_kind kind, const json_t *before, const json_t *after)
{
    json_t *b = before ? policy_masked_view(kind, before) : NULL;
    json_t *f = after ? policy_masked_view(kind, after) : NULL;
    if (b && f) {
        json_t *db = json_object(), *df = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(b, k, v) if (!json_equal(v, json_object_get(f, k)))
            json_object_set(db, k, v);
        json_object_foreach(f, k, v) if (!json_equal(v, json_object_get(b, k)))
            json_object_set(df, k, v);
        /* a changed secret shows as the masked hash on both sides; say so */
        if (kind == STORE_CLIENTS &&
            !json_equal(json_object_get(before, "secret_hash"), json_object_get(after, "secret_hash"))) {
            json_object_set_new(db, "secret_hash", json_string("***"));
            json_object_set_new(df, "secret_hash", json_string("*** (changed)"));
        }
        json_decref(b);
        json_decref(f);
        b = db;
        f = df;
    }
    return json_pack("{s:o?, s:o?}", "before", b, "after", f);
}

void changes_done(struct changes *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].id);
        json_decref(c->v[i].before);
        json_decref(c->v[i].after);
    }
    free(c->v);
    json_decref(c->extra_events);
    memset(c, 0, sizeof(*c));
}

int changes_add(struct changes *c, enum store_kind kind, const char *id, json_t *before_take,
                json_t *after_take)
{
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 8;
        struct change *nv = realloc(c->v, ncap * sizeof(*nv));
        if (!nv) {
            json_decref(before_take);
            json_decref(after_take);
            return ERR_NOMEM;
        }
        c->v = nv;
        c->cap = ncap;
    }
    char *idc = strdup(id);
    if (!idc) {
        json_decref(before_take);
        json_decref(after_take);
        return ERR_NOMEM;
    }
    c->v[c->n++] = (struct change){kind, idc, before_take, after_take};
    return 0;
}

int tx_finish(struct admin *a, const struct audit_origin *o, struct changes *c, int xref_err,
              struct err_detail *d)
{
    struct store *st = a->cfg.store;
    int r = 0;
    for (size_t i = 0; i < c->n && r == 0; i++) {
        struct change *ch = &c->v[i];
        r = ch->after ? store_object_put(st, ch->kind, ch->id, ch->after)
                      : store_object_delete(st, ch->kind, ch->id);
    }
    if (r < 0) {
        store_rollback(st);
        return err_set(d, r, "writing the change failed: %s", err_message(r));
    }
    struct policy_snapshot *snap = NULL;
    struct policy_error pe = {0};
    uint64_t v = admin_version(a) + 1;
    r = policy_snapshot_load(st, a->cfg.kek, v, &snap, &pe);
    if (r < 0) {
        store_rollback(st);
        return err_set(d, r == ERR_INVAL ? xref_err : r, "%s", pe.msg);
    }
    for (size_t i = 0; i < c->n && r == 0; i++) {
        struct change *ch = &c->v[i];
        char obj[300];
        admin_object_ref(ch->kind, ch->id, obj, sizeof(obj));
        const char *action = !ch->before ? "create" : !ch->after ? "delete" : "update";
        json_t *ev = audit_admin_event_new("admin.change", o, action, obj,
                                           diff(ch->kind, ch->before, ch->after), a->cfg.node);
        r = ev ? audit_append(st, ev) : ERR_NOMEM;
        json_decref(ev);
    }
    size_t i;
    json_t *ev;
    if (c->extra_events)
        json_array_foreach(c->extra_events, i, ev) if (r == 0) r = audit_append(st, ev);
    if (r < 0) {
        store_rollback(st);
        policy_snapshot_unref(snap);
        return err_set(d, r, "recording the audit event failed: %s", err_message(r));
    }
    r = store_commit(st);
    if (r < 0) {
        policy_snapshot_unref(snap);
        return err_set(d, r, "committing the change failed");
    }
    __atomic_store_n(&a->version, v, __ATOMIC_RELAXED);
    policy_holder_set_take(a->cfg.policy, snap);
    return 0;
}

int admin_list(struct admin *a, enum store_kind kind, json_t **ret)
{
    json_t *list = NULL;
    int r = store_object_list(a->cfg.store, kind, &list);
    if (r < 0)
        return r;
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) json_array_append_new(out, policy_public_view(kind, v));
    json_decref(list);
    *ret = out;
    return 0;
}

static int get_stored(struct admin *a, enum store_kind kind, const char *id, json_t **ret,
                      struct err_detail *d)
{
    int r = store_object_get(a->cfg.store, kind, id, ret);
    if (r == ERR_NOTFOUND) {
        char obj[300];
        admin_object_ref(kind, id, obj, sizeof(obj));
        return err_set(d, r, "%s does not exist", obj);
    }
    return r;
}

int admin_get(struct admin *a, enum store_kind kind, const char *id, json_t **ret,
              struct err_detail *d)
{
    json_t *doc = NULL;
    int r = get_stored(a, kind, id, &doc, d);
    if (r < 0)
        return r;
    *ret = policy_public_view(kind, doc);
    json_decref(doc);
    return 0;
}

/* Validates `in` for kind; the id must equal `want_id` when given. */
static int normalize(enum store_kind kind, const json_t *in, const json_t *existing,
                     const char *want_id, json_t **ret, char **ret_id, struct err_detail *d)
{
    struct policy_error pe = {0};
    json_t *doc = NULL;
    char *id = NULL;
    int r = policy_normalize(kind, in, existing, "", &doc, &id, &pe);
    if (r < 0)
        return err_set(d, r, "%s", pe.msg);
    if (want_id && strcmp(want_id, id) != 0) {
        r = err_set(d, ERR_INVAL, "id: \"%s\" in the body does not match \"%s\" in the path", id,
                    want_id);
        json_decref(doc);
        free(id);
        return r;
    }
    *ret = doc;
    *ret_id = id;
    return 0;
}

/* For create: a client_secret_* client with no secret gets a generated one. */
static char *maybe_generate_secret(enum store_kind kind, const json_t *body, json_t **work)
{
    if (kind != STORE_CLIENTS || json_object_get(body, "secret") ||
        json_object_get(body, "secret_hash"))
        return NULL;
    const char *auth = json_string_value(json_object_get(body, "auth"));
    if (auth && strncmp(auth, "client_secret_", 14) != 0)
        return NULL;
    unsigned char raw[32];
    core_random(raw, sizeof(raw));
    char *secret = malloc(b64url_len(sizeof(raw)) + 1);
    if (!secret)
        return NULL;
    b64url_encode(raw, sizeof(raw), secret);
    *work = json_copy((json_t *)body);
    json_object_set_new(*work, "secret", json_string(secret));
    return secret;
}

static int put_one(struct admin *a, const struct audit_origin *o, enum store_kind kind,
                   const char *path_id, const json_t *body, int mode, json_t **ret,
                   struct err_detail *d)
{
    /* mode: 0 create, 1 replace */
    struct store *st = a->cfg.store;
    json_t *work = NULL;
    char *secret = mode == 0 ? maybe_generate_secret(kind, body, &work) : NULL;
    const json_t *in = work ? work : body;
    int r = store_begin(st);
    if (r < 0) {
        json_decref(work);
        free(secret);
        return err_set(d, r, "the store is unavailable");
    }
    json_t *existing = NULL, *doc = NULL;
    char *id = NULL;
    const char *probe = path_id ? path_id : json_string_value(json_object_get(in, "id"));
    if (probe && store_object_get(st, kind, probe, &existing) < 0)
        existing = NULL;
    r = normalize(kind, in, existing, path_id, &doc, &id, d);
    if (r < 0)
        goto fail;
    if (mode == 0) {
        json_t *clash = NULL;
        if (store_object_get(st, kind, id, &clash) == 0) {
            json_decref(clash);
            char obj[300];
            admin_object_ref(kind, id, obj, sizeof(obj));
            r = err_set(d, ERR_EXISTS, "%s already exists", obj);
            goto fail;
        }
    } else if (!existing) {
        char obj[300];
        admin_object_ref(kind, id, obj, sizeof(obj));
        r = err_set(d, ERR_NOTFOUND, "%s does not exist", obj);
        goto fail;
    }
    struct changes c = {0};
    if (!json_equal(existing, doc)) {
        r = changes_add(&c, kind, id, json_incref(existing), json_incref(doc));
        if (r < 0)
            goto fail;
    }
    r = tx_finish(a, o, &c, ERR_INVAL, d);
    changes_done(&c);
    if (r < 0)
        goto out;
    *ret = policy_public_view(kind, doc);
    if (secret)
        json_object_set_new(*ret, "secret", json_string(secret));
    goto out;
fail:
    store_rollback(st);
out:
    json_decref(existing);
    json_decref(doc);
    json_decref(work);
    free(id);
    if (secret) {
        crypto_wipe(secret, strlen(secret));
        free(secret);
    }
    return r;
}

int admin_create(struct admin *a, const struct audit_origin *o, enum store_kind kind,
                 const json_t *body, json_t **ret, struct err_detail *d)
{
    return put_one(a, o, kind, NULL, body, 0, ret, d);
}

int admin_replace(struct admin *a, const struct audit_origin *o, enum store_kind kind,
                  const char *id, const json_t *body, json_t **ret, struct err_detail *d)
{
    if (kind == STORE_SETTINGS)
        return admin_settings_put(a, o, body, ret, d);
    return put_one(a, o, kind, id, body, 1, ret, d);
}

/* RFC 7396: null deletes, objects merge recursively, anything else replaces. */
static json_t *merge_patch(const json_t *target, const json_t *patch)
{
    if (!json_is_object(patch))
        return json_deep_copy(patch);
    json_t *out = json_is_object(target) ? json_deep_copy(target) : json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v)
    {
        if (json_is_null(v))
            json_object_del(out, k);
        else
            json_object_set_new(out, k, merge_patch(json_object_get(out, k), v));
    }
    return out;
}

int admin_patch(struct admin *a, const struct audit_origin *o, enum store_kind kind,
                const char *id, const json_t *patch, json_t **ret, struct err_detail *d)
{
    if (!json_is_object(patch))
        return err_set(d, ERR_INVAL, "a merge patch must be a JSON object");
    json_t *cur = NULL;
    int r;
    if (kind == STORE_SETTINGS) {
        if (store_object_get(a->cfg.store, kind, "settings", &cur) < 0)
            cur = json_object();
    } else {
        r = get_stored(a, kind, id, &cur, d);
        if (r < 0)
            return r;
    }
    /* the stored form holds secret_hash; a patch giving a new secret replaces it */
    if (kind == STORE_CLIENTS && json_object_get(patch, "secret"))
        json_object_del(cur, "secret_hash");
    json_t *merged = merge_patch(cur, patch);
    json_decref(cur);
    if (!merged)
        return ERR_NOMEM;
    if (kind == STORE_SETTINGS)
        r = admin_settings_put(a, o, merged, ret, d);
    else
        r = put_one(a, o, kind, id, merged, 1, ret, d);
    json_decref(merged);
    return r;
}

int admin_settings_put(struct admin *a, const struct audit_origin *o, const json_t *body,
                       json_t **ret, struct err_detail *d)
{
    struct store *st = a->cfg.store;
    int r = store_begin(st);
    if (r < 0)
        return err_set(d, r, "the store is unavailable");
    json_t *existing = NULL, *doc = NULL;
    char *id = NULL;
    if (store_object_get(st, STORE_SETTINGS, "settings", &existing) < 0)
        existing = NULL;
    r = normalize(STORE_SETTINGS, body, existing, NULL, &doc, &id, d);
    if (r < 0) {
        store_rollback(st);
        goto out;
    }
    struct changes c = {0};
    if (!json_equal(existing, doc))
        r = changes_add(&c, STORE_SETTINGS, id, json_incref(existing), json_incref(doc));
    if (r == 0)
        r = tx_finish(a, o, &c, ERR_INVAL, d);
    else
        store_rollback(st);
    changes_done(&c);
    if (r == 0)
        *ret = json_incref(doc);
out:
    json_decref(existing);
    json_decref(doc);
    free(id);
    return r;
}

int admin_settings_get(struct admin *a, json_t **ret)
{
    json_t *cur = NULL;
    if (store_object_get(a->cfg.store, STORE_SETTINGS, "settings", &cur) == 0) {
        *ret = cur;
        return 0;
    }
    json_t *empty = json_object(), *doc = NULL;
    char *id = NULL;
    int r = normalize(STORE_SETTINGS, empty, NULL, NULL, &doc, &id, NULL);
    json_decref(empty);
    free(id);
    if (r == 0)
        *ret = doc;
    return r;
}

int admin_delete(struct admin *a, const struct audit_origin *o, enum store_kind kind,
                 const char *id, struct err_detail *d)
{
    if (kind == STORE_SETTINGS)
        return err_set(d, ERR_METHOD, "settings cannot be deleted");
    struct store *st = a->cfg.store;
    int r = store_begin(st);
    if (r < 0)
        return err_set(d, r, "the store is unavailable");
    json_t *existing = NULL;
    r = get_stored(a, kind, id, &existing, d);
    if (r < 0) {
        store_rollback(st);
        return r;
    }
    struct changes c = {0};
    r = changes_add(&c, kind, id, existing, NULL);
    if (r == 0)
        r = tx_finish(a, o, &c, ERR_CONFLICT, d);
    else
        store_rollback(st);
    changes_done(&c);
    return r;
}
