/* policy/snapshot.c — builds the immutable policy snapshot from canonical
 * objects, checks the rules that span objects, and swaps the current snapshot.
 *
 * Invariant: a snapshot that exists is valid — every reference resolves, no
 * two systems register one target URL, at most one access policy joins a
 * client and a system — so the decision never meets a dangling pointer.
 * All structs live in one arena freed with the snapshot; strings are borrowed
 * from the JSON documents the snapshot keeps a reference to. */
#include "policy/policy.h"
#include "core/buf.h"
#include "core/timeutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
    struct arena_block *next;
    max_align_t data[];
};

static void *arena_alloc(struct policy_snapshot *s, size_t n)
{
    struct arena_block *b = calloc(1, sizeof(*b) + (n ? n : 1));
    if (!b)
        return NULL;
    b->next = s->arena_;
    s->arena_ = b;
    return b->data;
}

static void arena_free(struct policy_snapshot *s)
{
    struct arena_block *b = s->arena_;
    while (b) {
        struct arena_block *n = b->next;
        free(b);
        b = n;
    }
    s->arena_ = NULL;
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static const char **str_array(struct policy_snapshot *s, const json_t *a, size_t *ret_n)
{
    size_t n = json_array_size(a);
    const char **out = arena_alloc(s, n * sizeof(*out));
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++)
        out[i] = json_string_value(json_array_get(a, i));
    *ret_n = n;
    return out;
}

static unsigned alg_mask(const json_t *a)
{
    unsigned m = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
    {
        enum jose_alg alg;
        if (jose_alg_parse(json_string_value(v), &alg) == 0)
            m |= 1u << alg;
    }
    return m;
}

static int64_t duration_of(const json_t *v)
{
    int64_t s = 0;
    if (json_is_string(v) && duration_parse(json_string_value(v), &s) == 0)
        return s;
    return 0;
}

static int err_at(struct policy_error *e, const json_t *node, const char *key, const char *fmt,
                  const char *a, const char *b, const char *c)
{
    if (e) {
        snprintf(e->msg, sizeof(e->msg), fmt, a, b, c);
        e->node = node;
        e->key = key;
    }
    return ERR_INVAL;
}

static int build_settings(struct policy_snapshot *s, const json_t *list)
{
    const json_t *doc = json_array_get(list, 0);
    s->settings.default_signing_alg = JOSE_ES256;
    s->settings.maintained_algs = 1u << JOSE_ES256;
    s->settings.default_lifetime = 300;
    if (!doc)
        return 0;
    enum jose_alg a;
    if (str(doc, "default_signing_alg") && jose_alg_parse(str(doc, "default_signing_alg"), &a) == 0)
        s->settings.default_signing_alg = a;
    if (json_object_get(doc, "maintained_algs"))
        s->settings.maintained_algs = alg_mask(json_object_get(doc, "maintained_algs"));
    int64_t lt = duration_of(json_object_get(doc, "default_lifetime"));
    if (lt)
        s->settings.default_lifetime = lt;
    return 0;
}

static int build_systems(struct policy_snapshot *s, const json_t *list, struct policy_error *e)
{
    size_t n = json_array_size(list);
    s->systems = arena_alloc(s, n * sizeof(*s->systems));
    if (!s->systems)
        return ERR_NOMEM;
    s->n_systems = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *d = json_array_get(list, i);
        struct policy_system *y = &s->systems[i];
        y->id = str(d, "id");
        y->name = str(d, "name") ? str(d, "name") : y->id;
        y->audience = str(d, "audience");
        y->resource_urls = str_array(s, json_object_get(d, "resource_urls"), &y->n_resource_urls);
        const json_t *sc = json_object_get(d, "scopes");
        y->n_scopes = json_array_size(sc);
        y->scopes = arena_alloc(s, y->n_scopes * sizeof(*y->scopes));
        if (!y->scopes || !y->resource_urls)
            return ERR_NOMEM;
        for (size_t j = 0; j < y->n_scopes; j++) {
            const json_t *o = json_array_get(sc, j);
            y->scopes[j].name = str(o, "name");
            y->scopes[j].enabled = json_is_true(json_object_get(o, "enabled"));
            y->scopes[j].classification = str(o, "classification");
        }
        y->paused = json_is_true(json_object_get(d, "paused"));
        const char *alg = str(d, "signing_alg");
        y->inherit_alg = !alg || strcmp(alg, "inherit") == 0;
        if (!y->inherit_alg && jose_alg_parse(alg, &y->signing_alg) < 0)
            y->inherit_alg = true;
        y->max_lifetime = duration_of(json_object_get(d, "max_lifetime"));
        const char *tt = str(d, "token_type");
        y->token_type = tt && strcmp(tt, "access_token") == 0 ? POLICY_TOKEN_ACCESS
                                                               : POLICY_TOKEN_ID_JAG;
        if (strmap_put(&s->system_by_id, y->id, y, NULL) < 0)
            return ERR_NOMEM;
        for (size_t j = 0; j < y->n_resource_urls; j++) {
            void *old = NULL;
            if (strmap_put(&s->system_by_resource, y->resource_urls[j], y, &old) < 0)
                return ERR_NOMEM;
            if (old && old != y)
                return err_at(e, d, "resource_urls",
                              "system \"%s\": target URL %s is already registered on system \"%s\"",
                              y->id, y->resource_urls[j], ((struct policy_system *)old)->id);
        }
    }
    return 0;
}

static unsigned grant_bits(const json_t *a)
{
    static const char *const names[] = {"urn:ietf:params:oauth:grant-type:token-exchange",
                                        "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                        "client_credentials", "authorization_code",
                                        "refresh_token"};
    unsigned m = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) for (unsigned b = 0; b < 5; b++) if (
        strcmp(json_string_value(v), names[b]) == 0) m |= 1u << b;
    return m;
}

static int build_clients(struct policy_snapshot *s, const json_t *list)
{
    size_t n = json_array_size(list);
    s->clients = arena_alloc(s, n * sizeof(*s->clients));
    if (!s->clients)
        return ERR_NOMEM;
    s->n_clients = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *d = json_array_get(list, i);
        struct policy_client *c = &s->clients[i];
        c->id = str(d, "id");
        c->name = str(d, "name") ? str(d, "name") : c->id;
        const char *auth = str(d, "auth");
        c->auth = !auth                                        ? POLICY_AUTH_SECRET_BASIC
                  : strcmp(auth, "none") == 0                  ? POLICY_AUTH_NONE
                  : strcmp(auth, "client_secret_post") == 0    ? POLICY_AUTH_SECRET_POST
                  : strcmp(auth, "private_key_jwt") == 0       ? POLICY_AUTH_PRIVATE_KEY_JWT
                                                               : POLICY_AUTH_SECRET_BASIC;
        c->secret_hash = str(d, "secret_hash");
        c->jwks = json_object_get(d, "jwks");
        c->jwks_uri = str(d, "jwks_uri");
        c->redirect_uris = str_array(s, json_object_get(d, "redirect_uris"), &c->n_redirect_uris);
        if (!c->redirect_uris)
            return ERR_NOMEM;
        c->grant_types = grant_bits(json_object_get(d, "grant_types"));
        if (strmap_put(&s->client_by_id, c->id, c, NULL) < 0)
            return ERR_NOMEM;
    }
    return 0;
}

static int build_access(struct policy_snapshot *s, const json_t *list, struct policy_error *e)
{
    size_t n = json_array_size(list);
    s->access = arena_alloc(s, n * sizeof(*s->access));
    if (!s->access)
        return ERR_NOMEM;
    s->n_access = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *d = json_array_get(list, i);
        struct policy_access *a = &s->access[i];
        a->id = str(d, "id");
        a->client = strmap_get(&s->client_by_id, str(d, "client"));
        a->system = strmap_get(&s->system_by_id, str(d, "system"));
        const char *cref = str(d, "client");
        if (!a->client && (strncmp(cref, "https://", 8) == 0 || strncmp(cref, "http://", 7) == 0)) {
            /* a client ID metadata document's URL: a public client known by its URL, whose
             * redirect URIs the document gives at request time (oauth/cimd.c) */
            struct policy_client *c = arena_alloc(s, sizeof(*c));
            if (!c)
                return ERR_NOMEM;
            c->id = c->name = cref;
            c->auth = POLICY_AUTH_NONE;
            c->grant_types = POLICY_GT_AUTHORIZATION_CODE;
            c->metadata_document = true;
            if (strmap_put(&s->client_by_id, c->id, c, NULL) < 0)
                return ERR_NOMEM;
            a->client = c;
        }
        if (!a->client)
            return err_at(e, d, "client", "access policy \"%s\": client \"%s\" does not exist%s",
                          a->id, str(d, "client"), "");
        if (!a->system)
            return err_at(e, d, "system", "access policy \"%s\": system \"%s\" does not exist%s",
                          a->id, str(d, "system"), "");
        a->active = json_is_true(json_object_get(d, "active"));
        a->client_id_at_system =
            str(d, "client_id_at_system") ? str(d, "client_id_at_system") : a->client->id;
        /* the pair key lives in the arena: "client\nsystem" */
        size_t kl = strlen(a->client->id) + strlen(a->system->id) + 2;
        char *key = arena_alloc(s, kl);
        if (!key)
            return ERR_NOMEM;
        snprintf(key, kl, "%s\n%s", a->client->id, a->system->id);
        void *old = NULL;
        if (strmap_put(&s->access_by_pair, key, a, &old) < 0)
            return ERR_NOMEM;
        if (old)
            return err_at(e, d, "client",
                          "access policy \"%s\": client \"%s\" and system \"%s\" are already "
                          "connected by another access policy",
                          a->id, a->client->id, a->system->id);
    }
    return 0;
}

static int build_grants(struct policy_snapshot *s, const json_t *list, struct policy_error *e)
{
    size_t n = json_array_size(list);
    s->grants = arena_alloc(s, n * sizeof(*s->grants));
    if (!s->grants)
        return ERR_NOMEM;
    s->n_grants = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *d = json_array_get(list, i);
        struct policy_grant *g = &s->grants[i];
        g->id = str(d, "id");
        g->subject = str(d, "subject");
        g->system = strmap_get(&s->system_by_id, str(d, "system"));
        if (!g->system)
            return err_at(e, d, "system", "grant \"%s\": system \"%s\" does not exist%s", g->id,
                          str(d, "system"), "");
        if (strncmp(g->subject, "client:", 7) == 0 &&
            !strmap_get(&s->client_by_id, g->subject + 7))
            return err_at(e, d, "subject", "grant \"%s\": client \"%s\" does not exist%s", g->id,
                          g->subject + 7, "");
        g->scopes = str_array(s, json_object_get(d, "scopes"), &g->n_scopes);
        if (!g->scopes)
            return ERR_NOMEM;
    }
    return 0;
}

static int build_issuers(struct policy_snapshot *s, const json_t *list, struct policy_error *e)
{
    size_t n = json_array_size(list);
    s->issuers = arena_alloc(s, n * sizeof(*s->issuers));
    if (!s->issuers)
        return ERR_NOMEM;
    s->n_issuers = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *d = json_array_get(list, i);
        struct policy_issuer *t = &s->issuers[i];
        t->id = str(d, "id");
        t->issuer = str(d, "issuer");
        t->jwks_uri = str(d, "jwks_uri");
        t->jwks = json_object_get(d, "jwks");
        t->audience = str(d, "audience");
        t->user_claim = str(d, "user_claim") ? str(d, "user_claim") : "sub";
        t->groups_claim = str(d, "groups_claim") ? str(d, "groups_claim") : "groups";
        t->algorithms = alg_mask(json_object_get(d, "algorithms"));
        t->authorization_endpoint = str(d, "authorization_endpoint");
        t->token_endpoint = str(d, "token_endpoint");
        t->client_id = str(d, "client_id");
        t->client_secret_sealed = str(d, "client_secret_sealed");
        t->sign_in_scope = str(d, "sign_in_scope") ? str(d, "sign_in_scope") : "openid";
        t->secret_post = str(d, "token_endpoint_auth_method") &&
                         strcmp(str(d, "token_endpoint_auth_method"), "client_secret_post") == 0;
        void *old = NULL;
        if (strmap_put(&s->issuer_by_issuer, t->issuer, t, &old) < 0)
            return ERR_NOMEM;
        if (old)
            return err_at(e, d, "issuer", "trusted issuer \"%s\": issuer %s is already trusted as \"%s\"",
                          t->id, t->issuer, ((struct policy_issuer *)old)->id);
    }
    return 0;
}

static int build_keys(struct policy_snapshot *s, const struct policy_input *in)
{
    s->keys = arena_alloc(s, in->n_keys * sizeof(*s->keys));
    if (!s->keys)
        return ERR_NOMEM;
    s->n_keys = in->n_keys;
    struct buf jwks;
    buf_init(&jwks, 0);
    int r = buf_puts(&jwks, "{\"keys\":[");
    int first = 1;
    for (size_t i = 0; i < in->n_keys && r == 0; i++) {
        const struct store_key *k = &in->keys[i];
        struct policy_key *p = &s->keys[i];
        char *kid = arena_alloc(s, strlen(k->kid) + 1);
        char *status = arena_alloc(s, strlen(k->status) + 1);
        if (!kid || !status) {
            r = ERR_NOMEM;
            break;
        }
        p->kid = strcpy(kid, k->kid);
        p->status = strcpy(status, k->status);
        p->created = k->created;
        if (jose_alg_parse(k->alg, &p->alg) < 0) {
            r = ERR_CORRUPT;
            break;
        }
        if (strcmp(k->status, "retired") == 0)
            continue;
        if (in->kek) {
            r = jose_key_open(p->alg, k->kid, k->sealed, in->kek, &p->key);
            if (r < 0)
                break;
        }
        if (strcmp(k->status, "active") == 0 &&
            (!s->active_key[p->alg] || s->active_key[p->alg]->created <= p->created))
            s->active_key[p->alg] = p;
        r = buf_printf(&jwks, "%s%s", first ? "" : ",", k->public_jwk);
        first = 0;
    }
    if (r == 0)
        r = buf_puts(&jwks, "]}");
    if (r < 0) {
        buf_done(&jwks);
        return r;
    }
    s->jwks_json = buf_take(&jwks, NULL);
    return s->jwks_json ? 0 : ERR_NOMEM;
}

static void snapshot_free(struct policy_snapshot *s)
{
    for (size_t i = 0; i < s->n_keys; i++)
        jose_key_free(s->keys[i].key);
    strmap_done(&s->system_by_id);
    strmap_done(&s->system_by_resource);
    strmap_done(&s->client_by_id);
    strmap_done(&s->access_by_pair);
    strmap_done(&s->issuer_by_issuer);
    for (int k = 0; k < STORE_KIND_COUNT; k++)
        json_decref(s->docs_[k]);
    free(s->jwks_json);
    arena_free(s);
    free(s);
}

int policy_snapshot_build(const struct policy_input *in, struct policy_snapshot **ret,
                          struct policy_error *e)
{
    struct policy_snapshot *s = calloc(1, sizeof(*s));
    if (!s)
        return ERR_NOMEM;
    s->refs_ = 1;
    s->version = in->version;
    strmap_init(&s->system_by_id);
    strmap_init(&s->system_by_resource);
    strmap_init(&s->client_by_id);
    strmap_init(&s->access_by_pair);
    strmap_init(&s->issuer_by_issuer);
    for (int k = 0; k < STORE_KIND_COUNT; k++)
        s->docs_[k] = in->lists[k] ? json_incref(in->lists[k]) : json_array();
    int r = build_settings(s, s->docs_[STORE_SETTINGS]);
    if (r == 0)
        r = build_systems(s, s->docs_[STORE_SYSTEMS], e);
    if (r == 0)
        r = build_clients(s, s->docs_[STORE_CLIENTS]);
    if (r == 0)
        r = build_access(s, s->docs_[STORE_ACCESS_POLICIES], e);
    if (r == 0)
        r = build_grants(s, s->docs_[STORE_GRANTS], e);
    if (r == 0)
        r = build_issuers(s, s->docs_[STORE_TRUSTED_ISSUERS], e);
    if (r == 0)
        r = build_keys(s, in);
    if (r < 0) {
        if (r == ERR_CORRUPT && e)
            snprintf(e->msg, sizeof(e->msg), "a stored signing key does not open with this KEK");
        snapshot_free(s);
        return r;
    }
    *ret = s;
    return 0;
}

int policy_snapshot_load(struct store *st, const struct kek *kek, uint64_t version,
                         struct policy_snapshot **ret, struct policy_error *e)
{
    struct policy_input in = {.kek = kek, .version = version};
    struct store_key *keys = NULL;
    size_t n_keys = 0;
    int r = 0;
    for (int k = 0; k < STORE_KIND_COUNT && r == 0; k++)
        r = store_object_list(st, (enum store_kind)k, &in.lists[k]);
    if (r == 0)
        r = store_key_list(st, &keys, &n_keys);
    if (r == 0) {
        in.keys = keys;
        in.n_keys = n_keys;
        r = policy_snapshot_build(&in, ret, e);
    } else if (e) {
        snprintf(e->msg, sizeof(e->msg), "reading the policy from the store failed");
    }
    for (int k = 0; k < STORE_KIND_COUNT; k++)
        json_decref(in.lists[k]);
    store_keys_free(keys, n_keys);
    return r;
}

struct policy_snapshot *policy_snapshot_ref(struct policy_snapshot *s)
{
    if (s)
        __atomic_add_fetch(&s->refs_, 1, __ATOMIC_RELAXED);
    return s;
}

struct policy_snapshot *policy_snapshot_unref(struct policy_snapshot *s)
{
    if (s && __atomic_sub_fetch(&s->refs_, 1, __ATOMIC_ACQ_REL) == 0)
        snapshot_free(s);
    return NULL;
}

const struct policy_system *policy_system_by_id(const struct policy_snapshot *s, const char *id)
{
    return strmap_get(&s->system_by_id, id);
}

const struct policy_client *policy_client_by_id(const struct policy_snapshot *s, const char *id)
{
    return strmap_get(&s->client_by_id, id);
}

struct policy_holder {
    pthread_mutex_t lock;
    struct policy_snapshot *cur;
};

struct policy_holder *policy_holder_new(struct policy_snapshot *initial)
{
    struct policy_holder *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    pthread_mutex_init(&h->lock, NULL);
    h->cur = initial;
    return h;
}

struct policy_holder *policy_holder_free(struct policy_holder *h)
{
    if (h) {
        policy_snapshot_unref(h->cur);
        pthread_mutex_destroy(&h->lock);
        free(h);
    }
    return NULL;
}

struct policy_snapshot *policy_holder_get(struct policy_holder *h)
{
    pthread_mutex_lock(&h->lock);
    struct policy_snapshot *s = policy_snapshot_ref(h->cur);
    pthread_mutex_unlock(&h->lock);
    return s;
}

void policy_holder_set_take(struct policy_holder *h, struct policy_snapshot *snap)
{
    pthread_mutex_lock(&h->lock);
    struct policy_snapshot *old = h->cur;
    h->cur = snap;
    pthread_mutex_unlock(&h->lock);
    policy_snapshot_unref(old);
}
