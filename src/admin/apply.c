/* admin/apply.c — `apply`: a whole policy document in one transaction.
 *
 * Every object the document names is validated and compared with the stored
 * one; only differences are written and audited. With prune, stored objects
 * the document does not name are deleted. Errors carry the document's line
 * numbers; an error anywhere means nothing is changed. */
#include "admin/admin_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const enum store_kind order[] = {STORE_SYSTEMS, STORE_CLIENTS, STORE_ACCESS_POLICIES,
                                        STORE_GRANTS, STORE_TRUSTED_ISSUERS};

static int line_of(const struct config_doc *doc, const json_t *node, const char *key)
{
    if (!doc || !node)
        return 0;
    int l = key ? config_doc_key_line(doc, node, key) : 0;
    return l ? l : config_doc_line(doc, node);
}

static int fail_at(struct err_detail *d, const struct config_doc *doc, const json_t *node,
                   const char *key, int err, const char *msg)
{
    int line = line_of(doc, node, key);
    if (line)
        return err_set(d, err, "line %d: %s", line, msg);
    return err_set(d, err, "%s", msg);
}

/* Stages one object; `seen` maps id -> where it was first named (duplicate check). */
static int stage(struct admin *a, const struct config_doc *doc, enum store_kind kind,
                 const json_t *in, const char *where, struct changes *c, json_t *seen,
                 int *unchanged, struct err_detail *d)
{
    struct store *st = a->cfg.store;
    json_t *existing = NULL, *out = NULL;
    char *id = NULL;
    struct policy_error pe = {0};
    const char *probe = kind == STORE_SETTINGS ? "settings"
                                               : json_string_value(json_object_get(in, "id"));
    if (probe && store_object_get(st, kind, probe, &existing) < 0)
        existing = NULL;
    int r = policy_normalize(kind, in, existing, where, &out, &id, &pe);
    if (r < 0) {
        json_decref(existing);
        return fail_at(d, doc, pe.node, pe.key, r, pe.msg);
    }
    if (!probe || strcmp(probe, id) != 0) { /* derived ids (grants, issuers) */
        json_decref(existing);
        existing = NULL;
        if (store_object_get(st, kind, id, &existing) < 0)
            existing = NULL;
    }
    const char *first = json_string_value(json_object_get(seen, id));
    if (first) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s: duplicate id \"%s\" (first named at %s)", where, id, first);
        r = fail_at(d, doc, in, "id", ERR_INVAL, msg);
        goto out;
    }
    json_object_set_new(seen, id, json_string(where));
    if (json_equal(existing, out)) {
        (*unchanged)++;
    } else {
        r = changes_add(c, kind, id, json_incref(existing), json_incref(out));
    }
out:
    json_decref(existing);
    json_decref(out);
    free(id);
    return r;
}

static int prune_kind(struct admin *a, enum store_kind kind, const json_t *seen,
                      struct changes *c)
{
    json_t *list = NULL;
    int r = store_object_list(a->cfg.store, kind, &list);
    if (r < 0)
        return r;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *id = json_string_value(json_object_get(v, "id"));
        if (id && !json_object_get(seen, id) && r == 0)
            r = changes_add(c, kind, id, json_incref(v), NULL);
    }
    json_decref(list);
    return r;
}

int admin_apply(struct admin *a, const struct audit_origin *o, const struct config_doc *doc,
                int prune, json_t **ret, struct err_detail *d)
{
    const json_t *root = config_doc_root(doc);
    if (!json_is_object(root))
        return fail_at(d, doc, root, NULL, ERR_INVAL,
                       "a policy document is a mapping of sections (systems, clients, ...)");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)root, k, v)
    {
        const struct policy_kind_info *ki = policy_kind_by_section(k);
        if (!ki || ki->kind == STORE_EXPORTERS) {
            char msg[300];
            snprintf(msg, sizeof(msg),
                     "%s: unknown section (expected settings, systems, clients, access_policies, "
                     "grants, trusted_issuers)",
                     k);
            return fail_at(d, doc, root, k, ERR_INVAL, msg);
        }
        int want_obj = ki->kind == STORE_SETTINGS;
        if (!json_is_null(v) && (want_obj ? !json_is_object(v) : !json_is_array(v))) {
            char msg[300];
            snprintf(msg, sizeof(msg), "%s: expected %s", k, want_obj ? "a mapping" : "a list");
            return fail_at(d, doc, root, k, ERR_INVAL, msg);
        }
    }

    if (prune && json_object_size(root) == 0)
        return err_set(d, ERR_INVAL, "refusing to prune with an empty document: it would delete "
                                     "every object");
    struct store *st = a->cfg.store;
    int r = store_begin(st);
    if (r < 0)
        return err_set(d, r, "the store is unavailable");
    struct changes c = {0};
    int unchanged = 0;
    json_t *seen[STORE_KIND_COUNT] = {0};
    for (int i = 0; i < STORE_KIND_COUNT; i++)
        seen[i] = json_object();

    const json_t *settings = json_object_get(root, "settings");
    if (json_is_object(settings))
        r = stage(a, doc, STORE_SETTINGS, settings, "settings", &c, seen[STORE_SETTINGS],
                  &unchanged, d);
    for (size_t s = 0; s < sizeof(order) / sizeof(order[0]) && r == 0; s++) {
        const struct policy_kind_info *ki = policy_kind_info(order[s]);
        const json_t *list = json_object_get(root, ki->section);
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item)
        {
            char where[96];
            snprintf(where, sizeof(where), "%s[%zu]", ki->section, i);
            r = stage(a, doc, order[s], item, where, &c, seen[order[s]], &unchanged, d);
            if (r < 0)
                break;
        }
    }
    for (size_t s = 0; prune && s < sizeof(order) / sizeof(order[0]) && r == 0; s++)
        r = prune_kind(a, order[s], seen[order[s]], &c);

    json_t *summary = NULL;
    if (r == 0) {
        int created = 0, updated = 0, deleted = 0;
        json_t *list = json_array();
        for (size_t i = 0; i < c.n; i++) {
            const char *action = !c.v[i].before ? "create" : !c.v[i].after ? "delete" : "update";
            created += !c.v[i].before;
            deleted += !c.v[i].after;
            updated += c.v[i].before && c.v[i].after;
            char obj[300];
            admin_object_ref(c.v[i].kind, c.v[i].id, obj, sizeof(obj));
            json_array_append_new(list, json_pack("{s:s, s:s}", "action", action, "object", obj));
        }
        summary = json_pack("{s:i, s:i, s:i, s:i, s:o}", "created", created, "updated", updated,
                            "deleted", deleted, "unchanged", unchanged, "changes", list);
        r = tx_finish(a, o, &c, ERR_INVAL, d);
    } else {
        store_rollback(st);
    }
    changes_done(&c);
    for (int i = 0; i < STORE_KIND_COUNT; i++)
        json_decref(seen[i]);
    if (r < 0) {
        json_decref(summary);
        return r;
    }
    *ret = summary;
    return 0;
}
