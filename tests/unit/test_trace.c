/* tests/unit/test_trace.c — trace/: the entry built from an audit event for
 * each row of spec/policy.md that shapes it (granted with denied scopes, no
 * active access policy, unknown system, unknown client, malformed request,
 * other event types ignored); the hub through real sockets (socketpairs
 * handed to trace_attach, read as a client would): the head first, then what
 * is published after attaching and nothing before, the exact SSE frame,
 * filters (severity minimum, client_ip, client, system); an entry rendered
 * once for all subscribers, on the sender and only once a subscriber needs
 * it (publishing keeps a reference, the event is never modified, the
 * sender's reference is dropped after rendering); a reader whose socket is
 * full loses what falls out of the ring, counted by the sender before it
 * reads, then gets one `dropped` marker with the exact count and the newest
 * entries, twice; keep-alives; a peer that hangs up is released on the
 * sender's thread, once, its socket left open; close releases every stream
 * and later attaches at once; publishing with no subscriber keeps nothing;
 * and 4 publishers x 10k entries with 2 readers add up (read + dropped ==
 * published for each reader). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/timeutil.h"
#include "trace/trace.h"

#define RESOURCE "https://mcp.github.example/mcp"

/* ---- events, as oauth/token.c builds them (absent fields are null) ---- */

struct evspec {
    const char *type, *id, *outcome, *severity, *reason, *detail;
    const char *client, *system, *audience, *policy;
    const char *target, *ip;
    json_t *scopes; /* stolen */
};

static json_t *event(const struct evspec *s)
{
    json_t *req = json_pack("{s:s, s:s, s:s?, s:s?, s:s}", "id",
                            "019a0000-0000-7000-8000-000000000001", "endpoint", "token",
                            "target_url", s->target, "client_ip", s->ip, "user_agent", "test");
    json_t *ev =
        json_pack("{s:s, s:n, s:s, s:s, s:s, s:s, s:s?, s:s?, s:n, s:n, s:s?, s:s?, "
                  "s:s?, s:s?, s:o, s:n, s:o}",
                  "id", s->id ? s->id : "019a0000-0000-7000-8000-0000000000ee", "seq", "time",
                  "2026-11-22T09:14:03.512384Z", "type", s->type ? s->type : "token.request",
                  "outcome", s->outcome, "severity", s->severity, "reason", s->reason,
                  "status_detail", s->detail, "user", "groups", "client", s->client, "system",
                  s->system, "audience", s->audience, "access_policy", s->policy, "scopes",
                  s->scopes ? s->scopes : json_null(), "token", "request", req);
    assert_non_null(ev);
    return ev;
}

static const char *sget(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* every field of spec/audit-event.md "Trace entry" is there, null or not */
static void assert_entry_shape(const json_t *e)
{
    static const char *const keys[] = {"time",          "client_ip",       "endpoint",
                                       "access_policy", "redirect_uri",    "client_workload",
                                       "resource",      "server_workload", "severity",
                                       "message",       "event_id",        NULL};
    assert_non_null(e);
    for (const char *const *k = keys; *k; k++)
        if (!json_object_get(e, *k))
            fail_msg("trace entry lacks \"%s\"", *k);
    assert_int_equal(json_object_size(e), 11);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle))
        fail_msg("\"%s\" does not contain \"%s\"", hay ? hay : "(null)", needle);
}

/* ---- trace_entry_from_event ---- */

static void entry_granted(void **state)
{
    (void)state;
    json_t *scopes = json_pack("[{s:s, s:s}, {s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:s, s:s}]", "name",
                               "a", "outcome", "granted", "name", "b", "outcome", "granted", "name",
                               "c", "outcome", "denied", "reason", "scope_not_enabled", "name", "d",
                               "outcome", "denied", "reason", "no_grant");
    json_t *ev = event(&(struct evspec){.id = "019a4f6e-2b1c-7d3e-8f40-5a6b7c8d9e0f",
                                        .outcome = "granted",
                                        .severity = "info",
                                        .detail = "Scope not enabled: c",
                                        .client = "desktop-agent",
                                        .system = "github",
                                        .audience = "https://auth.github.example/",
                                        .policy = "desktop-github",
                                        .target = RESOURCE,
                                        .ip = "127.0.0.1",
                                        .scopes = scopes});
    json_t *e = trace_entry_from_event(ev, &(struct trace_match){.client_matched = 1});
    assert_entry_shape(e);
    assert_string_equal(sget(e, "severity"), "info");
    json_t *ap = json_object_get(e, "access_policy");
    assert_true(json_is_object(ap));
    assert_string_equal(sget(ap, "id"), "desktop-github");
    assert_true(json_is_true(json_object_get(ap, "active")));
    assert_string_equal(sget(e, "message"),
                        "granted a b; denied c (Scope not enabled), d (No grant for the scope)");
    assert_string_equal(sget(e, "client_workload"), "desktop-agent");
    assert_string_equal(sget(e, "server_workload"), "github");
    assert_string_equal(sget(e, "resource"), RESOURCE);
    assert_string_equal(sget(e, "client_ip"), "127.0.0.1");
    assert_string_equal(sget(e, "endpoint"), "token");
    assert_string_equal(sget(e, "time"), "2026-11-22T09:14:03.512384Z");
    assert_string_equal(sget(e, "event_id"), "019a4f6e-2b1c-7d3e-8f40-5a6b7c8d9e0f");
    assert_true(json_is_null(json_object_get(e, "redirect_uri")));
    json_decref(e);
    json_decref(ev);

    /* all granted: no "denied" part; no resource: the audience stands for it */
    scopes = json_pack("[{s:s, s:s}, {s:s, s:s}]", "name", "a", "outcome", "granted", "name", "b",
                       "outcome", "granted");
    ev = event(&(struct evspec){.outcome = "granted",
                                .severity = "info",
                                .client = "build-bot",
                                .system = "docs",
                                .audience = "http://127.0.0.1:1",
                                .policy = "bot-docs",
                                .ip = "10.0.0.1",
                                .scopes = scopes});
    e = trace_entry_from_event(ev, &(struct trace_match){.client_matched = 1});
    assert_entry_shape(e);
    assert_string_equal(sget(e, "message"), "granted a b");
    assert_string_equal(sget(e, "resource"), "http://127.0.0.1:1");
    json_decref(e);
    json_decref(ev);
}

static void entry_no_access_policy(void **state)
{
    (void)state;
    json_t *ev = event(&(struct evspec){.outcome = "denied",
                                        .severity = "warning",
                                        .reason = "no_access_policy",
                                        .detail = "No active access policy",
                                        .client = "desktop-agent",
                                        .system = "github",
                                        .target = RESOURCE,
                                        .ip = "127.0.0.1"});
    json_t *e = trace_entry_from_event(ev, &(struct trace_match){.client_matched = 1});
    assert_entry_shape(e);
    assert_string_equal(sget(e, "severity"), "warning");
    assert_true(json_is_null(json_object_get(e, "access_policy")));
    assert_string_equal(sget(e, "client_workload"), "desktop-agent");
    assert_string_equal(sget(e, "server_workload"), "github");
    assert_contains(sget(e, "message"), "inactive or does not exist");
    json_decref(e);
    json_decref(ev);
}

static void entry_unknown_system(void **state)
{
    (void)state;
    json_t *ev = event(&(struct evspec){.outcome = "denied",
                                        .severity = "error",
                                        .reason = "unknown_system",
                                        .detail = "No server workload matched",
                                        .client = "build-bot",
                                        .target = "https://nowhere.example/mcp",
                                        .ip = "127.0.0.1"});
    json_t *e = trace_entry_from_event(ev, &(struct trace_match){.client_matched = 1});
    assert_entry_shape(e);
    assert_string_equal(sget(e, "severity"), "error");
    assert_true(json_is_null(json_object_get(e, "server_workload")));
    assert_true(json_is_null(json_object_get(e, "access_policy")));
    assert_string_equal(sget(e, "client_workload"), "build-bot");
    assert_string_equal(sget(e, "resource"), "https://nowhere.example/mcp");
    assert_contains(sget(e, "message"), "No server workload matched");
    assert_contains(sget(e, "message"), "https://nowhere.example/mcp");
    json_decref(e);
    json_decref(ev);

    /* an audience instead of a resource: the message names the audience */
    ev = event(&(struct evspec){.outcome = "denied",
                                .severity = "error",
                                .reason = "unknown_system",
                                .client = "build-bot",
                                .audience = "https://aud.nowhere.example/"});
    e = trace_entry_from_event(ev, &(struct trace_match){.client_matched = 1});
    assert_entry_shape(e);
    assert_contains(sget(e, "message"), "audience https://aud.nowhere.example/");
    assert_string_equal(sget(e, "resource"), "https://aud.nowhere.example/");
    json_decref(e);
    json_decref(ev);
}

static void entry_unknown_client(void **state)
{
    (void)state;
    json_t *ev = event(&(struct evspec){.outcome = "denied",
                                        .severity = "error",
                                        .reason = "invalid_client",
                                        .detail = "Client authentication failed: unknown client",
                                        .client = "ghost-client",
                                        .ip = "127.0.0.1"});
    json_t *e = trace_entry_from_event(ev, &(struct trace_match){.client_matched = 0});
    assert_entry_shape(e);
    assert_string_equal(sget(e, "severity"), "error");
    assert_true(json_is_null(json_object_get(e, "client_workload")));
    assert_true(json_is_null(json_object_get(e, "access_policy")));
    assert_contains(sget(e, "message"), "No client workload matched");
    assert_contains(sget(e, "message"), "ghost-client");
    json_decref(e);

    /* no match information at all counts as "not matched" */
    e = trace_entry_from_event(ev, NULL);
    assert_entry_shape(e);
    assert_true(json_is_null(json_object_get(e, "client_workload")));
    json_decref(e);
    json_decref(ev);

    /* a known client with a wrong secret: the workload that was tried is shown */
    ev = event(&(struct evspec){.outcome = "denied",
                                .severity = "error",
                                .reason = "invalid_client",
                                .detail = "Client authentication failed",
                                .client = "build-bot"});
    e = trace_entry_from_event(ev, &(struct trace_match){.client_matched = 1});
    assert_entry_shape(e);
    assert_string_equal(sget(e, "severity"), "error");
    assert_string_equal(sget(e, "client_workload"), "build-bot");
    json_decref(e);
    json_decref(ev);
}

static void entry_invalid_request_no_client(void **state)
{
    (void)state;
    json_t *ev = event(&(struct evspec){.outcome = "denied",
                                        .severity = "error",
                                        .reason = "invalid_request",
                                        .detail = "Malformed request: grant_type is missing",
                                        .ip = "192.0.2.7"});
    json_t *e = trace_entry_from_event(ev, &(struct trace_match){.client_matched = 0});
    assert_entry_shape(e);
    assert_string_equal(sget(e, "severity"), "error");
    assert_true(json_is_null(json_object_get(e, "client_workload")));
    assert_true(json_is_null(json_object_get(e, "server_workload")));
    assert_true(json_is_null(json_object_get(e, "access_policy")));
    assert_true(json_is_null(json_object_get(e, "resource")));
    assert_string_equal(sget(e, "client_ip"), "192.0.2.7");
    assert_contains(sget(e, "message"), "No client workload matched");
    assert_contains(sget(e, "message"), "Malformed request");
    json_decref(e);
    json_decref(ev);
}

static void entry_other_types_ignored(void **state)
{
    (void)state;
    static const char *const types[] = {"admin.change", "key.rotate", "gateway.call", "", NULL};
    for (const char *const *t = types; *t; t++) {
        json_t *ev = event(&(struct evspec){.type = *t, .outcome = "success", .severity = "info"});
        assert_null(trace_entry_from_event(ev, NULL));
        json_decref(ev);
    }
    json_t *ev = json_pack("{s:s}", "outcome", "granted"); /* no type at all */
    assert_null(trace_entry_from_event(ev, NULL));
    json_decref(ev);

    /* the other two authorization request types are traced */
    ev = event(&(struct evspec){
        .type = "client.register", .outcome = "success", .severity = "info", .client = "dyn-1"});
    json_t *e = trace_entry_from_event(ev, NULL);
    assert_entry_shape(e);
    assert_string_equal(sget(e, "client_workload"), "dyn-1");
    assert_string_equal(sget(e, "message"), "registered client dyn-1");
    json_decref(e);
    json_decref(ev);
    /* a refused registration has no client: "registration refused: why" */
    ev = event(&(struct evspec){.type = "client.register",
                                .outcome = "failure",
                                .severity = "error",
                                .reason = "invalid_request",
                                .detail = "the client metadata is larger than 16 KiB"});
    e = trace_entry_from_event(ev, NULL);
    assert_entry_shape(e);
    assert_true(json_is_null(json_object_get(e, "client_workload")));
    assert_string_equal(sget(e, "severity"), "error");
    assert_string_equal(sget(e, "message"),
                        "registration refused: the client metadata is larger than 16 KiB");
    json_decref(e);
    json_decref(ev);
    ev = event(&(struct evspec){.type = "authorize.request",
                                .outcome = "granted",
                                .severity = "info",
                                .client = "desktop-agent",
                                .system = "github",
                                .policy = "desktop-github"});
    e = trace_entry_from_event(ev, &(struct trace_match){.client_matched = 1});
    assert_entry_shape(e);
    assert_string_equal(sget(e, "message"), "granted"); /* no phase: the plain outcome */
    json_decref(e);
    /* the authorization request before sign-in: nothing granted yet, the sign-in named */
    json_t *req = json_object_get(ev, "request");
    json_object_set_new(req, "endpoint", json_string("authorize"));
    json_object_set_new(req, "phase", json_string("request"));
    json_object_set_new(req, "sign_in", json_string("development"));
    e = trace_entry_from_event(ev, &(struct trace_match){.client_matched = 1});
    assert_entry_shape(e);
    assert_string_equal(sget(e, "endpoint"), "authorize");
    assert_string_equal(sget(e, "severity"), "info");
    assert_string_equal(sget(e, "message"), "sent to sign-in (development)");
    json_decref(e);
    json_decref(ev);
}

/* ---- hub ---- */

/* The opening bytes the caller hands to trace_attach (an HTTP head in the server). */
#define HEAD   ": test stream\n\n"
#define T_WAIT 20000 /* ms: the sender runs at nice 19, so it may wait behind a busy machine */

struct rec {
    char kind; /* 't' trace entry, 'd' dropped, ':' comment */
    char id[48];
    unsigned long long count;
};

/* A subscriber as the tests see it: our end of a socketpair, the frames read so far, and
 * the hub's release calls. */
struct client {
    int fd, peer;  /* ours, the hub's (never closed by the hub) */
    struct buf in; /* bytes read and not yet a whole frame */
    struct rec *recs;
    size_t n, cap, entries, comments;
    unsigned long long dropped;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int releases;
    pthread_t released_on;
};

static void on_release(void *arg)
{
    struct client *c = arg;
    pthread_mutex_lock(&c->mu);
    c->releases++;
    c->released_on = pthread_self();
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void sleep_ms(int ms)
{
    struct timespec z = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&z, NULL);
}

static void add_rec(struct client *c, struct rec r)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->recs = realloc(c->recs, c->cap * sizeof(*c->recs));
        assert_non_null(c->recs);
    }
    c->recs[c->n++] = r;
}

/* Parses the whole frames in c->in into records, keeping a partial one. */
static void parse(struct client *c)
{
    char *p = c->in.data, *end = p + c->in.len;
    for (;;) {
        char *f_end = p < end ? strstr(p, "\n\n") : NULL;
        if (!f_end)
            break;
        struct rec r = {0};
        if (strncmp(p, "event: trace\ndata: ", 19) == 0) {
            const char *j = p + 19;
            json_t *e = json_loadb(j, (size_t)(f_end - j), 0, NULL);
            if (!e)
                fail_msg("frame data is not JSON: %.*s", (int)(f_end - j), j);
            r.kind = 't';
            snprintf(r.id, sizeof(r.id), "%s", sget(e, "event_id"));
            json_decref(e);
            c->entries++;
        } else if (strncmp(p, "event: dropped\ndata: ", 21) == 0) {
            if (sscanf(p + 21, "{\"count\": %llu}", &r.count) != 1)
                fail_msg("bad dropped frame: %.*s", (int)(f_end - p), p);
            assert_true(r.count > 0);
            r.kind = 'd';
            c->dropped += r.count;
        } else if (*p == ':') {
            r.kind = ':';
            snprintf(r.id, sizeof(r.id), "%.*s", (int)(f_end - p), p);
            c->comments++;
        } else {
            fail_msg("unexpected frame: %.*s", (int)(f_end - p), p);
        }
        add_rec(c, r);
        p = f_end + 2;
    }
    size_t rest = (size_t)(end - p);
    memmove(c->in.data, p, rest);
    c->in.len = rest;
    c->in.data[rest] = '\0';
}

/* Reads what arrives within ms (returns early once done(c) holds). Returns 0 at EOF. */
static int pump(struct client *c, int ms, bool (*done)(const struct client *c, size_t want),
                size_t want)
{
    int64_t until = time_mono_ms() + ms;
    char b[65536];
    while (!(done && done(c, want))) {
        int64_t left = until - time_mono_ms();
        if (left <= 0)
            return 1;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        ssize_t n = read(c->fd, b, sizeof(b));
        if (n == 0)
            return 0;
        assert_true(n > 0);
        assert_int_equal(buf_append(&c->in, b, (size_t)n), 0);
        parse(c);
    }
    return 1;
}

static bool has_entries(const struct client *c, size_t want)
{
    return c->entries >= want;
}

static bool has_recs(const struct client *c, size_t want)
{
    return c->n >= want;
}

static void wait_entries(struct client *c, size_t want)
{
    pump(c, T_WAIT, has_entries, want);
    if (c->entries < want)
        fail_msg("%zu entries, want %zu", c->entries, want);
}

/* Nothing but keep-alives arrives within ms. */
static void quiet(struct client *c, int ms)
{
    size_t n = c->n;
    pump(c, ms, NULL, 0);
    for (size_t i = n; i < c->n; i++)
        if (c->recs[i].kind != ':')
            fail_msg("unexpected frame %c %s", c->recs[i].kind, c->recs[i].id);
}

/* snd: the hub end's SO_SNDBUF (0: the default), to make a stalled reader quick. */
static struct client *attach(struct trace_hub *h, const struct trace_filter *f, int snd)
{
    struct client *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    c->fd = sv[0];
    c->peer = sv[1];
    if (snd)
        assert_int_equal(setsockopt(c->peer, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd)), 0);
    buf_init(&c->in, 0);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    assert_int_equal(trace_attach(h, c->peer, f, HEAD, strlen(HEAD), on_release, c), 0);
    /* the head comes first, whole */
    pump(c, T_WAIT, has_recs, 1);
    assert_true(c->n >= 1);
    assert_int_equal(c->recs[0].kind, ':');
    assert_string_equal(c->recs[0].id, ": test stream");
    return c;
}

/* Waits (at most ms) until the hub released c; returns the count of releases. */
static int wait_released(struct client *c, int ms)
{
    int64_t until = time_mono_ms() + ms;
    pthread_mutex_lock(&c->mu);
    while (!c->releases && time_mono_ms() < until) {
        pthread_mutex_unlock(&c->mu);
        sleep_ms(5);
        pthread_mutex_lock(&c->mu);
    }
    int n = c->releases;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static void client_free(struct client *c)
{
    if (!c)
        return;
    close(c->fd);
    close(c->peer); /* ours to close: the hub gave it back */
    buf_done(&c->in);
    free(c->recs);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* Hangs up and waits until the hub let go of the socket. */
static void hang_up(struct client *c)
{
    shutdown(c->fd, SHUT_RDWR);
    assert_int_equal(wait_released(c, T_WAIT), 1);
    client_free(c);
}

static struct trace_stats stats(struct trace_hub *h)
{
    struct trace_stats st;
    trace_hub_stats(h, &st);
    return st;
}

/* Waits until stats(h).field is want (T_WAIT at most). */
#define WAIT_STAT(h, field, want)                                                                  \
    do {                                                                                           \
        int64_t until_ = time_mono_ms() + T_WAIT;                                                  \
        while (stats(h).field != (want) && time_mono_ms() < until_)                                \
            sleep_ms(2);                                                                           \
        assert_int_equal(stats(h).field, (want));                                                  \
    } while (0)

/* A granted (info), no-policy (warning) or unknown-system (error) token request. */
static json_t *request_event(enum trace_severity sev, const char *id, const char *client,
                             const char *system, const char *ip)
{
    struct evspec s = {.id = id, .client = client, .ip = ip, .target = RESOURCE};
    switch (sev) {
    case TRACE_INFO:
        s.outcome = "granted", s.severity = "info", s.system = system, s.policy = "p";
        break;
    case TRACE_WARNING:
        s.outcome = "denied", s.severity = "warning", s.reason = "no_access_policy";
        s.system = system;
        break;
    case TRACE_ERROR:
        s.outcome = "denied", s.severity = "error", s.reason = "unknown_system";
        break;
    }
    return event(&s);
}

static void publish(struct trace_hub *h, enum trace_severity sev, const char *id,
                    const char *client, const char *system, const char *ip)
{
    json_t *ev = request_event(sev, id, client, system, ip);
    trace_publish_event(h, ev, &(struct trace_match){.client_matched = 1});
    json_decref(ev);
}

static void publish_n(struct trace_hub *h, int from, int to)
{
    for (int i = from; i < to; i++) {
        char id[16];
        snprintf(id, sizeof(id), "n%d", i);
        publish(h, TRACE_INFO, id, "bot", "docs", "127.0.0.1");
    }
}

static void hub_attach_publish_read(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, 0, &h), 0);
    assert_int_equal(stats(h).priority_err, 0); /* raising one's nice value is always allowed */
    struct client *c = attach(h, NULL, 0);
    quiet(c, 50); /* nothing yet */
    publish(h, TRACE_INFO, "id-1", "build-bot", "docs", "127.0.0.1");
    wait_entries(c, 1);
    assert_int_equal(c->recs[1].kind, 't');
    assert_string_equal(c->recs[1].id, "id-1");
    /* the frame on the wire, byte for byte the SSE shape */
    json_t *ev = request_event(TRACE_INFO, "id-2", "build-bot", "docs", "127.0.0.1");
    json_t *want = trace_entry_from_event(ev, &(struct trace_match){.client_matched = 1});
    assert_entry_shape(want);
    char *data = json_dumps(want, JSON_COMPACT);
    trace_publish_event(h, ev, &(struct trace_match){.client_matched = 1});
    json_decref(ev);
    char frame[4096];
    int flen = snprintf(frame, sizeof(frame), "event: trace\ndata: %s\n\n", data);
    char got[4096];
    ssize_t n = 0;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    while (n < flen && poll(&pfd, 1, T_WAIT) == 1) {
        ssize_t r = read(c->fd, got + n, sizeof(got) - (size_t)n);
        assert_true(r > 0);
        n += r;
    }
    assert_int_equal(n, flen);
    assert_memory_equal(got, frame, (size_t)flen);
    free(data);
    json_decref(want);
    quiet(c, 50); /* each entry once */
    struct trace_stats st = stats(h);
    assert_int_equal(st.published, 2);
    assert_int_equal(st.subscribers, 1);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.rendered, 2);
    assert_int_equal(st.blocked, 0);
    /* the peer hangs up: the sender gives the socket back, on its own thread, once */
    int peer = c->peer;
    shutdown(c->fd, SHUT_RDWR);
    assert_int_equal(wait_released(c, T_WAIT), 1);
    assert_false(pthread_equal(c->released_on, pthread_self()));
    assert_true(fcntl(peer, F_GETFD) >= 0); /* not closed by the hub */
    WAIT_STAT(h, subscribers, 0);
    sleep_ms(30);
    assert_int_equal(c->releases, 1);
    client_free(c);
    trace_hub_free(h);
    assert_null(trace_hub_free(NULL));
    trace_hub_close(NULL);
    trace_publish_event(NULL, NULL, NULL);
}

static void hub_filters(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(256, 0, &h), 0);
    char ipf[] = "10.0.0.2"; /* the filter's strings are copied */
    struct client *ip = attach(h, &(struct trace_filter){.client_ip = ipf}, 0);
    memset(ipf, 'x', sizeof(ipf) - 1);
    struct client *all = attach(h, NULL, 0);
    struct client *warn = attach(h, &(struct trace_filter){.min_severity = TRACE_WARNING}, 0);
    struct client *err = attach(h, &(struct trace_filter){.min_severity = TRACE_ERROR}, 0);
    struct client *client = attach(h, &(struct trace_filter){.client = "bot"}, 0);
    struct client *ghost = attach(h, &(struct trace_filter){.client = "ghost"}, 0);
    struct client *sys = attach(h, &(struct trace_filter){.system = "docs"}, 0);
    struct client *both =
        attach(h, &(struct trace_filter){.min_severity = TRACE_WARNING, .system = "docs"}, 0);

    publish(h, TRACE_INFO, "e1", "bot", "docs", "10.0.0.1");
    publish(h, TRACE_INFO, "e2", "agent", "github", "10.0.0.2");
    publish(h, TRACE_WARNING, "e3", "agent", "docs", "10.0.0.2");
    publish(h, TRACE_WARNING, "e4", "bot", "github", "10.0.0.1");
    publish(h, TRACE_ERROR, "e5", "bot", NULL, "10.0.0.3");
    /* an unknown client: the presented id is what a client filter matches */
    json_t *ev = event(&(struct evspec){.id = "e6",
                                        .outcome = "denied",
                                        .severity = "error",
                                        .reason = "invalid_client",
                                        .client = "ghost",
                                        .ip = "10.0.0.2"});
    trace_publish_event(h, ev, &(struct trace_match){.client_matched = 0});
    json_decref(ev);
    /* an entry rendered for one subscriber is compared, not re-rendered, for the others */
    const struct {
        struct client **c;
        const char *ids;
    } want[] = {
        {&all, "e1 e2 e3 e4 e5 e6"}, {&warn, "e3 e4 e5 e6"}, {&err, "e5 e6"}, {&ip, "e2 e3 e6"},
        {&client, "e1 e4 e5"},       {&ghost, "e6"},         {&sys, "e1 e3"}, {&both, "e3"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct client *c = *want[i].c;
        size_t n = (strlen(want[i].ids) + 1) / 3;
        wait_entries(c, n);
        quiet(c, 30);
        char got[64] = "";
        for (size_t k = 0; k < c->n; k++)
            if (c->recs[k].kind == 't')
                snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", *got ? " " : "",
                         c->recs[k].id);
        if (strcmp(got, want[i].ids) != 0)
            fail_msg("subscriber %zu: got \"%s\", want \"%s\"", i, got, want[i].ids);
        assert_int_equal(c->dropped, 0);
        hang_up(c);
    }
    assert_int_equal(stats(h).rendered, 6);
    trace_hub_free(h);
}

/* Publishes 10 entries at a time, each lot taken by the sender before the next (so none
 * is lost), until it finds a subscriber's socket full (that subscriber reads nothing
 * meanwhile). Returns how many entries it published. */
static int fill_until_blocked(struct trace_hub *h, int from)
{
    int i = from;
    uint64_t r0 = stats(h).rendered;
    int64_t until = time_mono_ms() + T_WAIT;
    while (!stats(h).blocked) {
        publish_n(h, i, i + 10);
        i += 10;
        while (!stats(h).blocked && stats(h).rendered - r0 < (uint64_t)(i - from)) {
            assert_true(time_mono_ms() < until);
            sleep_ms(1);
        }
    }
    return i - from;
}

static void hub_renders_once(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, 0, &h), 0);
    struct client *a = attach(h, NULL, 0), *b = attach(h, NULL, 0);
    json_t *evs[20], *copies[20];
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof(id), "r%d", i);
        evs[i] = request_event(TRACE_INFO, id, "bot", "docs", "127.0.0.1");
        copies[i] = json_deep_copy(evs[i]);
        trace_publish_event(h, evs[i], &(struct trace_match){.client_matched = 1});
    }
    wait_entries(a, 20);
    wait_entries(b, 20);
    /* rendered once for both subscribers; the events were only read, and the sender let
     * go of its references once it had rendered them */
    assert_int_equal(stats(h).rendered, 20);
    for (int i = 0; i < 20; i++) {
        assert_true(json_equal(evs[i], copies[i]));
        assert_int_equal(evs[i]->refcount, 1);
        json_decref(evs[i]);
        json_decref(copies[i]);
    }
    hang_up(a);
    hang_up(b);
    trace_hub_free(h);
}

static void hub_renders_after_publish(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, 0, &h), 0);
    struct client *c = attach(h, NULL, 4096);
    int n = fill_until_blocked(h, 0);
    uint64_t rendered = stats(h).rendered;
    /* publishing keeps the event's text, not the event: no rendering on the caller's thread */
    json_t *x = request_event(TRACE_WARNING, "x", "bot", "docs", "127.0.0.1");
    json_t *copy = json_deep_copy(x);
    trace_publish_event(h, x, &(struct trace_match){.client_matched = 1});
    assert_int_equal(x->refcount, 1);
    /* text that is not an authorization request's event is not kept */
    uint64_t published = stats(h).published;
    trace_publish_text(h, strdup("{\"type\":\"admin.change\",\"id\":\"a\"}"), 32, NULL);
    assert_int_equal(stats(h).published, published);
    assert_int_equal(stats(h).rendered, rendered);
    sleep_ms(50); /* nor on the sender while no subscriber needs it */
    assert_int_equal(stats(h).rendered, rendered);
    /* the reader catches up: x is rendered then, once, and comes last */
    wait_entries(c, (size_t)n + 1);
    assert_int_equal(c->dropped, 0);
    assert_string_equal(c->recs[c->n - 1].id, "x");
    assert_int_equal(stats(h).rendered, (uint64_t)n + 1);
    assert_true(json_equal(x, copy));
    assert_int_equal(x->refcount, 1);
    json_decref(x);
    json_decref(copy);
    hang_up(c);
    trace_hub_free(h);
}

/* The records of c from index i on: entries n<from> .. n<to-1> in order. */
static size_t expect_run(const struct client *c, size_t i, int from, int to)
{
    for (int k = from; k < to; k++, i++) {
        char id[16];
        snprintf(id, sizeof(id), "n%d", k);
        if (i >= c->n || c->recs[i].kind != 't' || strcmp(c->recs[i].id, id) != 0)
            fail_msg("record %zu: want entry %s, got %c %s", i, id,
                     i < c->n ? c->recs[i].kind : '-', i < c->n ? c->recs[i].id : "");
    }
    return i;
}

/* The server's hub budgets its sender's CPU from /proc/stat's idle time (here a file the
 * test writes): with no idle time it may use only a floor of 1 % of one core, so it
 * skips passes (counted), and entries still move, slowly; without a budget it never
 * skips one. */
static void write_stat(const char *path, unsigned long long idle)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "cpu  100 0 100 %llu 0 0 0 0 0 0\ncpu0 50 0 50 %llu 0 0 0 0 0 0\n", idle, idle);
    fclose(f);
}

static void hub_cpu_budget(void **state)
{
    (void)state;
    char path[] = "/tmp/mcpauth-stat-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_stat(path, 1000);
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new_budgeted(64, 0, path, &h), 0);
    struct client *c = attach(h, NULL, 0);
    publish_n(h, 0, 10);
    sleep_ms(300); /* the machine never idles: the sender lives on its floor */
    assert_true(stats(h).throttled > 0);
    wait_entries(c, 10); /* the floor moves a trickle */
    expect_run(c, 1, 0, 10);
    hang_up(c);
    trace_hub_free(h);

    /* no budget: no pass is ever skipped */
    assert_int_equal(trace_hub_new(64, 0, &h), 0);
    c = attach(h, NULL, 0);
    publish_n(h, 0, 10);
    wait_entries(c, 10);
    sleep_ms(100);
    assert_int_equal(stats(h).throttled, 0);
    hang_up(c);
    trace_hub_free(h);
    unlink(path);
}

static void hub_drops_counted_at_sender(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, 0, &h), 0); /* 64 slots exactly */
    struct client *slow = attach(h, NULL, 4096);
    /* a second subscriber that keeps up meanwhile loses nothing */
    uint64_t r0 = stats(h).rendered;
    int k = fill_until_blocked(h, 0);
    uint64_t taken = stats(h).rendered - r0;
    struct client *fast = attach(h, NULL, 0);
    int total = k + 100;
    for (int i = k; i < total; i += 10) {
        publish_n(h, i, i + 10);
        wait_entries(fast, (size_t)(i + 10 - k));
    }
    uint64_t lost = (uint64_t)total - 64 - taken;
    WAIT_STAT(h, dropped, lost); /* counted by the sender: slow has not read a byte */
    assert_int_equal(fast->dropped, 0);
    expect_run(fast, 1, k, total);
    hang_up(fast);
    pump(slow, T_WAIT, has_entries, taken + 64);
    quiet(slow, 50);
    size_t i = expect_run(slow, 1, 0, (int)taken);
    if (i >= slow->n || slow->recs[i].kind != 'd')
        fail_msg("record %zu: want the dropped marker", i);
    assert_int_equal(slow->recs[i].count, lost);    /* the marker first, with the exact count */
    i = expect_run(slow, i + 1, total - 64, total); /* then the newest entries */
    assert_int_equal(i, slow->n);
    assert_int_equal(stats(h).blocked, 0);

    /* falling behind again: a second marker with the new count only */
    size_t mark = slow->n;
    r0 = stats(h).rendered;
    int k2 = fill_until_blocked(h, total);
    uint64_t taken2 = stats(h).rendered - r0;
    publish_n(h, total + k2, total + k2 + 64 + 5);
    int total2 = total + k2 + 64 + 5;
    uint64_t lost2 = (uint64_t)(k2 + 64 + 5) - 64 - taken2;
    WAIT_STAT(h, dropped, lost + lost2);
    pump(slow, T_WAIT, has_entries, slow->entries + taken2 + 64);
    quiet(slow, 50);
    i = expect_run(slow, mark, total, total + (int)taken2);
    assert_int_equal(slow->recs[i].kind, 'd');
    assert_int_equal(slow->recs[i].count, lost2);
    i = expect_run(slow, i + 1, total2 - 64, total2);
    assert_int_equal(i, slow->n);
    assert_int_equal(slow->dropped, stats(h).dropped);
    hang_up(slow);
    trace_hub_free(h);
}

static void hub_nothing_from_before(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, 0, &h), 0);
    struct client *early = attach(h, NULL, 0);
    publish(h, TRACE_INFO, "before-1", "bot", "docs", "127.0.0.1");
    publish(h, TRACE_ERROR, "before-2", "bot", NULL, "127.0.0.1");
    wait_entries(early, 2);
    struct client *late = attach(h, NULL, 0);
    quiet(late, 50);
    publish(h, TRACE_INFO, "after", "bot", "docs", "127.0.0.1");
    wait_entries(late, 1);
    assert_string_equal(late->recs[1].id, "after");
    wait_entries(early, 3);
    assert_string_equal(early->recs[1].id, "before-1");
    hang_up(early);
    hang_up(late);
    trace_hub_free(h);
}

static void hub_keepalive(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, 300, &h), 0); /* a keep-alive after 300 ms of silence */
    struct client *c = attach(h, NULL, 0);
    pump(c, 150, NULL, 0);
    assert_int_equal(c->comments, 1); /* the head only */
    pump(c, T_WAIT, has_recs, 2);
    assert_int_equal(c->recs[1].kind, ':');
    assert_string_equal(c->recs[1].id, ": keep-alive");
    publish(h, TRACE_INFO, "e", "bot", "docs", "127.0.0.1");
    wait_entries(c, 1);
    hang_up(c);
    trace_hub_free(h);
}

static void hub_close_ends_streams(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, 0, &h), 0);
    struct client *idle = attach(h, NULL, 0), *stuck = attach(h, NULL, 4096);
    fill_until_blocked(h, 0);
    trace_hub_close(h);
    /* every stream given back before close returns, once, and the sockets left open */
    assert_int_equal(idle->releases, 1);
    assert_int_equal(stuck->releases, 1);
    assert_true(fcntl(idle->peer, F_GETFD) >= 0);
    assert_int_equal(stats(h).subscribers, 0);
    /* attaching to a closed hub gives the socket back at once, on the caller's thread */
    struct client *late = calloc(1, sizeof(*late));
    assert_non_null(late);
    pthread_mutex_init(&late->mu, NULL);
    pthread_cond_init(&late->cv, NULL);
    buf_init(&late->in, 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    late->fd = sv[0];
    late->peer = sv[1];
    assert_int_equal(trace_attach(h, late->peer, NULL, HEAD, strlen(HEAD), on_release, late),
                     ERR_IO);
    assert_int_equal(late->releases, 1);
    assert_true(pthread_equal(late->released_on, pthread_self()));
    publish(h, TRACE_INFO, "after-close", "bot", "docs", "127.0.0.1"); /* nobody: no-op */
    trace_hub_close(h);                                                /* twice is fine */
    assert_int_equal(idle->releases, 1);
    trace_hub_free(h);
    client_free(idle);
    client_free(stuck);
    client_free(late);
}

static void hub_no_subscriber_no_op(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, 0, &h), 0);
    json_t *ev = request_event(TRACE_INFO, "nobody", "bot", "docs", "127.0.0.1");
    for (int i = 0; i < 10; i++)
        trace_publish_event(h, ev, NULL);
    assert_int_equal(ev->refcount, 1); /* not even a reference kept */
    json_decref(ev);
    struct trace_stats st = stats(h);
    assert_int_equal(st.published, 0);
    assert_int_equal(st.subscribers, 0);
    struct client *c = attach(h, NULL, 0);
    publish(h, TRACE_INFO, "one", "bot", "docs", "127.0.0.1");
    /* events that are not authorization requests are not published */
    ev = event(&(struct evspec){.type = "admin.change", .outcome = "success", .severity = "info"});
    trace_publish_event(h, ev, NULL);
    assert_int_equal(ev->refcount, 1);
    json_decref(ev);
    assert_int_equal(stats(h).published, 1);
    wait_entries(c, 1);
    hang_up(c);
    WAIT_STAT(h, subscribers, 0);
    publish(h, TRACE_INFO, "gone", "bot", "docs", "127.0.0.1");
    assert_int_equal(stats(h).published, 1);
    trace_hub_free(h);
}

/* ---- concurrency ---- */

#define PUBLISHERS    4
#define PER_PUBLISHER 10000

static void *publisher(void *p)
{
    struct trace_hub *h = p;
    json_t *ev = event(&(struct evspec){.outcome = "granted",
                                        .severity = "info",
                                        .client = "bot",
                                        .system = "docs",
                                        .policy = "p",
                                        .target = RESOURCE,
                                        .ip = "127.0.0.1"});
    for (int i = 0; i < PER_PUBLISHER; i++)
        trace_publish_event(h, ev, &(struct trace_match){.client_matched = 1});
    json_decref(ev);
    return NULL;
}

static bool accounted(const struct client *c, size_t want)
{
    return c->entries + c->dropped >= want;
}

static void *reader_run(void *p)
{
    struct client *c = p;
    pump(c, 60000, accounted, (size_t)PUBLISHERS * PER_PUBLISHER);
    return NULL;
}

static void hub_concurrency(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(1024, 0, &h), 0);
    struct client *rd[2] = {attach(h, NULL, 0), attach(h, NULL, 0)};
    pthread_t pub[PUBLISHERS], rt[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&rt[i], NULL, reader_run, rd[i]), 0);
    for (int i = 0; i < PUBLISHERS; i++)
        assert_int_equal(pthread_create(&pub[i], NULL, publisher, h), 0);
    for (int i = 0; i < PUBLISHERS; i++)
        pthread_join(pub[i], NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(rt[i], NULL);
    const unsigned long long total = PUBLISHERS * PER_PUBLISHER;
    struct trace_stats st = stats(h);
    assert_int_equal(st.published, total);
    for (int i = 0; i < 2; i++) {
        print_message("reader %d: %zu read, %llu dropped\n", i, rd[i]->entries, rd[i]->dropped);
        assert_int_equal(rd[i]->entries + rd[i]->dropped, total);
    }
    assert_int_equal(st.dropped, rd[0]->dropped + rd[1]->dropped);
    assert_true(st.rendered <= total);
    for (int i = 0; i < 2; i++)
        hang_up(rd[i]);
    trace_hub_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(entry_granted),
        cmocka_unit_test(entry_no_access_policy),
        cmocka_unit_test(entry_unknown_system),
        cmocka_unit_test(entry_unknown_client),
        cmocka_unit_test(entry_invalid_request_no_client),
        cmocka_unit_test(entry_other_types_ignored),
        cmocka_unit_test(hub_attach_publish_read),
        cmocka_unit_test(hub_filters),
        cmocka_unit_test(hub_renders_once),
        cmocka_unit_test(hub_renders_after_publish),
        cmocka_unit_test(hub_cpu_budget),
        cmocka_unit_test(hub_drops_counted_at_sender),
        cmocka_unit_test(hub_nothing_from_before),
        cmocka_unit_test(hub_keepalive),
        cmocka_unit_test(hub_close_ends_streams),
        cmocka_unit_test(hub_no_subscriber_no_op),
        cmocka_unit_test(hub_concurrency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
