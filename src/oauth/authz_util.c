/* oauth/authz_util.c — the pure pieces of the front door: PKCE S256, redirect
 * URI rules, the classification of addresses for the SSRF guard, the store of
 * single-use tickets (codes, pending sign-ins) and the per-IP token bucket.
 *
 * Tickets: a chained hash table keyed by SHA-256(key), under one mutex. A taken
 * ticket stays as a tombstone (data NULL) until it would have expired, so a
 * second presentation is told apart from an unknown key (RFC 6749 §4.1.2: a
 * code is used once). When the table is full, expired entries are swept; if it
 * is still full the put fails (fail closed: no unbounded growth). */
#include "oauth/oauth_priv.h"
#include "core/b64.h"
#include "core/uuid.h"
#include "jose/crypto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- PKCE ---- */

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

int pkce_verifier_valid(const char *v)
{
    size_t n = v ? strlen(v) : 0;
    if (n < 43 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!unreserved((unsigned char)v[i]))
            return 0;
    return 1;
}

int pkce_challenge_valid(const char *c)
{
    if (!c || strlen(c) != 43)
        return 0;
    for (size_t i = 0; i < 43; i++) {
        unsigned char ch = (unsigned char)c[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return 0;
    }
    return 1;
}

int pkce_s256_matches(const char *verifier, const char *challenge)
{
    if (!pkce_verifier_valid(verifier) || !pkce_challenge_valid(challenge))
        return 0;
    char want[44];
    crypto_sha256_b64url(verifier, strlen(verifier), want);
    return crypto_memeq(want, challenge, 43);
}

/* ---- redirect URIs ---- */

struct uri_parts {
    const char *scheme_end; /* points at "://" */
    const char *host;
    size_t host_len;
    const char *rest; /* after host[:port]: path, query */
    int has_port;
};

/* Splits scheme://host[:port]rest. 0 or -1. No userinfo allowed. */
static int split_uri(const char *u, struct uri_parts *p)
{
    const char *s = strstr(u, "://");
    if (!s || s == u)
        return -1;
    p->scheme_end = s;
    const char *h = s + 3;
    const char *e;
    if (*h == '[') {
        e = strchr(h, ']');
        if (!e)
            return -1;
        e++;
    } else {
        e = h + strcspn(h, ":/?#");
    }
    if (e == h || memchr(h, '@', (size_t)(e - h)))
        return -1;
    p->host = h;
    p->host_len = (size_t)(e - h);
    p->has_port = 0;
    if (*e == ':') {
        const char *q = e + 1;
        while (*q >= '0' && *q <= '9')
            q++;
        if (q == e + 1 || q - e > 6)
            return -1;
        p->has_port = 1;
        e = q;
    }
    if (*e && *e != '/' && *e != '?')
        return -1;
    p->rest = e;
    return 0;
}

static int host_is(const struct uri_parts *p, const char *h)
{
    return p->host_len == strlen(h) && strncasecmp(p->host, h, p->host_len) == 0;
}

int redirect_uri_is_loopback(const char *uri)
{
    struct uri_parts p;
    if (!uri || strncmp(uri, "http://", 7) != 0 || split_uri(uri, &p) < 0)
        return 0;
    return host_is(&p, "127.0.0.1") || host_is(&p, "[::1]") || host_is(&p, "localhost");
}

int redirect_uri_allowed(const char *uri)
{
    if (!uri)
        return 0;
    size_t n = strlen(uri);
    if (n == 0 || n > 2048 || strchr(uri, '#'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)uri[i] <= 0x20 || uri[i] == 0x7f)
            return 0;
    struct uri_parts p;
    if (split_uri(uri, &p) < 0)
        return 0;
    if (strncmp(uri, "https://", 8) == 0)
        return 1;
    return redirect_uri_is_loopback(uri);
}

int redirect_uri_matches(const char *registered, const char *presented)
{
    if (!registered || !presented)
        return 0;
    if (strcmp(registered, presented) == 0)
        return 1;
    if (!redirect_uri_is_loopback(registered) || !redirect_uri_is_loopback(presented))
        return 0;
    struct uri_parts a, b;
    if (split_uri(registered, &a) < 0 || split_uri(presented, &b) < 0)
        return 0;
    /* same loopback host written the same way, any port, identical path and query */
    return a.host_len == b.host_len && strncasecmp(a.host, b.host, a.host_len) == 0 &&
           strcmp(a.rest, b.rest) == 0;
}

/* ---- addresses ---- */

static enum net_class classify4(uint32_t a)
{
    uint8_t b0 = (uint8_t)(a >> 24), b1 = (uint8_t)(a >> 16), b2 = (uint8_t)(a >> 8);
    if (b0 == 0)
        return NET_UNSPECIFIED; /* 0.0.0.0/8: "this network" */
    if (b0 == 127)
        return NET_LOOPBACK;
    if (b0 == 10 || (b0 == 172 && (b1 & 0xf0) == 16) || (b0 == 192 && b1 == 168) ||
        (b0 == 100 && (b1 & 0xc0) == 64))
        return NET_PRIVATE;
    if (b0 == 169 && b1 == 254)
        return NET_LINK_LOCAL;
    if ((b0 & 0xf0) == 224)
        return NET_MULTICAST;
    if ((b0 & 0xf0) == 240) /* 240/4 reserved, includes 255.255.255.255 */
        return NET_RESERVED;
    if ((b0 == 192 && b1 == 0 && (b2 == 0 || b2 == 2)) || (b0 == 198 && (b1 & 0xfe) == 18) ||
        (b0 == 198 && b1 == 51 && b2 == 100) || (b0 == 203 && b1 == 0 && b2 == 113) ||
        (b0 == 192 && b1 == 88 && b2 == 99))
        return NET_RESERVED;
    return NET_PUBLIC;
}

static enum net_class classify6(const struct in6_addr *a)
{
    const uint8_t *s = a->s6_addr;
    static const uint8_t zero[16];
    if (memcmp(s, zero, 16) == 0)
        return NET_UNSPECIFIED;
    if (memcmp(s, zero, 15) == 0 && s[15] == 1)
        return NET_LOOPBACK;
    uint32_t v4 = ((uint32_t)s[12] << 24) | ((uint32_t)s[13] << 16) | ((uint32_t)s[14] << 8) | s[15];
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(s, mapped, 12) == 0 || memcmp(s, nat64, 12) == 0 || memcmp(s, zero, 12) == 0)
        return classify4(v4); /* mapped, NAT64, IPv4-compatible (deprecated) */
    if (s[0] == 0xff)
        return NET_MULTICAST;
    if (s[0] == 0xfe && (s[1] & 0xc0) == 0x80)
        return NET_LINK_LOCAL;
    if ((s[0] & 0xfe) == 0xfc || (s[0] == 0xfe && (s[1] & 0xc0) == 0xc0))
        return NET_PRIVATE; /* fc00::/7 unique local, fec0::/10 site-local */
    if ((s[0] == 0x20 && s[1] == 0x01 && s[2] == 0x0d && s[3] == 0xb8) || /* 2001:db8::/32 */
        (s[0] == 0x20 && s[1] == 0x02) ||                                 /* 6to4: embeds v4 */
        (s[0] == 0x20 && s[1] == 0x01 && s[2] == 0 && s[3] == 0) ||       /* Teredo */
        (s[0] == 0x01 && s[1] == 0 && memcmp(s + 2, zero, 6) == 0) ||     /* 100::/64 discard */
        (s[0] & 0xe0) != 0x20)                                            /* not 2000::/3 */
        return NET_RESERVED;
    return NET_PUBLIC;
}

enum net_class net_classify(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return classify4(ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr));
    if (sa->sa_family == AF_INET6)
        return classify6(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
    return NET_RESERVED;
}

int net_classify_str(const char *ip, enum net_class *ret)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, ip, &a4) == 1) {
        *ret = classify4(ntohl(a4.s_addr));
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &a6) == 1) {
        *ret = classify6(&a6);
        return 0;
    }
    return ERR_INVAL;
}

const char *net_class_name(enum net_class c)
{
    static const char *const names[] = {"public", "loopback", "private", "link-local",
                                        "multicast", "unspecified", "reserved"};
    return (unsigned)c < sizeof(names) / sizeof(names[0]) ? names[c] : "reserved";
}

/* ---- tickets ---- */

#define TICKET_BUCKETS 4096

struct ticket {
    unsigned char hash[SHA256_LEN];
    int64_t exp;
    void *data; /* NULL once taken */
    struct ticket *next;
};

struct ticket_store {
    pthread_mutex_t mu;
    struct ticket *buckets[TICKET_BUCKETS];
    size_t n, max;
    void (*free_data)(void *);
};

int ticket_store_new(size_t max, void (*free_data)(void *), struct ticket_store **ret)
{
    struct ticket_store *s = calloc(1, sizeof(*s));
    if (!s)
        return ERR_NOMEM;
    pthread_mutex_init(&s->mu, NULL);
    s->max = max ? max : 1;
    s->free_data = free_data;
    *ret = s;
    return 0;
}

static void ticket_drop(struct ticket_store *s, struct ticket *t)
{
    if (t->data && s->free_data)
        s->free_data(t->data);
    free(t);
}

struct ticket_store *ticket_store_free(struct ticket_store *s)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < TICKET_BUCKETS; i++)
        for (struct ticket *t = s->buckets[i], *next; t; t = next) {
            next = t->next;
            ticket_drop(s, t);
        }
    pthread_mutex_destroy(&s->mu);
    free(s);
    return NULL;
}

static size_t bucket_of(const unsigned char h[SHA256_LEN])
{
    return (((size_t)h[0] << 8) | h[1]) % TICKET_BUCKETS;
}

static void sweep(struct ticket_store *s, int64_t now)
{
    for (size_t i = 0; i < TICKET_BUCKETS; i++) {
        struct ticket **pp = &s->buckets[i];
        while (*pp) {
            struct ticket *t = *pp;
            if (t->exp <= now) {
                *pp = t->next;
                ticket_drop(s, t);
                s->n--;
            } else {
                pp = &t->next;
            }
        }
    }
}

int ticket_put(struct ticket_store *s, void *data, int64_t exp, int64_t now, char ret_key[44])
{
    struct ticket *t = calloc(1, sizeof(*t));
    if (!t) {
        if (s->free_data)
            s->free_data(data);
        return ERR_NOMEM;
    }
    unsigned char raw[32];
    core_random(raw, sizeof(raw));
    b64url_encode(raw, sizeof(raw), ret_key);
    crypto_wipe(raw, sizeof(raw));
    crypto_sha256(ret_key, 43, t->hash);
    t->exp = exp;
    t->data = data;
    pthread_mutex_lock(&s->mu);
    if (s->n >= s->max)
        sweep(s, now);
    if (s->n >= s->max) {
        pthread_mutex_unlock(&s->mu);
        ticket_drop(s, t);
        crypto_wipe(ret_key, 44);
        return ERR_IO;
    }
    size_t b = bucket_of(t->hash);
    t->next = s->buckets[b];
    s->buckets[b] = t;
    s->n++;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int ticket_take(struct ticket_store *s, const char *key, int64_t now, void **ret_data)
{
    if (!key || strlen(key) != 43)
        return ERR_NOTFOUND;
    unsigned char h[SHA256_LEN];
    crypto_sha256(key, 43, h);
    int r = ERR_NOTFOUND;
    pthread_mutex_lock(&s->mu);
    for (struct ticket *t = s->buckets[bucket_of(h)]; t; t = t->next) {
        if (!crypto_memeq(t->hash, h, SHA256_LEN))
            continue;
        if (t->exp <= now) {
            r = ERR_NOTFOUND;
        } else if (!t->data) {
            r = ERR_EXISTS;
        } else {
            *ret_data = t->data;
            t->data = NULL;
            r = 0;
        }
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

size_t ticket_count(struct ticket_store *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- token buckets ---- */

#define RL_SLOTS 4096
#define RL_UNIT 60000 /* a token, in units of 1/60000: a rate per minute refills exactly */

struct rl_slot {
    char key[48];
    int64_t units;
    int64_t last_ms;
};

struct rate_limiter {
    pthread_mutex_t mu;
    int64_t rate, burst; /* per minute; tokens */
    struct rl_slot slots[RL_SLOTS];
};

int rate_limiter_new(unsigned rate_per_min, unsigned burst, struct rate_limiter **ret)
{
    struct rate_limiter *l = calloc(1, sizeof(*l));
    if (!l)
        return ERR_NOMEM;
    pthread_mutex_init(&l->mu, NULL);
    l->rate = rate_per_min;
    l->burst = burst ? burst : 1;
    *ret = l;
    return 0;
}

struct rate_limiter *rate_limiter_free(struct rate_limiter *l)
{
    if (l) {
        pthread_mutex_destroy(&l->mu);
        free(l);
    }
    return NULL;
}

int rate_limiter_take(struct rate_limiter *l, const char *key, int64_t now_ms)
{
    if (!key || !*key)
        key = "?";
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    pthread_mutex_lock(&l->mu);
    struct rl_slot *s = &l->slots[h % RL_SLOTS];
    int64_t full = l->burst * RL_UNIT;
    if (!s->key[0] || strncmp(s->key, key, sizeof(s->key) - 1) != 0) {
        snprintf(s->key, sizeof(s->key), "%s", key);
        s->units = full;
        s->last_ms = now_ms;
    }
    if (now_ms > s->last_ms) {
        int64_t dt = now_ms - s->last_ms;
        s->units = dt > full / (l->rate ? l->rate : 1) ? full : s->units + dt * l->rate;
        if (s->units > full)
            s->units = full;
        s->last_ms = now_ms;
    }
    int ok = s->units >= RL_UNIT;
    if (ok)
        s->units -= RL_UNIT;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

int cimd_client_id_is_url(const char *client_id)
{
    return client_id &&
           (strncmp(client_id, "https://", 8) == 0 || strncmp(client_id, "http://", 7) == 0);
}

int buf_put_urlenc(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char e[3] = {'%', hex[c >> 4], hex[c & 15]};
        int r = unreserved(c) ? buf_append(b, s, 1) : buf_append(b, e, 3);
        if (r < 0)
            return r;
    }
    return 0;
}
