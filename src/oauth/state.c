/* oauth/state.c — secret cache and jti sets.
 *
 * The secret cache is a direct-mapped table of digests: a slot holds
 * HMAC(k, client_id || 0 || hash || 0 || secret). A hit proves this exact
 * secret verified against this exact stored hash before; a collision merely
 * evicts. The jti sets are open-addressing tables swept of expired entries
 * when they fill up. */
#include "oauth/state.h"
#include "core/uuid.h"
#include "jose/crypto.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define INFLIGHT 16

struct secret_cache {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t slots;
    unsigned char key[32];
    unsigned char (*digest)[SHA256_LEN];
    unsigned char *used;
    /* digests being verified right now: a burst of requests with one client's secret
     * runs PBKDF2 once, the others wait for its verdict instead of each running it */
    unsigned char inflight[INFLIGHT][SHA256_LEN];
    int inflight_used[INFLIGHT];
    int inflight_result[INFLIGHT];
    unsigned inflight_gen[INFLIGHT];
};

int secret_cache_new(size_t slots, struct secret_cache **ret)
{
    struct secret_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return ERR_NOMEM;
    c->slots = slots ? slots : 1024;
    c->digest = calloc(c->slots, SHA256_LEN);
    c->used = calloc(c->slots, 1);
    if (!c->digest || !c->used) {
        free(c->digest);
        free(c->used);
        free(c);
        return ERR_NOMEM;
    }
    core_random(c->key, sizeof(c->key));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    *ret = c;
    return 0;
}

struct secret_cache *secret_cache_free(struct secret_cache *c)
{
    if (c) {
        crypto_wipe(c->key, sizeof(c->key));
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c->digest);
        free(c->used);
        free(c);
    }
    return NULL;
}

static void digest_of(const struct secret_cache *c, const char *id, const char *hash,
                      const char *secret, unsigned char out[SHA256_LEN])
{
    size_t a = strlen(id), b = strlen(hash), s = strlen(secret);
    char stackbuf[1024];
    char *msg = a + b + s + 2 <= sizeof(stackbuf) ? stackbuf : malloc(a + b + s + 2);
    if (!msg) {
        memset(out, 0, SHA256_LEN);
        return;
    }
    memcpy(msg, id, a);
    msg[a] = '\0';
    memcpy(msg + a + 1, hash, b);
    msg[a + 1 + b] = '\0';
    memcpy(msg + a + b + 2, secret, s);
    crypto_hmac_sha256(c->key, sizeof(c->key), msg, a + b + s + 2, out);
    crypto_wipe(msg, a + b + s + 2);
    if (msg != stackbuf)
        free(msg);
}

int secret_cache_verify(struct secret_cache *c, const char *client_id, const char *hash,
                        const char *secret)
{
    unsigned char d[SHA256_LEN];
    digest_of(c, client_id, hash, secret, d);
    size_t slot = ((size_t)d[0] << 8 | d[1]) % c->slots;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (c->used[slot] && crypto_memeq(c->digest[slot], d, SHA256_LEN)) {
            pthread_mutex_unlock(&c->mu);
            return 0;
        }
        int busy = -1;
        for (int i = 0; i < INFLIGHT && busy < 0; i++)
            if (c->inflight_used[i] && crypto_memeq(c->inflight[i], d, SHA256_LEN))
                busy = i;
        if (busy < 0)
            break;
        /* the same (client, hash, secret) is being verified: wait for that verdict */
        unsigned gen = c->inflight_gen[busy];
        while (c->inflight_gen[busy] == gen)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->inflight_result[busy] != 0 && crypto_memeq(c->inflight[busy], d, SHA256_LEN)) {
            int r = c->inflight_result[busy];
            pthread_mutex_unlock(&c->mu);
            return r;
        }
    }
    int mine = -1;
    for (int i = 0; i < INFLIGHT && mine < 0; i++)
        if (!c->inflight_used[i])
            mine = i;
    if (mine >= 0) {
        memcpy(c->inflight[mine], d, SHA256_LEN);
        c->inflight_used[mine] = 1;
    }
    pthread_mutex_unlock(&c->mu);

    int r = secret_verify(secret, hash);

    pthread_mutex_lock(&c->mu);
    if (r == 0) {
        memcpy(c->digest[slot], d, SHA256_LEN);
        c->used[slot] = 1;
    }
    if (mine >= 0) {
        c->inflight_used[mine] = 0;
        c->inflight_result[mine] = r;
        c->inflight_gen[mine]++;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

struct jti_entry {
    char *jti; /* NULL: empty (entries are never deleted, only swept at rehash) */
    int64_t exp;
    uint64_t h;
};

struct jti_set {
    pthread_mutex_t mu;
    struct jti_entry *t;
    size_t cap, len, used, max; /* used: occupied slots, expired ones included */
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int jti_set_new(size_t max, struct jti_set **ret)
{
    struct jti_set *s = calloc(1, sizeof(*s));
    if (!s)
        return ERR_NOMEM;
    s->max = max ? max : 1000000;
    s->cap = 1024;
    s->t = calloc(s->cap, sizeof(*s->t));
    if (!s->t) {
        free(s);
        return ERR_NOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    *ret = s;
    return 0;
}

struct jti_set *jti_set_free(struct jti_set *s)
{
    if (s) {
        for (size_t i = 0; i < s->cap; i++)
            if (s->t[i].jti)
                free(s->t[i].jti);
        free(s->t);
        pthread_mutex_destroy(&s->mu);
        free(s);
    }
    return NULL;
}

/* Rebuilds the table at `ncap`, dropping expired entries. */
static int rehash(struct jti_set *s, size_t ncap, int64_t now)
{
    struct jti_entry *nt = calloc(ncap, sizeof(*nt));
    if (!nt)
        return ERR_NOMEM;
    size_t len = 0;
    for (size_t i = 0; i < s->cap; i++) {
        struct jti_entry *e = &s->t[i];
        if (!e->jti)
            continue;
        if (e->exp <= now) {
            free(e->jti);
            continue;
        }
        size_t j = e->h & (ncap - 1);
        while (nt[j].jti)
            j = (j + 1) & (ncap - 1);
        nt[j] = *e;
        len++;
    }
    free(s->t);
    s->t = nt;
    s->cap = ncap;
    s->len = s->used = len;
    return 0;
}

static struct jti_entry *find(struct jti_set *s, const char *jti, uint64_t h)
{
    size_t j = h & (s->cap - 1);
    while (s->t[j].jti) {
        if (s->t[j].h == h && strcmp(s->t[j].jti, jti) == 0)
            return &s->t[j];
        j = (j + 1) & (s->cap - 1);
    }
    return NULL;
}

int jti_set_has(struct jti_set *s, const char *jti, int64_t now)
{
    uint64_t h = hash_str(jti);
    pthread_mutex_lock(&s->mu);
    struct jti_entry *e = find(s, jti, h);
    int has = e && e->exp > now;
    pthread_mutex_unlock(&s->mu);
    return has;
}

int jti_set_add(struct jti_set *s, const char *jti, int64_t exp, int64_t now)
{
    uint64_t h = hash_str(jti);
    int r = 0;
    pthread_mutex_lock(&s->mu);
    struct jti_entry *e = find(s, jti, h);
    if (e && e->exp > now) {
        r = ERR_EXISTS;
        goto out;
    }
    if (e) { /* expired: reuse the slot */
        e->exp = exp;
        goto out;
    }
    if ((s->used + 1) * 2 > s->cap) {
        size_t live = s->len;
        size_t ncap = s->cap;
        while ((live + 1) * 2 > ncap)
            ncap *= 2;
        if (live >= s->max) { /* try sweeping before refusing */
            r = rehash(s, ncap, now);
            if (r < 0 || s->len >= s->max) {
                r = r < 0 ? r : ERR_IO;
                goto out;
            }
        } else {
            r = rehash(s, ncap, now);
            if (r < 0)
                goto out;
        }
    }
    char *copy = strdup(jti);
    if (!copy) {
        r = ERR_NOMEM;
        goto out;
    }
    size_t j = h & (s->cap - 1);
    while (s->t[j].jti)
        j = (j + 1) & (s->cap - 1);
    s->used++;
    s->t[j] = (struct jti_entry){copy, exp, h};
    s->len++;
out:
    pthread_mutex_unlock(&s->mu);
    return r;
}

size_t jti_set_len(struct jti_set *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->len;
    pthread_mutex_unlock(&s->mu);
    return n;
}
