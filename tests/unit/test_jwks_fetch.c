/* tests/unit/test_jwks_fetch.c — oauth/jwks_fetch: caching, the kid-miss refresh and
 * its cooldown, TTL, serving a stale set through an outage (and not beyond 24 h), the
 * URL rule (https anywhere, http to loopback only), the limits (size, redirects,
 * timeout) and one fetch for a stampede of callers. A small HTTP/1.1 server runs in a
 * thread on 127.0.0.1:<ephemeral> and answers from a per-path table, counting hits; the
 * cache's clock is replaced by a fake one so TTL and cooldown are stepped, not waited.
 * One test waits for the real JWKS_TIMEOUT_MS (5 s). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "oauth/jwks_fetch.h"

/* Test-only hook defined in oauth/jwks_fetch.c (deliberately not in the header). */
void jwks_cache_set_clock_(struct jwks_cache *c, int64_t (*now)(void));

#define JWKS_MAX_STALE_TEST (24 * 3600) /* mirrors JWKS_MAX_STALE in the .c */

/* ---- fake clock ---- */

static _Atomic int64_t fake_now;

static int64_t fake_clock(void)
{
    return atomic_load(&fake_now);
}

static void advance(int64_t s)
{
    atomic_fetch_add(&fake_now, s);
}

/* ---- the canned HTTP server ---- */

enum mode { REPLY, HANG, NO_LENGTH };

struct route {
    const char *path; /* matched without the query string */
    int status;
    const char *headers; /* extra header lines, each ending in \r\n */
    const char *body;
    size_t body_len;
    enum mode mode;
    int delay_ms;
    int hits;
};

#define MAX_ROUTES 16
#define MAX_HUNG   8

struct server {
    int fd;
    unsigned port;
    pthread_t thread;
    atomic_bool stop;
    bool running;
    pthread_mutex_t lock; /* routes, hits, last_request */
    struct route routes[MAX_ROUTES];
    size_t nroutes;
    int hung[MAX_HUNG];
    size_t nhung;
    char last_request[4096];
};

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the client gave up (too big): fine */
        p += w;
        n -= (size_t)w;
    }
}

static void serve_one(struct server *s, int cfd)
{
    struct timeval tv = {.tv_sec = 2};
    setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[4096];
    size_t len = 0;
    while (len < sizeof(req) - 1) {
        ssize_t n = recv(cfd, req + len, sizeof(req) - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        req[len] = '\0';
        if ((unsigned char)req[0] == 0x16) /* a TLS ClientHello: we only speak HTTP */
            break;
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[len] = '\0';
    if (len && (unsigned char)req[0] == 0x16) {
        close(cfd);
        return;
    }

    char path[1024] = "";
    const char *sp = strchr(req, ' ');
    if (sp) {
        size_t i = 0;
        for (const char *p = sp + 1; *p && *p != ' ' && *p != '?' && i < sizeof(path) - 1; p++)
            path[i++] = *p;
        path[i] = '\0';
    }

    struct route r = {.status = 404, .body = "not found", .body_len = 9, .mode = REPLY};
    pthread_mutex_lock(&s->lock);
    (void)snprintf(s->last_request, sizeof(s->last_request), "%s", req);
    for (size_t i = 0; i < s->nroutes; i++) {
        if (strcmp(s->routes[i].path, path) == 0) {
            s->routes[i].hits++;
            r = s->routes[i];
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);

    if (r.delay_ms)
        sleep_ms(r.delay_ms);
    if (r.mode == HANG && s->nhung < MAX_HUNG) {
        s->hung[s->nhung++] = cfd; /* closed when the server stops */
        return;
    }
    char head[1024];
    int n;
    if (r.mode == NO_LENGTH)
        n = snprintf(
            head, sizeof(head),
            "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%sConnection: close\r\n\r\n",
            r.status, r.headers ? r.headers : "");
    else
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "%sConnection: close\r\n\r\n",
                     r.status, r.body_len, r.headers ? r.headers : "");
    send_all(cfd, head, (size_t)n);
    send_all(cfd, r.body, r.body_len);
    shutdown(cfd, SHUT_WR);
    close(cfd);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int cfd = accept(s->fd, NULL, NULL);
        if (cfd >= 0)
            serve_one(s, cfd);
    }
    return NULL;
}

static void server_start(struct server *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 64), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    atomic_store(&s->stop, false);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
    s->running = true;
}

/* After this, connections to the port are refused. */
static void server_stop(struct server *s)
{
    if (!s->running)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    for (size_t i = 0; i < s->nhung; i++)
        close(s->hung[i]);
    s->nhung = 0;
    close(s->fd);
    s->running = false;
}

static void route(struct server *s, const char *path, int status, const char *headers,
                  const char *body, size_t body_len, enum mode mode, int delay_ms)
{
    pthread_mutex_lock(&s->lock);
    struct route *r = NULL;
    for (size_t i = 0; i < s->nroutes; i++)
        if (strcmp(s->routes[i].path, path) == 0)
            r = &s->routes[i];
    if (!r) {
        if (s->nroutes >= MAX_ROUTES)
            abort();
        r = &s->routes[s->nroutes++];
        r->hits = 0;
    }
    r->path = path;
    r->status = status;
    r->headers = headers;
    r->body = body;
    r->body_len = body_len;
    r->mode = mode;
    r->delay_ms = delay_ms;
    pthread_mutex_unlock(&s->lock);
}

static void route_json(struct server *s, const char *path, const char *body)
{
    route(s, path, 200, NULL, body, strlen(body), REPLY, 0);
}

static int hits(struct server *s, const char *path)
{
    pthread_mutex_lock(&s->lock);
    int n = 0;
    for (size_t i = 0; i < s->nroutes; i++)
        if (strcmp(s->routes[i].path, path) == 0)
            n = s->routes[i].hits;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- fixture ---- */

#define SET_A "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"AAAA\"}]}"
#define SET_AB                                                                                     \
    "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"AAAA\"},"                                   \
    "{\"kty\":\"oct\",\"kid\":\"b\",\"k\":\"BBBB\"}]}"

struct fixture {
    struct server srv;
    struct jwks_cache *cache;
    char url[256];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    server_start(&f->srv);
    if (jwks_cache_new(&f->cache) != 0)
        return -1;
    atomic_store(&fake_now, 1000000);
    jwks_cache_set_clock_(f->cache, fake_clock);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    server_stop(&f->srv);
    f->cache = jwks_cache_free(f->cache);
    assert_null(f->cache);
    pthread_mutex_destroy(&f->srv.lock);
    free(f);
    return 0;
}

/* http://127.0.0.1:<port><path>, in a buffer of the fixture (one at a time). */
static const char *url(struct fixture *f, const char *path)
{
    (void)snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u%s", f->srv.port, path);
    return f->url;
}

static bool set_has_kid(const json_t *set, const char *kid)
{
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(set, "keys"), i,
                       k) if (strcmp(json_string_value(json_object_get(k, "kid")), kid) ==
                              0) return true;
    return false;
}

/* Expects jwks_cache_get to succeed and returns the set's kid count. */
static size_t get_ok(struct fixture *f, const char *path, const char *kid)
{
    json_t *set = NULL;
    struct err_detail d = {.msg = ""};
    int r = jwks_cache_get(f->cache, url(f, path), kid, &set, &d);
    if (r != 0)
        print_error("unexpected %d: %s\n", r, d.msg);
    assert_int_equal(r, 0);
    assert_non_null(set);
    size_t n = json_array_size(json_object_get(set, "keys"));
    json_decref(set);
    return n;
}

/* Expects jwks_cache_get to fail with `err`, *ret untouched, and `needle` in d->msg. */
static void get_fails(struct fixture *f, const char *full_url, const char *kid, int err,
                      const char *needle)
{
    json_t *sentinel = (json_t *)&sentinel;
    json_t *set = sentinel;
    struct err_detail d = {.msg = ""};
    int r = jwks_cache_get(f->cache, full_url, kid, &set, &d);
    if (r != err)
        print_error("%s: expected %d, got %d: %s\n", full_url, err, r, d.msg);
    assert_int_equal(r, err);
    assert_ptr_equal(set, sentinel);
    if (needle && !strstr(d.msg, needle))
        fail_msg("%s: \"%s\" not in \"%s\"", full_url, needle, d.msg);
}

/* ---- tests ---- */

static void test_lifecycle(void **state)
{
    (void)state;
    assert_null(jwks_cache_free(NULL));
    struct jwks_cache *c = NULL;
    assert_int_equal(jwks_cache_new(&c), 0);
    assert_non_null(c);
    assert_null(jwks_cache_free(c));
}

static void test_fetch_and_cache(void **state)
{
    struct fixture *f = *state;
    route_json(&f->srv, "/keys", SET_A);

    json_t *s1 = NULL, *s2 = NULL;
    assert_int_equal(jwks_cache_get(f->cache, url(f, "/keys"), NULL, &s1, NULL), 0);
    assert_int_equal(hits(&f->srv, "/keys"), 1);
    assert_true(set_has_kid(s1, "a"));

    /* the request: a GET with our User-Agent and Accept */
    pthread_mutex_lock(&f->srv.lock);
    assert_true(strncmp(f->srv.last_request, "GET /keys HTTP/1.1\r\n", 20) == 0);
    assert_non_null(strstr(f->srv.last_request, "User-Agent: mcpauth/"));
    assert_non_null(strstr(f->srv.last_request, "Accept: application/jwk-set+json"));
    pthread_mutex_unlock(&f->srv.lock);

    /* second get: from the cache, same object, no request */
    advance(JWKS_TTL - 1);
    assert_int_equal(jwks_cache_get(f->cache, url(f, "/keys"), NULL, &s2, NULL), 0);
    assert_ptr_equal(s1, s2);
    assert_int_equal(hits(&f->srv, "/keys"), 1);
    json_decref(s1);
    json_decref(s2);
}

static void test_kid_present_no_refetch(void **state)
{
    struct fixture *f = *state;
    route_json(&f->srv, "/keys", SET_A);
    assert_int_equal(get_ok(f, "/keys", "a"), 1);
    for (int i = 0; i < 5; i++) {
        advance(JWKS_COOLDOWN); /* even out of cooldown: the kid is there */
        assert_int_equal(get_ok(f, "/keys", "a"), 1);
    }
    assert_int_equal(hits(&f->srv, "/keys"), 1);
}

static void test_unknown_kid_refetch_and_cooldown(void **state)
{
    struct fixture *f = *state;
    route_json(&f->srv, "/keys", SET_A);
    assert_int_equal(get_ok(f, "/keys", "a"), 1);
    assert_int_equal(hits(&f->srv, "/keys"), 1);

    /* a fetch just happened, so an unknown kid right away is within the cooldown */
    assert_int_equal(get_ok(f, "/keys", "b"), 1);
    assert_int_equal(hits(&f->srv, "/keys"), 1);

    /* out of cooldown: one refetch; the IdP rotated in "b" */
    advance(JWKS_COOLDOWN);
    route_json(&f->srv, "/keys", SET_AB);
    assert_int_equal(get_ok(f, "/keys", "b"), 2);
    assert_int_equal(hits(&f->srv, "/keys"), 2);

    /* a second unknown kid within the cooldown: the set as is, no request */
    advance(JWKS_COOLDOWN - 1);
    assert_int_equal(get_ok(f, "/keys", "zzz"), 2);
    assert_int_equal(get_ok(f, "/keys", "yyy"), 2);
    assert_int_equal(hits(&f->srv, "/keys"), 2);

    /* after the cooldown (fake clock): refetch once more */
    advance(1);
    assert_int_equal(get_ok(f, "/keys", "zzz"), 2);
    assert_int_equal(hits(&f->srv, "/keys"), 3);
    assert_int_equal(get_ok(f, "/keys", "zzz"), 2);
    assert_int_equal(hits(&f->srv, "/keys"), 3);
}

static void test_ttl_expiry(void **state)
{
    struct fixture *f = *state;
    route_json(&f->srv, "/keys", SET_A);
    assert_int_equal(get_ok(f, "/keys", NULL), 1);
    advance(JWKS_TTL - 1);
    assert_int_equal(get_ok(f, "/keys", NULL), 1);
    assert_int_equal(hits(&f->srv, "/keys"), 1);

    route_json(&f->srv, "/keys", SET_AB);
    advance(1);
    assert_int_equal(get_ok(f, "/keys", NULL), 2);
    assert_int_equal(hits(&f->srv, "/keys"), 2);
    assert_int_equal(get_ok(f, "/keys", NULL), 2);
    assert_int_equal(hits(&f->srv, "/keys"), 2);
}

static void test_http_404(void **state)
{
    struct fixture *f = *state;
    route(&f->srv, "/missing", 404, NULL, "nope", 4, REPLY, 0);
    get_fails(f, url(f, "/missing"), NULL, ERR_IO, "404");
    assert_int_equal(hits(&f->srv, "/missing"), 1);

    /* failures are rate-limited too: the remembered error, no request */
    advance(JWKS_COOLDOWN - 1);
    get_fails(f, url(f, "/missing"), "a", ERR_IO, "404");
    assert_int_equal(hits(&f->srv, "/missing"), 1);

    /* after the cooldown it is tried again, and recovers when the server does */
    advance(1);
    route_json(&f->srv, "/missing", SET_A);
    assert_int_equal(get_ok(f, "/missing", NULL), 1);
    assert_int_equal(hits(&f->srv, "/missing"), 2);
}

static void test_not_a_jwk_set(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *path, *body;
    } cases[] = {
        {"/html", "<html>hello</html>"},
        {"/empty", ""},
        {"/nokeys", "{\"kty\":\"RSA\",\"n\":\"AQAB\"}"},
        {"/keysobj", "{\"keys\":{}}"},
        {"/keysstr", "{\"keys\":\"a\"}"},
        {"/array", "[{\"keys\":[]}]"},
        {"/members", "{\"keys\":[{\"kid\":\"a\"},7]}"},
        {"/dup", "{\"keys\":[],\"keys\":[]}"},
        {"/trailing", "{\"keys\":[]} {}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        route_json(&f->srv, cases[i].path, cases[i].body);
        get_fails(f, url(f, cases[i].path), NULL, ERR_INVAL, "is not a JWK Set");
        assert_int_equal(hits(&f->srv, cases[i].path), 1);
    }
    /* an empty set is a set */
    route_json(&f->srv, "/none", "{\"keys\":[]}");
    assert_int_equal(get_ok(f, "/none", "a"), 0);
}

static char *json_of_size(size_t n)
{
    /* {"keys":[],"p":"xxx…"} padded to exactly n bytes */
    static const char head[] = "{\"keys\":[],\"p\":\"";
    char *s = malloc(n + 1);
    assert_non_null(s);
    size_t h = sizeof(head) - 1;
    memcpy(s, head, h);
    memset(s + h, 'x', n - h - 2);
    memcpy(s + n - 2, "\"}", 2);
    s[n] = '\0';
    return s;
}

static void test_too_big(void **state)
{
    struct fixture *f = *state;
    char *big = json_of_size((size_t)JWKS_MAX_BYTES + 1);
    char *fits = json_of_size((size_t)JWKS_MAX_BYTES);

    /* announced by Content-Length: refused before the body is read */
    route(&f->srv, "/big", 200, NULL, big, strlen(big), REPLY, 0);
    get_fails(f, url(f, "/big"), NULL, ERR_TOOBIG, NULL);
    /* not announced: the write callback stops it */
    route(&f->srv, "/bignolen", 200, NULL, big, strlen(big), NO_LENGTH, 0);
    get_fails(f, url(f, "/bignolen"), NULL, ERR_TOOBIG, NULL);
    /* exactly at the limit is fine, either way */
    route(&f->srv, "/fits", 200, NULL, fits, strlen(fits), REPLY, 0);
    assert_int_equal(get_ok(f, "/fits", NULL), 0);
    route(&f->srv, "/fitsnolen", 200, NULL, fits, strlen(fits), NO_LENGTH, 0);
    assert_int_equal(get_ok(f, "/fitsnolen", NULL), 0);

    server_stop(&f->srv); /* the server thread reads the bodies */
    free(big);
    free(fits);
}

static void test_url_rule(void **state)
{
    struct fixture *f = *state;
    static const char *const refused[] = {
        "http://example.com/jwks",
        "http://10.0.0.1/jwks",
        "http://127.0.0.1.nip.io/jwks",
        "http://localhost./jwks",
        "http://[::2]/jwks",
        "http://[fe80::1%25lo]/jwks",
        "ftp://127.0.0.1/jwks",
        "file:///etc/passwd",
        "gopher://localhost/",
        "//example.com/jwks",
        "example.com/jwks",
        "not a url",
        "",
        "https://",
        "https://example.com:99999/",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        get_fails(f, refused[i], NULL, ERR_INVAL, NULL);
    get_fails(f, "http://example.com/jwks", NULL, ERR_INVAL, "loopback");

    /* too long to be worth a slot */
    char *longurl = malloc(5000);
    assert_non_null(longurl);
    int n = snprintf(longurl, 5000, "https://example.com/");
    memset(longurl + n, 'a', 4000);
    longurl[n + 4000] = '\0';
    get_fails(f, longurl, NULL, ERR_INVAL, NULL);
    free(longurl);

    /* refused without touching the network: nothing reached our server either */
    char u[128];
    (void)snprintf(u, sizeof(u), "ftp://127.0.0.1:%u/keys", f->srv.port);
    get_fails(f, u, NULL, ERR_INVAL, NULL);
    assert_int_equal(hits(&f->srv, "/keys"), 0);

    /* loopback spellings that are allowed over http */
    route_json(&f->srv, "/keys", SET_A);
    const char *const allowed[] = {"http://localhost:%u/keys", "HTTP://LocalHost:%u/keys",
                                   "http://127.1:%u/keys", "http://2130706433:%u/keys"};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        (void)snprintf(u, sizeof(u), allowed[i], f->srv.port);
        json_t *set = NULL;
        struct err_detail d = {.msg = ""};
        int r = jwks_cache_get(f->cache, u, NULL, &set, &d);
        if (r != 0)
            fail_msg("%s: %d %s", u, r, d.msg);
        json_decref(set);
    }
    assert_int_equal(hits(&f->srv, "/keys"), 4);

    /* ::1 passes the rule (our server is IPv4 only, so the fetch itself fails) */
    (void)snprintf(u, sizeof(u), "http://[::1]:%u/keys", f->srv.port);
    get_fails(f, u, NULL, ERR_IO, NULL);
    /* https:// to any host passes the rule; here TLS to a plain-HTTP server fails */
    (void)snprintf(u, sizeof(u), "https://127.0.0.1:%u/keys", f->srv.port);
    get_fails(f, u, NULL, ERR_IO, NULL);
}

static void test_credentials_not_in_messages(void **state)
{
    struct fixture *f = *state;
    char u[128];
    (void)snprintf(u, sizeof(u), "http://user:s3cr3t@127.0.0.1:%u/missing#frag", f->srv.port);
    json_t *set = NULL;
    struct err_detail d = {.msg = ""};
    assert_int_equal(jwks_cache_get(f->cache, u, NULL, &set, &d), ERR_IO);
    assert_non_null(strstr(d.msg, "404"));
    assert_non_null(strstr(d.msg, "/missing"));
    assert_null(strstr(d.msg, "s3cr3t"));
    assert_null(strstr(d.msg, "user"));

    (void)snprintf(u, sizeof(u), "http://user:s3cr3t@example.com/jwks");
    assert_int_equal(jwks_cache_get(f->cache, u, NULL, &set, &d), ERR_INVAL);
    assert_null(strstr(d.msg, "s3cr3t"));
}

static void test_redirect_not_followed(void **state)
{
    struct fixture *f = *state;
    route_json(&f->srv, "/keys", SET_A);
    route(&f->srv, "/moved", 302, "Location: /keys\r\n", "", 0, REPLY, 0);
    get_fails(f, url(f, "/moved"), NULL, ERR_IO, "302");
    assert_int_equal(hits(&f->srv, "/moved"), 1);
    assert_int_equal(hits(&f->srv, "/keys"), 0);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_timeout(void **state)
{
    struct fixture *f = *state;
    route(&f->srv, "/hang", 200, NULL, "", 0, HANG, 0);
    double t0 = mono_s();
    get_fails(f, url(f, "/hang"), NULL, ERR_IO, "timed out");
    double dt = mono_s() - t0;
    assert_int_equal(hits(&f->srv, "/hang"), 1);
    assert_true(dt >= JWKS_TIMEOUT_MS / 1000.0 - 0.5);
    assert_true(dt < JWKS_TIMEOUT_MS / 1000.0 + 2.0);
}

static void test_stale_served_when_server_down(void **state)
{
    struct fixture *f = *state;
    route_json(&f->srv, "/keys", SET_A);
    json_t *fresh = NULL, *stale = NULL;
    assert_int_equal(jwks_cache_get(f->cache, url(f, "/keys"), NULL, &fresh, NULL), 0);

    server_stop(&f->srv);
    advance(JWKS_TTL + 1);
    /* the refresh fails (connection refused): the stale set is served */
    assert_int_equal(jwks_cache_get(f->cache, url(f, "/keys"), "a", &stale, NULL), 0);
    assert_ptr_equal(fresh, stale);
    json_decref(stale);

    /* ... for up to 24 hours after it was fetched, then no more */
    advance(JWKS_MAX_STALE_TEST - JWKS_TTL - 1);
    assert_int_equal(jwks_cache_get(f->cache, url(f, "/keys"), NULL, &stale, NULL), 0);
    json_decref(stale);
    advance(1);
    get_fails(f, url(f, "/keys"), NULL, ERR_IO, "/keys");
    /* the caller's reference outlives the cache's */
    assert_true(set_has_kid(fresh, "a"));
    json_decref(fresh);
}

static void test_stale_refresh_rate_limited(void **state)
{
    struct fixture *f = *state;
    route_json(&f->srv, "/keys", SET_A);
    assert_int_equal(get_ok(f, "/keys", NULL), 1);

    advance(JWKS_TTL);
    route(&f->srv, "/keys", 503, NULL, "down", 4, REPLY, 0);
    assert_int_equal(get_ok(f, "/keys", NULL), 1); /* stale, after one failed refresh */
    assert_int_equal(hits(&f->srv, "/keys"), 2);
    assert_int_equal(get_ok(f, "/keys", "new"), 1); /* within cooldown: no request */
    assert_int_equal(hits(&f->srv, "/keys"), 2);

    advance(JWKS_COOLDOWN);
    assert_int_equal(get_ok(f, "/keys", NULL), 1);
    assert_int_equal(hits(&f->srv, "/keys"), 3);

    /* the IdP is back: the next attempt after the cooldown replaces the set */
    route_json(&f->srv, "/keys", SET_AB);
    advance(JWKS_COOLDOWN);
    assert_int_equal(get_ok(f, "/keys", NULL), 2);
    assert_int_equal(hits(&f->srv, "/keys"), 4);
}

static void test_unknown_kid_refetch_failure_serves_cached(void **state)
{
    struct fixture *f = *state;
    route_json(&f->srv, "/keys", SET_A);
    assert_int_equal(get_ok(f, "/keys", "a"), 1);
    advance(JWKS_COOLDOWN);
    route(&f->srv, "/keys", 500, NULL, "oops", 4, REPLY, 0);
    assert_int_equal(get_ok(f, "/keys", "b"), 1); /* tried, failed, the set we have */
    assert_int_equal(hits(&f->srv, "/keys"), 2);
    assert_int_equal(get_ok(f, "/keys", "a"), 1);
    assert_int_equal(hits(&f->srv, "/keys"), 2);
}

static void test_lru_eviction(void **state)
{
    struct fixture *f = *state;
    route_json(&f->srv, "/keys", SET_A);
    char path[64];
    for (int i = 0; i < JWKS_MAX_URLS; i++) {
        (void)snprintf(path, sizeof(path), "/keys?n=%d", i);
        get_ok(f, path, NULL);
    }
    assert_int_equal(hits(&f->srv, "/keys"), JWKS_MAX_URLS);
    get_ok(f, "/keys?n=0", NULL); /* n=0 is now the most recent; n=1 the least */
    assert_int_equal(hits(&f->srv, "/keys"), JWKS_MAX_URLS);

    get_ok(f, "/keys?n=new", NULL); /* evicts n=1 */
    assert_int_equal(hits(&f->srv, "/keys"), JWKS_MAX_URLS + 1);
    get_ok(f, "/keys?n=0", NULL);
    assert_int_equal(hits(&f->srv, "/keys"), JWKS_MAX_URLS + 1);
    get_ok(f, "/keys?n=1", NULL); /* was evicted: fetched again (evicting n=2) */
    assert_int_equal(hits(&f->srv, "/keys"), JWKS_MAX_URLS + 2);
    get_ok(f, "/keys?n=3", NULL);
    assert_int_equal(hits(&f->srv, "/keys"), JWKS_MAX_URLS + 2);
}

#define NTHREADS 8

struct racer {
    struct jwks_cache *cache;
    const char *url;
    const char *kid;
    pthread_barrier_t *go;
    int r;
    json_t *set;
};

static void *race(void *arg)
{
    struct racer *x = arg;
    pthread_barrier_wait(x->go);
    x->r = jwks_cache_get(x->cache, x->url, x->kid, &x->set, NULL);
    return NULL;
}

/* NTHREADS callers at once for one URL; all must get the very same set. */
static void stampede(struct fixture *f, const char *path, const char *kid)
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NTHREADS);
    struct racer x[NTHREADS];
    pthread_t t[NTHREADS];
    char u[128];
    (void)snprintf(u, sizeof(u), "http://127.0.0.1:%u%s", f->srv.port, path);
    for (int i = 0; i < NTHREADS; i++) {
        x[i] = (struct racer){.cache = f->cache, .url = u, .kid = kid, .go = &go};
        assert_int_equal(pthread_create(&t[i], NULL, race, &x[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(x[i].r, 0);
        assert_ptr_equal(x[i].set, x[0].set);
    }
    for (int i = 0; i < NTHREADS; i++)
        json_decref(x[i].set);
}

static void test_concurrent_cold_url_one_fetch(void **state)
{
    struct fixture *f = *state;
    /* slow enough that every thread arrives while the one fetch is in flight */
    route(&f->srv, "/keys", 200, NULL, SET_A, strlen(SET_A), REPLY, 300);
    stampede(f, "/keys", NULL);
    assert_int_equal(hits(&f->srv, "/keys"), 1);
}

static void test_concurrent_unknown_kid_one_fetch(void **state)
{
    struct fixture *f = *state;
    route(&f->srv, "/keys", 200, NULL, SET_A, strlen(SET_A), REPLY, 300);
    assert_int_equal(get_ok(f, "/keys", NULL), 1);
    advance(JWKS_COOLDOWN);
    stampede(f, "/keys", "made-up");
    assert_int_equal(hits(&f->srv, "/keys"), 2);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test_setup_teardown(test_fetch_and_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kid_present_no_refetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_kid_refetch_and_cooldown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_404, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_jwk_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credentials_not_in_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_served_when_server_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_refresh_rate_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_kid_refetch_failure_serves_cached, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lru_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_cold_url_one_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_unknown_kid_one_fetch, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
