/* tests/unit/test_trace.c — trace/: the entry built from an audit event for
 * each row of spec/policy.md that shapes it (granted with denied scopes, no
 * active access policy, unknown system, unknown client, malformed request,
 * other event types ignored); the hub: a subscriber reads what is published
 * after it subscribed and nothing before, filters (severity minimum,
 * client_ip, client, system), a reader that falls more than the ring behind
 * gets `dropped` with the exact count then the newest entries, the wake-up
 * comes from the hub's thread after a read returned 0, close ends reads,
 * publishing with no subscriber is a no-op, and 4 publishers x 10k entries
 * with 2 readers add up (read + dropped == published for each reader). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"
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
    json_t *req = json_pack("{s:s, s:s, s:s?, s:s?, s:s}", "id", "019a0000-0000-7000-8000-000000000001",
                            "endpoint", "token", "target_url", s->target, "client_ip", s->ip,
                            "user_agent", "test");
    json_t *ev = json_pack("{s:s, s:n, s:s, s:s, s:s, s:s, s:s?, s:s?, s:n, s:n, s:s?, s:s?, "
                           "s:s?, s:s?, s:o, s:n, s:o}",
                           "id", s->id ? s->id : "019a0000-0000-7000-8000-0000000000ee", "seq",
                           "time", "2026-11-22T09:14:03.512384Z", "type",
                           s->type ? s->type : "token.request", "outcome", s->outcome, "severity",
                           s->severity, "reason", s->reason, "status_detail", s->detail, "user",
                           "groups", "client", s->client, "system", s->system, "audience",
                           s->audience, "access_policy", s->policy, "scopes",
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
    static const char *const keys[] = {"time",     "client_ip",       "endpoint",
                                       "access_policy", "redirect_uri", "client_workload",
                                       "resource", "server_workload", "severity",
                                       "message",  "event_id",        NULL};
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
                                        .outcome = "granted", .severity = "info",
                                        .detail = "Scope not enabled: c",
                                        .client = "desktop-agent", .system = "github",
                                        .audience = "https://auth.github.example/",
                                        .policy = "desktop-github", .target = RESOURCE,
                                        .ip = "127.0.0.1", .scopes = scopes});
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
    ev = event(&(struct evspec){.outcome = "granted", .severity = "info", .client = "build-bot",
                                .system = "docs", .audience = "http://127.0.0.1:1",
                                .policy = "bot-docs", .ip = "10.0.0.1", .scopes = scopes});
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
    json_t *ev = event(&(struct evspec){.outcome = "denied", .severity = "warning",
                                        .reason = "no_access_policy",
                                        .detail = "No active access policy",
                                        .client = "desktop-agent", .system = "github",
                                        .target = RESOURCE, .ip = "127.0.0.1"});
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
    json_t *ev = event(&(struct evspec){.outcome = "denied", .severity = "error",
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
    ev = event(&(struct evspec){.outcome = "denied", .severity = "error",
                                .reason = "unknown_system", .client = "build-bot",
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
    json_t *ev = event(&(struct evspec){.outcome = "denied", .severity = "error",
                                        .reason = "invalid_client",
                                        .detail = "Client authentication failed: unknown client",
                                        .client = "ghost-client", .ip = "127.0.0.1"});
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
    ev = event(&(struct evspec){.outcome = "denied", .severity = "error",
                                .reason = "invalid_client",
                                .detail = "Client authentication failed", .client = "build-bot"});
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
    json_t *ev = event(&(struct evspec){.outcome = "denied", .severity = "error",
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
    ev = event(&(struct evspec){.type = "client.register", .outcome = "success",
                                .severity = "info", .client = "dyn-1"});
    json_t *e = trace_entry_from_event(ev, NULL);
    assert_entry_shape(e);
    assert_string_equal(sget(e, "client_workload"), "dyn-1");
    assert_string_equal(sget(e, "message"), "registered client dyn-1");
    json_decref(e);
    json_decref(ev);
    /* a refused registration has no client: "registration refused: why" */
    ev = event(&(struct evspec){.type = "client.register", .outcome = "failure",
                                .severity = "error", .reason = "invalid_request",
                                .detail = "the client metadata is larger than 16 KiB"});
    e = trace_entry_from_event(ev, NULL);
    assert_entry_shape(e);
    assert_true(json_is_null(json_object_get(e, "client_workload")));
    assert_string_equal(sget(e, "severity"), "error");
    assert_string_equal(sget(e, "message"),
                        "registration refused: the client metadata is larger than 16 KiB");
    json_decref(e);
    json_decref(ev);
    ev = event(&(struct evspec){.type = "authorize.request", .outcome = "granted",
                                .severity = "info", .client = "desktop-agent",
                                .system = "github", .policy = "desktop-github"});
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

struct waker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int wakes, holds;
    pthread_t woken_on;
};

static void waker_init(struct waker *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void waker_done(struct waker *w)
{
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static void on_wake(void *arg)
{
    struct waker *w = arg;
    pthread_mutex_lock(&w->mu);
    w->wakes++;
    w->woken_on = pthread_self();
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void on_hold(void *arg)
{
    struct waker *w = arg;
    pthread_mutex_lock(&w->mu);
    w->holds++;
    pthread_mutex_unlock(&w->mu);
}

/* waits (at most ms) until w->wakes >= n; returns the count seen */
static int wait_wakes(struct waker *w, int n, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (w->wakes < n)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    int got = w->wakes;
    pthread_mutex_unlock(&w->mu);
    return got;
}

static void nop_wake(void *arg)
{
    (void)arg;
}

/* A granted (info), no-policy (warning) or unknown-system (error) token request. */
static void publish(struct trace_hub *h, enum trace_severity sev, const char *id,
                    const char *client, const char *system, const char *ip)
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
    json_t *ev = event(&s);
    trace_publish_event(h, ev, &(struct trace_match){.client_matched = 1});
    json_decref(ev);
}

struct frames {
    size_t entries, dropped_frames, keepalives;
    unsigned long long dropped;
    char first_id[64], last_id[64];
};

/* Counts the SSE frames of `data` (whole frames only, as trace_sub_read appends them). */
static void parse_frames(const char *data, size_t len, struct frames *fr)
{
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *f_end = strstr(p, "\n\n");
        assert_non_null(f_end);
        if (strncmp(p, "event: trace\ndata: ", 19) == 0) {
            const char *j = p + 19;
            json_t *e = json_loadb(j, (size_t)(f_end - j), 0, NULL);
            if (!e)
                fail_msg("frame data is not JSON: %.*s", (int)(f_end - j), j);
            const char *id = sget(e, "event_id");
            assert_non_null(id);
            if (!fr->entries)
                snprintf(fr->first_id, sizeof(fr->first_id), "%s", id);
            snprintf(fr->last_id, sizeof(fr->last_id), "%s", id);
            fr->entries++;
            json_decref(e);
        } else if (strncmp(p, "event: dropped\ndata: ", 21) == 0) {
            unsigned long long n = 0;
            if (sscanf(p + 21, "{\"count\": %llu}", &n) != 1)
                fail_msg("bad dropped frame: %.*s", (int)(f_end - p), p);
            assert_true(n > 0);
            fr->dropped += n;
            fr->dropped_frames++;
        } else if (*p == ':') {
            fr->keepalives++;
        } else {
            fail_msg("unexpected frame: %.*s", (int)(f_end - p), p);
        }
        p = f_end + 2;
    }
}

/* Reads until the hub has nothing more for `s` (read returned 0). */
static struct frames drain(struct trace_sub *s)
{
    struct frames fr = {0};
    struct buf b;
    buf_init(&b, 0);
    int r;
    while ((r = trace_sub_read(s, &b, 4096, NULL, NULL)) > 0) {
        parse_frames(b.data, b.len, &fr);
        buf_reset(&b);
    }
    assert_int_equal(r, 0);
    buf_done(&b);
    return fr;
}

static void hub_subscribe_publish_read(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, &h), 0);
    struct trace_sub *s = NULL;
    assert_int_equal(trace_subscribe(h, NULL, nop_wake, NULL, &s), 0);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(trace_sub_read(s, &b, 4096, NULL, NULL), 0); /* nothing yet */
    assert_int_equal(b.len, 0);
    publish(h, TRACE_INFO, "id-1", "build-bot", "docs", "127.0.0.1");
    int r = trace_sub_read(s, &b, 4096, NULL, NULL);
    assert_true(r > 0);
    assert_int_equal((size_t)r, b.len);
    assert_true(strncmp(b.data, "event: trace\ndata: {", 20) == 0);
    assert_true(b.len > 2 && strcmp(b.data + b.len - 2, "\n\n") == 0);
    json_t *e = json_loadb(b.data + 19, b.len - 21, 0, NULL);
    assert_non_null(e);
    assert_entry_shape(e);
    assert_string_equal(sget(e, "event_id"), "id-1");
    assert_string_equal(sget(e, "client_workload"), "build-bot");
    json_decref(e);
    buf_reset(&b);
    assert_int_equal(trace_sub_read(s, &b, 4096, NULL, NULL), 0); /* read once only */
    struct trace_stats st;
    trace_hub_stats(h, &st);
    assert_int_equal(st.published, 1);
    assert_int_equal(st.subscribers, 1);
    assert_int_equal(st.dropped, 0);
    buf_done(&b);
    trace_unsubscribe(s);
    trace_hub_stats(h, &st);
    assert_int_equal(st.subscribers, 0);
    trace_unsubscribe(NULL);
    trace_hub_free(h);
    assert_null(trace_hub_free(NULL));
    trace_hub_close(NULL);
    trace_publish_event(NULL, NULL, NULL);
}

static void hub_filters(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(256, &h), 0);
    struct trace_sub *all, *warn, *err, *ip, *client, *ghost, *sys, *both;
    assert_int_equal(trace_subscribe(h, NULL, nop_wake, NULL, &all), 0);
    assert_int_equal(trace_subscribe(h, &(struct trace_filter){.min_severity = TRACE_WARNING},
                                     nop_wake, NULL, &warn),
                     0);
    assert_int_equal(trace_subscribe(h, &(struct trace_filter){.min_severity = TRACE_ERROR},
                                     nop_wake, NULL, &err),
                     0);
    char ipf[] = "10.0.0.2"; /* the filter's strings are copied */
    assert_int_equal(trace_subscribe(h, &(struct trace_filter){.client_ip = ipf}, nop_wake, NULL,
                                     &ip),
                     0);
    memset(ipf, 'x', sizeof(ipf) - 1);
    assert_int_equal(trace_subscribe(h, &(struct trace_filter){.client = "bot"}, nop_wake, NULL,
                                     &client),
                     0);
    assert_int_equal(trace_subscribe(h, &(struct trace_filter){.client = "ghost"}, nop_wake,
                                     NULL, &ghost),
                     0);
    assert_int_equal(trace_subscribe(h, &(struct trace_filter){.system = "docs"}, nop_wake, NULL,
                                     &sys),
                     0);
    assert_int_equal(trace_subscribe(h,
                                     &(struct trace_filter){.min_severity = TRACE_WARNING,
                                                            .system = "docs"},
                                     nop_wake, NULL, &both),
                     0);

    publish(h, TRACE_INFO, "e1", "bot", "docs", "10.0.0.1");
    publish(h, TRACE_INFO, "e2", "agent", "github", "10.0.0.2");
    publish(h, TRACE_WARNING, "e3", "agent", "docs", "10.0.0.2");
    publish(h, TRACE_WARNING, "e4", "bot", "github", "10.0.0.1");
    publish(h, TRACE_ERROR, "e5", "bot", NULL, "10.0.0.3");
    /* an unknown client: the presented id is what a client filter matches */
    json_t *ev = event(&(struct evspec){.id = "e6", .outcome = "denied", .severity = "error",
                                        .reason = "invalid_client", .client = "ghost",
                                        .ip = "10.0.0.2"});
    trace_publish_event(h, ev, &(struct trace_match){.client_matched = 0});
    json_decref(ev);
    /* a subscriber that matches nothing: unknown system never carries a system */
    const struct {
        struct trace_sub **s;
        size_t n;
        const char *first, *last;
    } want[] = {
        {&all, 6, "e1", "e6"},  {&warn, 4, "e3", "e6"},   {&err, 2, "e5", "e6"},
        {&ip, 3, "e2", "e6"},   {&client, 3, "e1", "e5"}, {&ghost, 1, "e6", "e6"},
        {&sys, 2, "e1", "e3"},  {&both, 1, "e3", "e3"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct frames fr = drain(*want[i].s);
        if (fr.entries != want[i].n)
            fail_msg("subscriber %zu: %zu entries, want %zu", i, fr.entries, want[i].n);
        assert_string_equal(fr.first_id, want[i].first);
        assert_string_equal(fr.last_id, want[i].last);
        assert_int_equal(fr.dropped, 0);
        trace_unsubscribe(*want[i].s);
    }
    trace_hub_free(h);
}

static void hub_dropped_then_newest(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, &h), 0); /* 64 slots exactly */
    struct trace_sub *slow, *fast;
    assert_int_equal(trace_subscribe(h, NULL, nop_wake, NULL, &slow), 0);
    assert_int_equal(trace_subscribe(h, NULL, nop_wake, NULL, &fast), 0);
    struct frames ff = {0};
    for (int i = 0; i < 100; i++) {
        char id[16];
        snprintf(id, sizeof(id), "n%d", i);
        publish(h, TRACE_INFO, id, "bot", "docs", "127.0.0.1");
        if (i % 10 == 9) { /* the fast one keeps up */
            struct frames f = drain(fast);
            ff.entries += f.entries;
            ff.dropped += f.dropped;
        }
    }
    assert_int_equal(ff.entries, 100);
    assert_int_equal(ff.dropped, 0);

    struct buf b;
    buf_init(&b, 0);
    int r = trace_sub_read(slow, &b, 1 << 20, NULL, NULL);
    assert_true(r > 0);
    /* the marker comes first, with the exact count */
    assert_true(strncmp(b.data, "event: dropped\ndata: {\"count\": 36}\n\n", 36) == 0);
    struct frames fr = {0};
    parse_frames(b.data, b.len, &fr);
    buf_done(&b);
    assert_int_equal(fr.dropped_frames, 1);
    assert_int_equal(fr.dropped, 36);
    assert_int_equal(fr.entries, 64);
    assert_string_equal(fr.first_id, "n36");
    assert_string_equal(fr.last_id, "n99");
    struct frames more = drain(slow);
    assert_int_equal(more.entries + more.dropped, 0);
    struct trace_stats st;
    trace_hub_stats(h, &st);
    assert_int_equal(st.published, 100);
    assert_int_equal(st.dropped, 36);

    /* falling behind again: a second marker with the new count only */
    for (int i = 100; i < 100 + 64 + 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "n%d", i);
        publish(h, TRACE_INFO, id, "bot", "docs", "127.0.0.1");
    }
    fr = drain(slow);
    assert_int_equal(fr.dropped_frames, 1);
    assert_int_equal(fr.dropped, 5);
    assert_int_equal(fr.entries, 64);
    assert_string_equal(fr.first_id, "n105");
    assert_string_equal(fr.last_id, "n168");
    trace_hub_stats(h, &st);
    assert_int_equal(st.dropped, 41);
    trace_unsubscribe(slow);
    trace_unsubscribe(fast);
    trace_hub_free(h);
}

static void hub_nothing_from_before(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, &h), 0);
    struct trace_sub *early, *late;
    assert_int_equal(trace_subscribe(h, NULL, nop_wake, NULL, &early), 0);
    publish(h, TRACE_INFO, "before-1", "bot", "docs", "127.0.0.1");
    publish(h, TRACE_ERROR, "before-2", "bot", NULL, "127.0.0.1");
    assert_int_equal(trace_subscribe(h, NULL, nop_wake, NULL, &late), 0);
    struct frames fr = drain(late);
    assert_int_equal(fr.entries + fr.dropped, 0);
    publish(h, TRACE_INFO, "after", "bot", "docs", "127.0.0.1");
    fr = drain(late);
    assert_int_equal(fr.entries, 1);
    assert_string_equal(fr.first_id, "after");
    fr = drain(early);
    assert_int_equal(fr.entries, 3);
    assert_string_equal(fr.first_id, "before-1");
    trace_unsubscribe(early);
    trace_unsubscribe(late);
    trace_hub_free(h);
}

static void hub_wakes_from_its_thread(void **state)
{
    (void)state;
    struct waker w;
    waker_init(&w);
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, &h), 0);
    struct trace_sub *s;
    assert_int_equal(trace_subscribe(h, NULL, on_wake, &w, &s), 0);
    /* entries while it is not waiting: no wake-up (it reads them anyway) */
    publish(h, TRACE_INFO, "x", "bot", "docs", "127.0.0.1");
    struct buf b;
    buf_init(&b, 0);
    assert_true(trace_sub_read(s, &b, 4096, on_hold, &w) > 0);
    assert_int_equal(w.holds, 0);
    buf_reset(&b);
    /* nothing: hold is called (the caller suspends inside it), then a publish wakes */
    assert_int_equal(trace_sub_read(s, &b, 4096, on_hold, &w), 0);
    assert_int_equal(w.holds, 1);
    assert_int_equal(wait_wakes(&w, 1, 100), 0); /* no entry, no wake (keep-alive is 15 s) */
    publish(h, TRACE_INFO, "y", "bot", "docs", "127.0.0.1");
    assert_int_equal(wait_wakes(&w, 1, 2000), 1);
    pthread_mutex_lock(&w.mu);
    assert_false(pthread_equal(w.woken_on, pthread_self()));
    pthread_mutex_unlock(&w.mu);
    assert_true(trace_sub_read(s, &b, 4096, on_hold, &w) > 0);
    assert_non_null(strstr(b.data, "\"event_id\":\"y\""));
    buf_reset(&b);
    /* one wake per wait: entries published while not waiting wake no one again */
    publish(h, TRACE_INFO, "z", "bot", "docs", "127.0.0.1");
    assert_int_equal(wait_wakes(&w, 2, 100), 1);
    /* waiting again, several entries in a burst: woken (once or more), all read */
    assert_true(trace_sub_read(s, &b, 4096, on_hold, &w) > 0);
    buf_reset(&b);
    assert_int_equal(trace_sub_read(s, &b, 4096, on_hold, &w), 0);
    for (int i = 0; i < 10; i++)
        publish(h, TRACE_INFO, "burst", "bot", "docs", "127.0.0.1");
    assert_true(wait_wakes(&w, 2, 2000) >= 2);
    struct frames fr = drain(s);
    assert_int_equal(fr.entries, 10);
    buf_done(&b);
    trace_unsubscribe(s);
    trace_hub_free(h);
    waker_done(&w);
}

static void hub_close_ends_reads(void **state)
{
    (void)state;
    struct waker w1, w2;
    waker_init(&w1);
    waker_init(&w2);
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, &h), 0);
    struct trace_sub *waiting, *behind;
    assert_int_equal(trace_subscribe(h, NULL, on_wake, &w1, &waiting), 0);
    assert_int_equal(trace_subscribe(h, NULL, on_wake, &w2, &behind), 0);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(trace_sub_read(waiting, &b, 4096, on_hold, &w1), 0);
    publish(h, TRACE_INFO, "last", "bot", "docs", "127.0.0.1");
    assert_int_equal(wait_wakes(&w1, 1, 2000), 1);
    assert_true(trace_sub_read(waiting, &b, 4096, on_hold, &w1) > 0);
    buf_reset(&b);
    assert_int_equal(trace_sub_read(waiting, &b, 4096, on_hold, &w1), 0); /* waiting again */
    trace_hub_close(h);
    /* the waiting reader is woken one last time (before close returns) */
    assert_int_equal(wait_wakes(&w1, 2, 0), 2);
    assert_int_equal(trace_sub_read(waiting, &b, 4096, on_hold, &w1), ERR_IO);
    assert_int_equal(b.len, 0);
    /* a reader with entries left gets them first, then the end */
    assert_true(trace_sub_read(behind, &b, 4096, on_hold, &w2) > 0);
    assert_non_null(strstr(b.data, "\"event_id\":\"last\""));
    buf_reset(&b);
    assert_int_equal(trace_sub_read(behind, &b, 4096, on_hold, &w2), ERR_IO);
    assert_int_equal(trace_sub_read(behind, &b, 4096, on_hold, &w2), ERR_IO);
    trace_hub_close(h); /* twice is fine */
    buf_done(&b);
    trace_unsubscribe(waiting);
    trace_unsubscribe(behind);
    trace_hub_free(h);
    waker_done(&w1);
    waker_done(&w2);
}

static void hub_no_subscriber_no_op(void **state)
{
    (void)state;
    struct trace_hub *h = NULL;
    assert_int_equal(trace_hub_new(64, &h), 0);
    struct trace_stats st;
    for (int i = 0; i < 10; i++)
        publish(h, TRACE_INFO, "nobody", "bot", "docs", "127.0.0.1");
    trace_hub_stats(h, &st);
    assert_int_equal(st.published, 0);
    assert_int_equal(st.subscribers, 0);
    struct trace_sub *s;
    assert_int_equal(trace_subscribe(h, NULL, nop_wake, NULL, &s), 0);
    publish(h, TRACE_INFO, "one", "bot", "docs", "127.0.0.1");
    /* events that are not authorization requests are not published */
    json_t *ev = event(&(struct evspec){.type = "admin.change", .outcome = "success",
                                        .severity = "info"});
    trace_publish_event(h, ev, NULL);
    json_decref(ev);
    trace_hub_stats(h, &st);
    assert_int_equal(st.published, 1);
    trace_unsubscribe(s);
    publish(h, TRACE_INFO, "gone", "bot", "docs", "127.0.0.1");
    trace_hub_stats(h, &st);
    assert_int_equal(st.published, 1);
    trace_hub_free(h);
}

/* ---- concurrency ---- */

#define PUBLISHERS 4
#define PER_PUBLISHER 10000

struct conc {
    struct trace_hub *h;
    atomic_bool done;
};

struct reader {
    struct conc *c;
    struct trace_sub *s;
    unsigned long long entries, dropped;
};

static void *publisher(void *p)
{
    struct conc *c = p;
    json_t *ev = event(&(struct evspec){.outcome = "granted", .severity = "info",
                                        .client = "bot", .system = "docs", .policy = "p",
                                        .target = RESOURCE, .ip = "127.0.0.1"});
    for (int i = 0; i < PER_PUBLISHER; i++)
        trace_publish_event(c->h, ev, &(struct trace_match){.client_matched = 1});
    json_decref(ev);
    return NULL;
}

#define DROPPED "event: dropped\ndata: {\"count\": "

/* counts frames without parsing JSON, to keep up */
static void count_frames(struct reader *r, const char *p, size_t len)
{
    const char *end = p + len;
    while (p < end) {
        const char *f_end = strstr(p, "\n\n");
        assert_non_null(f_end);
        if (strncmp(p, "event: trace\n", 13) == 0) {
            r->entries++;
        } else if (strncmp(p, DROPPED, sizeof(DROPPED) - 1) == 0) {
            r->dropped += strtoull(p + sizeof(DROPPED) - 1, NULL, 10);
        } else if (*p != ':') {
            fail_msg("unexpected frame: %.*s", (int)(f_end - p), p);
        }
        p = f_end + 2;
    }
}

static void *reader_run(void *p)
{
    struct reader *r = p;
    struct buf b;
    buf_init(&b, 0);
    for (;;) {
        bool finished = atomic_load(&r->c->done); /* before the read: then all is visible */
        int n = trace_sub_read(r->s, &b, 16384, NULL, NULL);
        if (n < 0)
            break;
        if (n > 0) {
            count_frames(r, b.data, b.len);
            buf_reset(&b);
            continue;
        }
        if (finished)
            break;
        struct timespec z = {0, 50000};
        nanosleep(&z, NULL);
    }
    buf_done(&b);
    return NULL;
}

static void hub_concurrency(void **state)
{
    (void)state;
    struct conc c = {0};
    atomic_init(&c.done, false);
    assert_int_equal(trace_hub_new(1024, &c.h), 0);
    struct reader rd[2] = {{.c = &c}, {.c = &c}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(trace_subscribe(c.h, NULL, nop_wake, NULL, &rd[i].s), 0);
    pthread_t pub[PUBLISHERS], rt[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&rt[i], NULL, reader_run, &rd[i]), 0);
    for (int i = 0; i < PUBLISHERS; i++)
        assert_int_equal(pthread_create(&pub[i], NULL, publisher, &c), 0);
    for (int i = 0; i < PUBLISHERS; i++)
        pthread_join(pub[i], NULL);
    atomic_store(&c.done, true);
    for (int i = 0; i < 2; i++)
        pthread_join(rt[i], NULL);
    struct trace_stats st;
    trace_hub_stats(c.h, &st);
    const unsigned long long total = PUBLISHERS * PER_PUBLISHER;
    assert_int_equal(st.published, total);
    for (int i = 0; i < 2; i++) {
        print_message("reader %d: %llu read, %llu dropped\n", i, rd[i].entries, rd[i].dropped);
        assert_int_equal(rd[i].entries + rd[i].dropped, total);
    }
    assert_int_equal(st.dropped, rd[0].dropped + rd[1].dropped);
    for (int i = 0; i < 2; i++)
        trace_unsubscribe(rd[i].s);
    trace_hub_free(c.h);
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
        cmocka_unit_test(hub_subscribe_publish_read),
        cmocka_unit_test(hub_filters),
        cmocka_unit_test(hub_dropped_then_newest),
        cmocka_unit_test(hub_nothing_from_before),
        cmocka_unit_test(hub_wakes_from_its_thread),
        cmocka_unit_test(hub_close_ends_reads),
        cmocka_unit_test(hub_no_subscriber_no_op),
        cmocka_unit_test(hub_concurrency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
