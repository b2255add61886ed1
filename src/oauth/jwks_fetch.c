/* oauth/jwks_fetch.c — the JWK Set cache behind trusted issuers and client
 * jwks_uris. The workload is many token verifications against a handful of
 * URLs, so the common path is one mutex, a short list walk and a json_incref;
 * the network is touched only on a miss, when the set is older than JWKS_TTL,
 * or when a token names a kid the set lacks and the URL is out of its cooldown.
 *
 * Invariants, all under `c->lock`:
 *  - an entry exists only for a URL that passed check_url(), so the table
 *    never fills with URLs we would refuse to fetch;
 *  - at most one fetch per URL is in flight (`fetching`); everyone else who
 *    wants that URL waits on the entry's condition variable and then uses the
 *    outcome of that fetch, and no caller starts more than one fetch, so a
 *    stampede of N callers costs one request;
 *  - an entry that is being fetched or waited on is never evicted, so the
 *    fetcher may read `e->url` without the lock and waiters may keep `e`;
 *  - `last_attempt` is set when a fetch ends, successful or not, and no fetch
 *    starts within JWKS_COOLDOWN seconds of it, which bounds the requests a
 *    stream of tokens with made-up kids (or a dead jwks_uri) can cause to one
 *    per URL per JWKS_COOLDOWN;
 *  - a stale set (older than JWKS_TTL) is served when its refresh fails, for
 *    availability through an IdP outage, but never once older than
 *    JWKS_MAX_STALE: after that it is dropped and the fetch error is returned.
 *
 * Sets handed out are shared (a new reference to the cached json_t): callers
 * must treat them as read-only. Ages use CLOCK_MONOTONIC, so wall-clock jumps
 * neither expire nor immortalise a set. */
#include "oauth/jwks_fetch.h"
#include "core/buf.h"
#include "core/err.h"

#include <arpa/inet.h>
#include <assert.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifndef MCPAUTH_VERSION
#define MCPAUTH_VERSION "unknown"
#endif

/* A stale set is served on refresh failure for at most this long after it was fetched. */
#define JWKS_MAX_STALE ((int64_t)24 * 3600)
/* URLs come from configuration and client registration; this only bounds the table. */
#define JWKS_MAX_URL_LEN        2048
#define JWKS_CONNECT_TIMEOUT_MS 2000

struct entry {
    char *url;
    uint64_t hash;
    json_t *jwks;         /* NULL until a fetch succeeded (or after it went too stale) */
    int64_t fetched_at;   /* monotonic seconds; meaningful when jwks != NULL */
    int64_t last_attempt; /* when the last fetch ended; meaningful when attempted */
    bool attempted;
    int last_error; /* 0 or the ERR_* of the last fetch */
    char last_msg[sizeof(((struct err_detail *)0)->msg)];
    bool fetching;
    unsigned waiters;
    pthread_cond_t done;       /* signalled when `fetching` goes false */
    struct entry *prev, *next; /* LRU list: head is the most recently used */
};

struct jwks_cache {
    pthread_mutex_t lock;
    struct entry *head, *tail;
    size_t n;
    int64_t (*now)(void);
};

/* ---- test-only hook (not in the header: production code has no business with it) ---- */

/* Replaces the monotonic clock (seconds) of `c`; call before `c` is shared between
 * threads. Used by tests/unit/test_jwks_fetch.c to step through TTL and cooldown. */
void jwks_cache_set_clock_(struct jwks_cache *c, int64_t (*now)(void));

void jwks_cache_set_clock_(struct jwks_cache *c, int64_t (*now)(void))
{
    pthread_mutex_lock(&c->lock);
    c->now = now;
    pthread_mutex_unlock(&c->lock);
}

/* ---- helpers ---- */

static int64_t monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

/* The program initialises libcurl once at start; this is a guard for embedders and
 * tests. It is never undone: curl_global_cleanup belongs to whoever owns the process. */
static void init_curl(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104 and the name "localhost", which libcurl
 * resolves to loopback itself without asking DNS or /etc/hosts. `host` is as
 * CURLUPART_HOST gives it: IPv4 normalised to dotted quad, IPv6 in brackets. */
static bool host_is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0)
        return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    size_t n = strlen(host);
    if (n < 3 || host[0] != '[' || host[n - 1] != ']' || n - 2 >= INET6_ADDRSTRLEN)
        return false;
    char bare[INET6_ADDRSTRLEN];
    memcpy(bare, host + 1, n - 2);
    bare[n - 2] = '\0';
    struct in6_addr a6;
    if (inet_pton(AF_INET6, bare, &a6) != 1)
        return false;
    if (IN6_IS_ADDR_LOOPBACK(&a6))
        return true;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

/* Parses `url` and applies the scheme rule: https:// to any host, http:// to loopback
 * only. On success returns 0, the parsed URL in *ret_u (the very object libcurl will
 * fetch, so there is no second parser to disagree with), whether the host is loopback,
 * and in *ret_shown the URL without credentials or fragment for messages (caller frees
 * both: curl_url_cleanup, curl_free). Returns ERR_INVAL or ERR_NOMEM otherwise. */
static int check_url(const char *url, CURLU **ret_u, bool *ret_loopback, char **ret_shown,
                     struct err_detail *d)
{
    CURLU *u = NULL, *shown_u = NULL;
    char *scheme = NULL, *host = NULL, *shown = NULL;
    bool loopback = false;
    int r;

    if (strlen(url) > JWKS_MAX_URL_LEN) {
        r = err_set(d, ERR_INVAL, "JWKS URL is longer than %d bytes", JWKS_MAX_URL_LEN);
        goto out;
    }
    u = curl_url();
    if (!u) {
        r = ERR_NOMEM;
        goto out;
    }
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OUT_OF_MEMORY) {
        r = ERR_NOMEM;
        goto out;
    }
    if (uc != CURLUE_OK) {
        r = err_set(d, ERR_INVAL, "JWKS URL is not a valid absolute URL (%s)",
                    curl_url_strerror(uc));
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        r = err_set(d, ERR_INVAL, "JWKS URL has no scheme or host");
        goto out;
    }
    /* For messages only: no user:password (they may be credentials) and no fragment. */
    shown_u = curl_url_dup(u);
    if (!shown_u || curl_url_set(shown_u, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
        curl_url_set(shown_u, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK ||
        curl_url_set(shown_u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
        curl_url_get(shown_u, CURLUPART_URL, &shown, 0) != CURLUE_OK) {
        r = ERR_NOMEM;
        goto out;
    }

    loopback = host_is_loopback(host);
    /* libcurl lowercases the scheme. */
    if (strcmp(scheme, "https") == 0) {
        r = 0;
    } else if (strcmp(scheme, "http") == 0) {
        r = loopback ? 0
                     : err_set(d, ERR_INVAL,
                               "JWKS URL %s: http:// is only allowed to a loopback host; "
                               "use https://",
                               shown);
    } else {
        r = err_set(d, ERR_INVAL, "JWKS URL %s: scheme must be https", shown);
    }
    if (r < 0)
        goto out;

    if (ret_u) {
        *ret_u = u;
        u = NULL;
    }
    if (ret_loopback)
        *ret_loopback = loopback;
    if (ret_shown) {
        *ret_shown = shown;
        shown = NULL;
    }
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(shown);
    curl_url_cleanup(shown_u);
    curl_url_cleanup(u);
    return r;
}

/* ---- one fetch (no lock held) ---- */

struct sink {
    struct buf body;
    int err;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    (void)size; /* always 1 */
    int r = buf_append(&s->body, p, n);
    if (r < 0) {
        s->err = r;
        return 0; /* anything but n aborts the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

static int parse_jwks(const char *shown, const char *data, size_t len, json_t **ret,
                      struct err_detail *d)
{
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set(d, ERR_INVAL, "%s is not a JWK Set: %s (at byte %d)", shown, jerr.text,
                       jerr.position);
    const char *why = NULL;
    json_t *keys = json_is_object(root) ? json_object_get(root, "keys") : NULL;
    if (!json_is_object(root)) {
        why = "not a JSON object";
    } else if (!json_is_array(keys)) {
        why = "no \"keys\" array";
    } else {
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k)
        {
            if (!json_is_object(k)) {
                why = "a member of \"keys\" is not an object";
                break;
            }
        }
    }
    if (why) {
        json_decref(root);
        return err_set(d, ERR_INVAL, "%s is not a JWK Set: %s", shown, why);
    }
    *ret = root;
    return 0;
}

/* GETs `url` and returns 0 and an owned, validated JWK Set, or an ERR_* with `d` filled. */
static int fetch(const char *url, json_t **ret, struct err_detail *d)
{
    CURLU *u = NULL;
    CURL *h = NULL;
    struct curl_slist *headers = NULL;
    char *shown = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct sink sink = {.err = 0};
    bool loopback = false;
    int r;

    buf_init(&sink.body, (size_t)JWKS_MAX_BYTES);
    r = check_url(url, &u, &loopback, &shown, d);
    if (r < 0)
        goto out;
    h = curl_easy_init();
    if (!h) {
        r = ERR_NOMEM;
        goto out;
    }
    struct curl_slist *l = curl_slist_append(NULL, "Accept: application/jwk-set+json, "
                                                   "application/json");
    if (!l) {
        r = ERR_NOMEM;
        goto out;
    }
    headers = l;

    /* setopt results are not checked one by one: with these constants they fail only
     * for lack of memory, which perform then reports. The scheme rule does not depend
     * on PROTOCOLS_STR: check_url() has already enforced it on this very CURLU. */
    curl_easy_setopt(h, CURLOPT_CURLU, u);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)JWKS_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)JWKS_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)JWKS_MAX_BYTES);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mcpauth/" MCPAUTH_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    /* An http_proxy from the environment must not see, or answer for, a loopback URL;
     * https:// to elsewhere keeps honouring the environment's proxy settings. */
    if (loopback)
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");

    CURLcode cr = curl_easy_perform(h);
    if ((cr == CURLE_WRITE_ERROR && sink.err == ERR_TOOBIG) || cr == CURLE_FILESIZE_EXCEEDED) {
        r = err_set(d, ERR_TOOBIG, "JWKS %s: response is larger than %d bytes", shown,
                    JWKS_MAX_BYTES);
        goto out;
    }
    if ((cr == CURLE_WRITE_ERROR && sink.err == ERR_NOMEM) || cr == CURLE_OUT_OF_MEMORY) {
        r = ERR_NOMEM;
        goto out;
    }
    if (cr != CURLE_OK) {
        r = err_set(d, ERR_IO, "JWKS %s: %s", shown, errbuf[0] ? errbuf : curl_easy_strerror(cr));
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        r = err_set(d, ERR_IO, "JWKS %s: HTTP status %ld%s", shown, status,
                    status >= 300 && status < 400 ? " (redirects are not followed)" : "");
        goto out;
    }
    r = parse_jwks(shown, sink.body.data ? sink.body.data : "", sink.body.len, ret, d);
out:
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    curl_url_cleanup(u);
    curl_free(shown);
    buf_done(&sink.body);
    return r;
}

/* ---- the table ---- */

static bool has_kid(const json_t *jwks, const char *kid)
{
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(jwks, "keys"), i, k)
    {
        const char *s = json_string_value(json_object_get(k, "kid"));
        if (s && strcmp(s, kid) == 0)
            return true;
    }
    return false;
}

static void unlink_entry(struct jwks_cache *c, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(struct jwks_cache *c, struct entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static struct entry *entry_free(struct entry *e)
{
    if (!e)
        return NULL;
    assert(!e->fetching && e->waiters == 0);
    json_decref(e->jwks);
    pthread_cond_destroy(&e->done);
    free(e->url);
    free(e);
    return NULL;
}

/* At most JWKS_MAX_URLS entries, so a walk from the most recently used end is cheap
 * next to the signature check that follows; the hash spares most strcmp calls. */
static struct entry *find(const struct jwks_cache *c, const char *url, uint64_t hash)
{
    for (struct entry *e = c->head; e; e = e->next)
        if (e->hash == hash && strcmp(e->url, url) == 0)
            return e;
    return NULL;
}

/* Makes room for one more entry by dropping the least recently used idle one. When
 * every entry is busy (JWKS_MAX_URLS fetches in flight) the table briefly exceeds the
 * bound instead: the excess is bounded by the number of calling threads. */
static void evict(struct jwks_cache *c)
{
    if (c->n < JWKS_MAX_URLS)
        return;
    for (struct entry *e = c->tail; e; e = e->prev) {
        if (!e->fetching && e->waiters == 0) {
            unlink_entry(c, e);
            entry_free(e);
            c->n--;
            return;
        }
    }
}

static int entry_new(const char *url, uint64_t hash, struct entry **ret)
{
    struct entry *e = calloc(1, sizeof(*e));
    if (!e)
        return ERR_NOMEM;
    e->url = strdup(url);
    if (!e->url || pthread_cond_init(&e->done, NULL) != 0) {
        free(e->url);
        free(e);
        return ERR_NOMEM;
    }
    e->hash = hash;
    *ret = e;
    return 0;
}

enum action { SERVE, FAIL, FETCH };

/* What to do with `e` now. `may_fetch` is false once this caller has fetched or has
 * waited for someone else's fetch: it then takes what that fetch left. */
static enum action decide(struct entry *e, const char *kid, int64_t now, bool may_fetch)
{
    bool cooling = e->attempted && now - e->last_attempt < JWKS_COOLDOWN;
    bool can_fetch = may_fetch && !cooling;

    if (e->jwks && now - e->fetched_at > JWKS_MAX_STALE) {
        /* Too old to serve even as a fallback; callers hold their own references. */
        json_decref(e->jwks);
        e->jwks = NULL;
    }
    if (!e->jwks)
        return can_fetch ? FETCH : FAIL;
    if (now - e->fetched_at >= JWKS_TTL)
        return can_fetch ? FETCH : SERVE; /* stale: refresh, or serve it while we can't */
    if (!kid || has_kid(e->jwks, kid))
        return SERVE;
    /* Unknown kid: perhaps a key rotation, perhaps a made-up kid. Refresh at most once
     * per cooldown; otherwise the caller gets the set as is and fails to find the kid. */
    return can_fetch ? FETCH : SERVE;
}

/* Stores the outcome of a fetch. A failure keeps the current set, if any, so that a
 * stale set outlives an outage of its IdP (up to JWKS_MAX_STALE, see decide()). */
static void record(struct entry *e, int r, json_t *jwks, const struct err_detail *fd, int64_t now)
{
    e->attempted = true;
    e->last_attempt = now;
    e->last_error = r;
    if (r < 0) {
        if (fd->msg[0])
            memcpy(e->last_msg, fd->msg, sizeof(e->last_msg));
        else
            (void)snprintf(e->last_msg, sizeof(e->last_msg), "JWKS fetch failed: %s",
                           err_message(r));
        return;
    }
    e->last_msg[0] = '\0';
    json_decref(e->jwks);
    e->jwks = jwks;
    e->fetched_at = now;
}

/* ---- API ---- */

int jwks_cache_new(struct jwks_cache **ret)
{
    assert(ret);
    pthread_once(&curl_once, init_curl);
    if (curl_init_result != CURLE_OK)
        return ERR_INTERNAL;
    struct jwks_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return ERR_NOMEM;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return ERR_NOMEM;
    }
    c->now = monotonic_now;
    *ret = c;
    return 0;
}

struct jwks_cache *jwks_cache_free(struct jwks_cache *c)
{
    if (!c)
        return NULL;
    /* No call may be in progress: freeing under a running get is a programmer error. */
    for (struct entry *e = c->head, *next; e; e = next) {
        next = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
    return NULL;
}

int jwks_cache_get(struct jwks_cache *c, const char *url, const char *kid, json_t **ret,
                   struct err_detail *d)
{
    assert(c && url && ret);
    uint64_t hash = hash_str(url);
    int r;

    pthread_mutex_lock(&c->lock);
    struct entry *e = find(c, url, hash);
    if (!e) {
        /* Validated before it gets a slot; fetch() checks again on the URL it sends. */
        r = check_url(url, NULL, NULL, NULL, d);
        if (r == 0)
            r = entry_new(url, hash, &e);
        if (r < 0)
            goto out;
        evict(c);
        push_front(c, e);
        c->n++;
    } else if (e != c->head) {
        unlink_entry(c, e);
        push_front(c, e);
    }

    bool may_fetch = true;
    enum action act;
    for (;;) {
        if (e->fetching) {
            e->waiters++;
            while (e->fetching)
                pthread_cond_wait(&e->done, &c->lock);
            e->waiters--;
            may_fetch = false;
        }
        act = decide(e, kid, c->now(), may_fetch);
        if (act != FETCH)
            break;

        e->fetching = true;
        pthread_mutex_unlock(&c->lock);
        json_t *jwks = NULL;
        struct err_detail fd = {.msg = ""};
        int fr = fetch(e->url, &jwks, &fd); /* e->url is stable: e is not evicted while fetching */
        pthread_mutex_lock(&c->lock);
        record(e, fr, jwks, &fd, c->now());
        e->fetching = false;
        pthread_cond_broadcast(&e->done);
        may_fetch = false;
    }

    if (act == SERVE) {
        *ret = json_incref(e->jwks);
        r = 0;
    } else {
        /* Within the cooldown a failed fetch is answered from memory, not retried. */
        r = e->last_error < 0 ? e->last_error : ERR_INTERNAL;
        if (d)
            memcpy(d->msg, e->last_msg, sizeof(d->msg));
    }
out:
    pthread_mutex_unlock(&c->lock);
    return r;
}
