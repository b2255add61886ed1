/* trace/trace.c — the live trace hub (see trace.h).
 *
 * Workload: every authorization request publishes one entry (thousands per
 * second); a handful to hundreds of subscribers read. The publisher renders
 * the entry outside the lock and holds the lock only to swap a pointer into
 * the ring; waking readers is left to the hub's thread, so issuance never
 * pays per subscriber. Invariant: seq counts entries ever published; slot
 * seq % size holds entry seq while seq > head - size. */
#include "trace/trace.h"
#include "core/timeutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEEPALIVE_US (15 * 1000000LL)
#define WAKE_PERIOD_MS 10 /* readers are woken at most this often: batches frames */
#define READ_BATCH 256    /* frames a reader takes per lock hold */

/* An entry's SSE frame, shared by the ring and the readers copying it out. */
struct frame {
    int refs; /* atomic */
    size_t len;
    char data[]; /* "event: trace\ndata: {...}\n\n" */
};

static struct frame *frame_ref(struct frame *f)
{
    __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
    return f;
}

static void frame_unref(struct frame *f)
{
    if (f && __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(f);
}

struct entry {
    struct frame *frame;
    enum trace_severity severity;
    char *client_ip, *client, *system; /* for filters; may be NULL */
};

struct trace_sub {
    struct trace_hub *h;
    struct trace_filter f; /* strings owned */
    uint64_t pos;          /* next entry to read */
    int64_t last_out_us;
    bool waiting;
    trace_wake_fn wake;
    void *wake_arg;
    struct trace_sub *prev, *next;
};

struct trace_hub {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct entry *ring;
    size_t size; /* power of two */
    uint64_t head; /* entries published */
    struct trace_sub *subs;
    size_t n_subs;
    uint64_t dropped;
    bool closed, dirty;
    pthread_t thread;
};

static const char *const sev_names[] = {"info", "warning", "error"};

static enum trace_severity sev_parse(const char *s)
{
    if (s && strcmp(s, "error") == 0)
        return TRACE_ERROR;
    if (s && strcmp(s, "warning") == 0)
        return TRACE_WARNING;
    return TRACE_INFO;
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* "granted a b; denied c (Scope not enabled)" from the event's per-scope outcomes. */
static void scopes_message(const json_t *scopes, struct buf *b)
{
    size_t i;
    const json_t *sc;
    int granted = 0;
    json_array_foreach(scopes, i, sc)
    {
        const char *o = str(sc, "outcome");
        if (o && strcmp(o, "granted") == 0)
            buf_printf(b, "%s%s", granted++ ? " " : "granted ", str(sc, "name"));
    }
    int denied = 0;
    json_array_foreach(scopes, i, sc)
    {
        const char *o = str(sc, "outcome");
        if (o && strcmp(o, "granted") != 0) {
            const char *r = str(sc, "reason");
            buf_printf(b, "%s%s%s%s%s", denied++ ? ", " : granted ? "; denied " : "denied ",
                       str(sc, "name"), r ? " (" : "",
                       !r                                ? ""
                       : strcmp(r, "scope_not_enabled") == 0 ? "Scope not enabled"
                       : strcmp(r, "no_grant") == 0          ? "No grant for the scope"
                                                             : r,
                       r ? ")" : "");
        }
    }
}

json_t *trace_entry_from_event(const json_t *ev, const struct trace_match *m)
{
    const char *type = str(ev, "type");
    if (!type || (strcmp(type, "token.request") && strcmp(type, "authorize.request") &&
                  strcmp(type, "client.register")))
        return NULL;
    const json_t *req = json_object_get(ev, "request");
    const char *client = str(ev, "client");
    const char *system = str(ev, "system");
    const char *policy = str(ev, "access_policy");
    const char *reason = str(ev, "reason");
    const char *detail = str(ev, "status_detail");
    const char *resource = str(req, "target_url");
    const char *audience = str(ev, "audience");
    const char *endpoint = str(req, "endpoint");
    bool client_ok = client && m && m->client_matched;
    bool is_register = strcmp(type, "client.register") == 0;

    struct buf msg;
    buf_init(&msg, 2048);
    enum trace_severity sev = sev_parse(str(ev, "severity"));
    const char *outcome = str(ev, "outcome");
    bool ok = outcome && (strcmp(outcome, "granted") == 0 || strcmp(outcome, "success") == 0);
    if (is_register) {
        buf_puts(&msg, ok ? "registered client" : "registration refused");
        if (client) /* a refused registration has no client id: no dangling space */
            buf_printf(&msg, " %s", client);
        if (!ok && detail)
            buf_printf(&msg, ": %s", detail);
    } else if (!client_ok && reason &&
               (strcmp(reason, "invalid_client") == 0 || strcmp(reason, "invalid_request") == 0 ||
                strcmp(reason, "unauthorized_client") == 0 ||
                strcmp(reason, "unsupported_grant_type") == 0)) {
        sev = TRACE_ERROR;
        buf_printf(&msg, "No client workload matched: client_id %s%s%s presented",
                   client ? "\"" : "", client ? client : "none", client ? "\"" : "");
        if (detail)
            buf_printf(&msg, " (%s)", detail);
    } else if (!system && reason && strcmp(reason, "unknown_system") == 0) {
        sev = TRACE_ERROR;
        buf_printf(&msg, "No server workload matched: %s%s%s presented",
                   resource ? "resource " : audience ? "audience " : "no resource or audience",
                   resource ? resource : audience ? audience : "", "");
    } else if (reason && strcmp(reason, "no_access_policy") == 0) {
        sev = TRACE_WARNING;
        buf_printf(&msg, "Both workloads matched (%s, %s); the access policy is inactive or does "
                         "not exist",
                   client ? client : "?", system ? system : "?");
    } else if (ok && strcmp(type, "authorize.request") == 0 && str(req, "phase") &&
               strcmp(str(req, "phase"), "request") == 0) {
        /* no user yet: nothing is granted, the browser goes to sign in */
        const char *via = str(req, "sign_in");
        buf_printf(&msg, "sent to sign-in%s%s%s", via ? " (" : "", via ? via : "", via ? ")" : "");
        if (detail)
            buf_printf(&msg, "; %s", detail);
    } else if (json_array_size(json_object_get(ev, "scopes")) &&
               (ok || (reason && (strcmp(reason, "scope_not_enabled") == 0 ||
                                  strcmp(reason, "no_grant") == 0)))) {
        scopes_message(json_object_get(ev, "scopes"), &msg);
    } else if (detail) {
        buf_printf(&msg, "%s %s", ok ? "granted:" : "denied:", detail);
    } else {
        buf_puts(&msg, ok ? "granted" : "denied");
    }
    /* the decision keeps the policy it found even when inactive; the entry names only an
     * active one (an inactive one is "no active access policy", the warning's message) */
    bool active = policy && !(reason && strcmp(reason, "no_access_policy") == 0);
    json_t *ap = active ? json_pack("{s:s, s:b}", "id", policy, "active", 1) : json_null();
    json_t *e = json_pack(
        "{s:s?, s:s?, s:s?, s:o, s:s?, s:s?, s:s?, s:s?, s:s, s:s, s:s?}", "time", str(ev, "time"),
        "client_ip", str(req, "client_ip"), "endpoint", endpoint ? endpoint : type, "access_policy",
        ap, "redirect_uri", str(req, "redirect_uri"), "client_workload",
        client_ok || is_register ? client : NULL, "resource", resource ? resource : audience,
        "server_workload", system, "severity", sev_names[sev], "message",
        msg.data ? msg.data : "", "event_id", str(ev, "id"));
    buf_done(&msg);
    return e;
}

/* ---- hub ---- */

static void entry_clear(struct entry *e)
{
    frame_unref(e->frame);
    free(e->client_ip);
    free(e->client);
    free(e->system);
    *e = (struct entry){0};
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static bool matches(const struct trace_filter *f, const struct entry *e)
{
    if (e->severity < f->min_severity)
        return false;
    if (f->client_ip && (!e->client_ip || strcmp(f->client_ip, e->client_ip) != 0))
        return false;
    if (f->client && (!e->client || strcmp(f->client, e->client) != 0))
        return false;
    if (f->system && (!e->system || strcmp(f->system, e->system) != 0))
        return false;
    return true;
}

/* The hub's thread: wakes waiting readers when entries arrived (at most every
 * WAKE_PERIOD_MS, so a burst costs one wake per reader) or a keep-alive is due. */
static void *run(void *p)
{
    struct trace_hub *h = p;
    pthread_mutex_lock(&h->mu);
    while (!h->closed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        while (!h->dirty && !h->closed)
            if (pthread_cond_timedwait(&h->cv, &h->mu, &ts) != 0)
                break;
        bool fresh = h->dirty;
        h->dirty = false;
        int64_t now = time_now_us();
        for (struct trace_sub *s = h->subs; s; s = s->next)
            if (s->waiting && ((fresh && s->pos < h->head) || h->closed ||
                               now - s->last_out_us >= KEEPALIVE_US)) {
                s->waiting = false;
                s->wake(s->wake_arg);
            }
        if (h->closed)
            break;
        pthread_mutex_unlock(&h->mu);
        struct timespec z = {0, WAKE_PERIOD_MS * 1000000L};
        nanosleep(&z, NULL);
        pthread_mutex_lock(&h->mu);
    }
    /* closed: every waiting reader hears it */
    for (struct trace_sub *s = h->subs; s; s = s->next)
        if (s->waiting) {
            s->waiting = false;
            s->wake(s->wake_arg);
        }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int trace_hub_new(size_t ring, struct trace_hub **ret)
{
    size_t size = 64;
    while (size < ring && size < (1u << 20))
        size <<= 1;
    struct trace_hub *h = calloc(1, sizeof(*h));
    if (!h)
        return ERR_NOMEM;
    h->ring = calloc(size, sizeof(*h->ring));
    if (!h->ring) {
        free(h);
        return ERR_NOMEM;
    }
    h->size = size;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (pthread_create(&h->thread, NULL, run, h) != 0) {
        free(h->ring);
        free(h);
        return ERR_INTERNAL;
    }
    *ret = h;
    return 0;
}

void trace_hub_close(struct trace_hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    bool was = h->closed;
    h->closed = true;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (!was)
        pthread_join(h->thread, NULL);
}

struct trace_hub *trace_hub_free(struct trace_hub *h)
{
    if (!h)
        return NULL;
    trace_hub_close(h);
    for (size_t i = 0; i < h->size; i++)
        entry_clear(&h->ring[i]);
    free(h->ring);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
    return NULL;
}

void trace_publish_event(struct trace_hub *h, const json_t *ev, const struct trace_match *m)
{
    if (!h || !ev)
        return;
    /* nobody listening: nothing to render (the common case costs one atomic read) */
    if (!__atomic_load_n(&h->n_subs, __ATOMIC_RELAXED))
        return;
    json_t *e = trace_entry_from_event(ev, m);
    if (!e)
        return;
    char *data = json_dumps(e, JSON_COMPACT);
    struct entry ne = {0};
    if (data) {
        size_t n = strlen(data);
        ne.frame = malloc(sizeof(*ne.frame) + n + 32);
        if (ne.frame) {
            ne.frame->refs = 1;
            ne.frame->len = (size_t)snprintf(ne.frame->data, n + 32,
                                             "event: trace\ndata: %s\n\n", data);
        }
    }
    free(data);
    ne.severity = sev_parse(str(e, "severity"));
    ne.client_ip = dup_or_null(str(e, "client_ip"));
    ne.client = dup_or_null(str(ev, "client"));
    ne.system = dup_or_null(str(ev, "system"));
    json_decref(e);
    if (!ne.frame) {
        entry_clear(&ne);
        return;
    }
    struct entry old;
    pthread_mutex_lock(&h->mu);
    struct entry *slot = &h->ring[h->head & (h->size - 1)];
    old = *slot;
    *slot = ne;
    h->head++;
    if (!h->dirty) {
        h->dirty = true;
        pthread_cond_signal(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    entry_clear(&old); /* freed outside the lock */
}

int trace_subscribe(struct trace_hub *h, const struct trace_filter *f, trace_wake_fn wake,
                    void *wake_arg, struct trace_sub **ret)
{
    struct trace_sub *s = calloc(1, sizeof(*s));
    if (!s)
        return ERR_NOMEM;
    s->h = h;
    s->f.min_severity = f ? f->min_severity : TRACE_INFO;
    s->f.client_ip = f ? dup_or_null(f->client_ip) : NULL;
    s->f.client = f ? dup_or_null(f->client) : NULL;
    s->f.system = f ? dup_or_null(f->system) : NULL;
    s->wake = wake;
    s->wake_arg = wake_arg;
    s->last_out_us = time_now_us();
    pthread_mutex_lock(&h->mu);
    s->pos = h->head;
    s->next = h->subs;
    if (h->subs)
        h->subs->prev = s;
    h->subs = s;
    __atomic_store_n(&h->n_subs, h->n_subs + 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&h->mu);
    *ret = s;
    return 0;
}

void trace_unsubscribe(struct trace_sub *s)
{
    if (!s)
        return;
    struct trace_hub *h = s->h;
    pthread_mutex_lock(&h->mu);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    __atomic_store_n(&h->n_subs, h->n_subs - 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&h->mu);
    free((char *)s->f.client_ip);
    free((char *)s->f.client);
    free((char *)s->f.system);
    free(s);
}

int trace_sub_read(struct trace_sub *s, struct buf *out, size_t max, void (*hold)(void *arg),
                   void *hold_arg)
{
    struct trace_hub *h = s->h;
    size_t start = out->len;
    struct frame *take[READ_BATCH];
    for (;;) {
        /* under the lock only pick the frames (a reference each); copy them outside it, so
         * publishers never wait for a reader's memcpy */
        size_t n = 0, bytes = out->len - start;
        pthread_mutex_lock(&h->mu);
        uint64_t oldest = h->head > h->size ? h->head - h->size : 0;
        if (s->pos < oldest) {
            uint64_t lost = oldest - s->pos;
            h->dropped += lost;
            buf_printf(out, "event: dropped\ndata: {\"count\": %llu}\n\n",
                       (unsigned long long)lost);
            s->pos = oldest;
        }
        while (s->pos < h->head && n < READ_BATCH && bytes < max) {
            const struct entry *e = &h->ring[s->pos & (h->size - 1)];
            if (e->frame && matches(&s->f, e)) {
                take[n++] = frame_ref(e->frame);
                bytes += e->frame->len;
            }
            s->pos++;
        }
        bool more = s->pos < h->head && bytes < max;
        if (n || out->len > start) {
            s->last_out_us = time_now_us();
            pthread_mutex_unlock(&h->mu);
            for (size_t i = 0; i < n; i++) {
                buf_append(out, take[i]->data, take[i]->len); /* past the cap: dropped */
                frame_unref(take[i]);
            }
            if (more)
                continue;
            return (int)(out->len - start);
        }
        if (more) { /* only non-matching entries so far: keep scanning */
            pthread_mutex_unlock(&h->mu);
            continue;
        }
        int64_t now = time_now_us();
        if (now - s->last_out_us >= KEEPALIVE_US) {
            buf_puts(out, ": keep-alive\n\n");
            s->last_out_us = now;
            pthread_mutex_unlock(&h->mu);
            return (int)(out->len - start);
        }
        if (h->closed) {
            pthread_mutex_unlock(&h->mu);
            return ERR_IO;
        }
        s->waiting = true;
        if (hold)
            hold(hold_arg); /* the caller suspends its connection while we hold the lock */
        pthread_mutex_unlock(&h->mu);
        return 0;
    }
}

void trace_hub_stats(struct trace_hub *h, struct trace_stats *ret)
{
    pthread_mutex_lock(&h->mu);
    ret->published = h->head;
    ret->subscribers = h->n_subs;
    ret->dropped = h->dropped;
    pthread_mutex_unlock(&h->mu);
}
