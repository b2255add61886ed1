/* trace/trace.c — the live trace hub (see trace.h).
 *
 * Workload: every authorization request publishes one entry (thousands per
 * second); a handful to hundreds of subscribers read, on the machine whose
 * CPU issuance needs. The request thread only swaps the event's JSON text (a
 * copy the audit writer made while serialising it) into the ring. Everything
 * else (parsing, rendering, filtering, writing to every socket) happens on the sender thread at nice 19, in batches at most every
 * WAKE_PERIOD_MS: when issuance saturates the CPU the sender gets little of
 * it, falls behind and drops entries, and issuance keeps its pace.
 *
 * Invariants: head counts entries ever published; ring slot seq % size holds
 * entry seq while head - size <= seq < head. An entry in that window is
 * either still in its ring slot (doc set: not rendered yet) or was taken out
 * by the sender and rendered into cache slot seq % size (cache seq == seq),
 * never both, so it is rendered once. Only the sender touches the cache, the
 * subscribers' list, its epoll set and the subscribers' sockets; publishers
 * and the sender share the ring, head and the incoming list under `mu`. */
#include "trace/trace.h"
#include "core/buf.h"
#include "core/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define KEEPALIVE_MS    15000
#define WAKE_PERIOD_MS  10             /* the sender runs at most this often: batches frames */
#define BATCH           256            /* entries per write (one iovec each, plus a marker) */
#define OUT_MAX         (256 * 1024)   /* bytes of one write, and of a subscriber's unsent tail */
#define ROUNDS          (4096 / BATCH) /* writes per subscriber and pass, so one cannot hog it */
#define GARBAGE_MAX     (4 * BATCH)   /* rendered texts waiting for a publisher to free them */
#define GARBAGE_PER_PUB 4             /* texts a publisher frees each time */
#define FRAME_FMT       "event: trace\ndata: %s\n\n"
#define KEEPALIVE_FRAME ": keep-alive\n\n"

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

/* A published entry: the event's JSON text (owned) until the sender takes it to render.
 * Text, not the publisher's json_t: one allocation crosses threads instead of the event's
 * tree of them, and the publisher frees its tree at once on its own thread (measured: a
 * kept tree made glibc's allocator the bottleneck once 100 subscribers listened). */
struct slot {
    char *doc;
    size_t len;
    struct trace_match m;
};

/* An entry as the sender rendered it: its frame and what the filters compare. */
struct rendered {
    uint64_t seq;
    bool valid;
    char *frame; /* "event: trace\ndata: {...}\n\n"; NULL: nothing to send */
    size_t len;
    enum trace_severity severity;
    char *client_ip, *client, *system; /* may be NULL */
};

struct sub {
    int fd;                /* borrowed: given back through release */
    struct trace_filter f; /* strings owned */
    uint64_t pos;          /* next entry to send */
    uint64_t lost;         /* entries dropped and not yet told */
    int64_t last_out_ms;
    struct buf out; /* bytes written by nobody yet: the head, or a batch's unsent tail */
    size_t off;
    bool in_epoll, want_out, blocked, gone;
    trace_release_fn release;
    void *arg;
    struct sub *next;
};

struct trace_hub {
    pthread_mutex_t mu;
    pthread_cond_t cv;                    /* the sender started / stopped */
    struct slot *ring;                    /* under mu */
    size_t size;                          /* power of two */
    uint64_t head;                        /* under mu; read atomically by the sender */
    struct sub *incoming;                 /* under mu: attached, not yet taken by the sender */
    bool closed, started, stopped, dirty; /* under mu */
    uint64_t n_subs, dropped, rendered, blocked; /* atomic */
    int priority_err;
    int64_t keepalive_ms;
    int wake_fd, ep;
    pthread_t thread;
    /* texts the sender rendered, for publishers to free (under mu): freeing them on the
     * sender would lock the publishing thread's malloc arena from a thread at nice 19,
     * and a publisher could wait for that lock while the sender waits for a CPU */
    char *garbage[GARBAGE_MAX];
    size_t n_garbage;
    /* the sender's own */
    char *done[BATCH]; /* rendered, not yet handed to publishers */
    size_t n_done;
    struct rendered *cache;
    struct sub *subs;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void signal_sender(struct trace_hub *h)
{
    uint64_t one = 1;
    ssize_t r = write(h->wake_fd, &one, sizeof(one)); /* EAGAIN: it is signalled already */
    (void)r;
}

static void rendered_clear(struct rendered *r)
{
    free(r->frame);
    free(r->client_ip);
    free(r->client);
    free(r->system);
    *r = (struct rendered){0};
}

static struct rendered *cached(struct trace_hub *h, uint64_t seq)
{
    struct rendered *r = &h->cache[seq & (h->size - 1)];
    return r->valid && r->seq == seq ? r : NULL;
}

/* Renders entry seq into its cache slot: the frame, once, and the fields filters compare. */
static void render(struct trace_hub *h, uint64_t seq, const char *doc, size_t len,
                   const struct trace_match *m)
{
    struct rendered *r = &h->cache[seq & (h->size - 1)];
    rendered_clear(r);
    r->seq = seq;
    r->valid = true;
    json_t *ev = json_loadb(doc, len, 0, NULL);
    json_t *e = ev ? trace_entry_from_event(ev, m) : NULL;
    char *data = e ? json_dumps(e, JSON_COMPACT) : NULL;
    if (data && strlen(data) < OUT_MAX / 2) { /* always: request sizes are capped far below */
        size_t n = strlen(data) + sizeof(FRAME_FMT);
        r->frame = malloc(n);
        if (r->frame)
            r->len = (size_t)snprintf(r->frame, n, FRAME_FMT, data);
    }
    free(data);
    r->severity = sev_parse(str(e, "severity"));
    r->client_ip = dup_or_null(str(e, "client_ip"));
    r->client = dup_or_null(str(ev, "client"));
    r->system = dup_or_null(str(ev, "system"));
    json_decref(e);
    json_decref(ev);
    __atomic_add_fetch(&h->rendered, 1, __ATOMIC_RELAXED);
}

static bool matches(const struct trace_filter *f, const struct rendered *e)
{
    if (!e->frame || e->severity < f->min_severity)
        return false;
    if (f->client_ip && (!e->client_ip || strcmp(f->client_ip, e->client_ip) != 0))
        return false;
    if (f->client && (!e->client || strcmp(f->client, e->client) != 0))
        return false;
    if (f->system && (!e->system || strcmp(f->system, e->system) != 0))
        return false;
    return true;
}

/* Entries before the oldest one still in the ring are lost to `s`: counted now, told
 * with its next write. */
static void note_lost(struct trace_hub *h, struct sub *s, uint64_t head)
{
    uint64_t oldest = head > h->size ? head - h->size : 0;
    if (s->pos < oldest) {
        s->lost += oldest - s->pos;
        __atomic_add_fetch(&h->dropped, oldest - s->pos, __ATOMIC_RELAXED);
        s->pos = oldest;
    }
}

/* Makes entries [s->pos, end) ready in the cache: the events of those not rendered yet
 * are taken out of the ring under the lock (which also settles what was lost meanwhile)
 * and rendered outside it, so publishers never wait for a rendering. */
static void take_and_render(struct trace_hub *h, struct sub *s, uint64_t end)
{
    uint64_t q = s->pos;
    while (q < end && cached(h, q))
        q++;
    if (q == end)
        return;
    struct {
        uint64_t seq;
        struct slot sl;
    } take[BATCH];
    size_t n = 0;
    pthread_mutex_lock(&h->mu);
    while (h->n_done && h->n_garbage < GARBAGE_MAX)
        h->garbage[h->n_garbage++] = h->done[--h->n_done];
    note_lost(h, s, h->head);
    for (q = q > s->pos ? q : s->pos; q < end; q++) {
        struct slot *sl = &h->ring[q & (h->size - 1)];
        if (sl->doc) {
            take[n].seq = q;
            take[n].sl = *sl;
            sl->doc = NULL;
            n++;
        }
    }
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < n; i++) {
        render(h, take[i].seq, take[i].sl.doc, take[i].sl.len, &take[i].sl.m);
        if (h->n_done < BATCH)
            h->done[h->n_done++] = take[i].sl.doc;
        else
            free(take[i].sl.doc); /* publishers stopped taking them: nobody to wait for */
    }
}

/* The socket is full (wait for EPOLLOUT) or not; counted for trace_hub_stats. */
static void set_blocked(struct trace_hub *h, struct sub *s, bool blocked)
{
    if (s->blocked != blocked)
        __atomic_add_fetch(&h->blocked, blocked ? 1 : (uint64_t)-1, __ATOMIC_RELAXED);
    s->blocked = blocked;
}

static void set_want_out(struct trace_hub *h, struct sub *s, bool want)
{
    if (s->want_out == want)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), .data.ptr = s};
    if (epoll_ctl(h->ep, EPOLL_CTL_MOD, s->fd, &ev) < 0)
        s->gone = true;
    s->want_out = want;
}

/* Writes what `s` has pending. 1: all of it went out; 0: the socket is full (the rest
 * waits for EPOLLOUT); ERR_IO: the peer is gone. */
static int flush_out(struct trace_hub *h, struct sub *s, int64_t now)
{
    while (s->off < s->out.len) {
        ssize_t n =
            send(s->fd, s->out.data + s->off, s->out.len - s->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_blocked(h, s, true);
            set_want_out(h, s, true);
            return 0;
        }
        if (n <= 0)
            return ERR_IO;
        s->off += (size_t)n;
        s->last_out_ms = now;
    }
    buf_reset(&s->out);
    s->off = 0;
    set_blocked(h, s, false);
    set_want_out(h, s, false);
    return 1;
}

/* Writes the iovecs (total bytes, at most OUT_MAX) in one call; what the socket does not
 * take is kept as the pending tail. 1, 0 or ERR_IO as flush_out. */
static int write_batch(struct trace_hub *h, struct sub *s, struct iovec *iov, int n, size_t total,
                       int64_t now)
{
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w;
    do
        w = sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return ERR_IO;
    size_t sent = w > 0 ? (size_t)w : 0;
    if (sent)
        s->last_out_ms = now;
    if (sent == total)
        return 1;
    for (int i = 0; i < n; i++) { /* copied: the cache slots may be reused meanwhile */
        size_t skip = sent < iov[i].iov_len ? sent : iov[i].iov_len;
        sent -= skip;
        if (buf_append(&s->out, (char *)iov[i].iov_base + skip, iov[i].iov_len - skip) < 0)
            return ERR_IO;
    }
    set_blocked(h, s, true);
    set_want_out(h, s, true);
    return 0;
}

/* One pass for one subscriber: its pending tail, then new entries in batches, or a
 * keep-alive. 1: more is ready than one pass sends; 0; ERR_IO: the stream is over. */
static int serve(struct trace_hub *h, struct sub *s, int64_t now)
{
    note_lost(h, s, __atomic_load_n(&h->head, __ATOMIC_ACQUIRE));
    if (s->off < s->out.len) {
        if (s->blocked)
            return 0; /* until EPOLLOUT */
        int r = flush_out(h, s, now);
        if (r <= 0)
            return r;
    }
    struct iovec iov[BATCH + 1];
    char marker[64];
    for (int round = 0; round < ROUNDS; round++) {
        uint64_t head = __atomic_load_n(&h->head, __ATOMIC_ACQUIRE);
        note_lost(h, s, head);
        if (s->pos >= head && !s->lost)
            break;
        uint64_t end = head - s->pos > BATCH ? s->pos + BATCH : head;
        take_and_render(h, s, end); /* may move pos past what was lost meanwhile */
        int n = 0;
        size_t total = 0;
        if (s->lost) {
            total = (size_t)snprintf(marker, sizeof(marker),
                                     "event: dropped\ndata: {\"count\": %llu}\n\n",
                                     (unsigned long long)s->lost);
            iov[n++] = (struct iovec){marker, total};
            s->lost = 0;
        }
        for (; s->pos < end; s->pos++) {
            const struct rendered *e = cached(h, s->pos);
            if (!e || !matches(&s->f, e))
                continue;
            if (total + e->len > OUT_MAX)
                break;
            iov[n++] = (struct iovec){e->frame, e->len};
            total += e->len;
        }
        if (!n)
            continue;
        int r = write_batch(h, s, iov, n, total, now);
        if (r <= 0)
            return r;
    }
    if (s->pos < __atomic_load_n(&h->head, __ATOMIC_ACQUIRE))
        return 1;
    if (s->off == s->out.len && now - s->last_out_ms >= h->keepalive_ms) {
        if (buf_puts(&s->out, KEEPALIVE_FRAME) < 0)
            return ERR_IO;
        int r = flush_out(h, s, now);
        if (r < 0)
            return r;
        s->last_out_ms = now; /* a keep-alive stuck in a full socket is not retried */
    }
    return 0;
}

static void sub_free(struct sub *s)
{
    free((char *)s->f.client_ip);
    free((char *)s->f.client);
    free((char *)s->f.system);
    buf_done(&s->out);
    free(s);
}

/* The stream is over: out of the epoll set first, then the socket goes back. */
static void sub_end(struct trace_hub *h, struct sub *s)
{
    if (s->in_epoll)
        epoll_ctl(h->ep, EPOLL_CTL_DEL, s->fd, NULL);
    set_blocked(h, s, false);
    s->release(s->arg);
    __atomic_sub_fetch(&h->n_subs, 1, __ATOMIC_RELAXED);
    sub_free(s);
}

/* The peer sent something: EOF or an error ends the stream, bytes are ignored. */
static void on_readable(struct sub *s)
{
    char scratch[512];
    ssize_t n = recv(s->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        s->gone = true;
}

/* The sender: waits for entries (the wake eventfd), socket events or the next keep-alive
 * check, serves every subscriber, then sleeps WAKE_PERIOD_MS so that a burst goes out in
 * few large writes. */
static void *run(void *p)
{
    struct trace_hub *h = p;
    /* raising one's own nice value needs no privilege; only this thread is affected */
    int prio = setpriority(PRIO_PROCESS, (id_t)gettid(), 19) < 0 ? -errno : 0;
    pthread_mutex_lock(&h->mu);
    h->priority_err = prio;
    h->started = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);

    struct epoll_event evs[64];
    bool more = false; /* a subscriber has entries left over from the last pass */
    for (;;) {
        /* every second at least: keep-alives are due on time */
        int n = epoll_wait(h->ep, evs, 64, more ? 0 : 1000);
        for (int i = 0; i < n; i++) {
            struct sub *s = evs[i].data.ptr;
            if (!s) {
                uint64_t v;
                ssize_t r = read(h->wake_fd, &v, sizeof(v));
                (void)r;
                continue;
            }
            if (evs[i].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
                s->gone = true;
            else if (evs[i].events & EPOLLIN)
                on_readable(s);
            if (evs[i].events & EPOLLOUT)
                set_blocked(h, s, false);
        }
        pthread_mutex_lock(&h->mu);
        bool closed = h->closed;
        struct sub *in = h->incoming;
        h->incoming = NULL;
        h->dirty = false;
        pthread_mutex_unlock(&h->mu);
        int64_t now = time_mono_ms();
        while (in) {
            struct sub *s = in;
            in = s->next;
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
            s->in_epoll = !closed && epoll_ctl(h->ep, EPOLL_CTL_ADD, s->fd, &ev) == 0;
            s->gone = !s->in_epoll;
            s->last_out_ms = now;
            s->next = h->subs;
            h->subs = s;
        }
        if (closed)
            break;
        more = false;
        for (struct sub **pp = &h->subs; *pp;) {
            struct sub *s = *pp;
            int r = s->gone ? ERR_IO : serve(h, s, now);
            if (r < 0 || s->gone) {
                *pp = s->next;
                sub_end(h, s);
            } else {
                more |= r > 0;
                pp = &s->next;
            }
        }
        struct timespec z = {0, WAKE_PERIOD_MS * 1000000L};
        nanosleep(&z, NULL);
    }
    while (h->subs) {
        struct sub *s = h->subs;
        h->subs = s->next;
        sub_end(h, s);
    }
    pthread_mutex_lock(&h->mu);
    h->stopped = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void hub_destroy(struct trace_hub *h)
{
    for (size_t i = 0; h->ring && i < h->size; i++)
        free(h->ring[i].doc);
    for (size_t i = 0; i < h->n_garbage; i++)
        free(h->garbage[i]);
    for (size_t i = 0; i < h->n_done; i++)
        free(h->done[i]);
    for (size_t i = 0; h->cache && i < h->size; i++)
        rendered_clear(&h->cache[i]);
    free(h->ring);
    free(h->cache);
    if (h->wake_fd >= 0)
        close(h->wake_fd);
    if (h->ep >= 0)
        close(h->ep);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

int trace_hub_new(size_t ring, unsigned keepalive_ms, struct trace_hub **ret)
{
    size_t size = 64;
    while (size < ring && size < (1u << 20))
        size <<= 1;
    struct trace_hub *h = calloc(1, sizeof(*h));
    if (!h)
        return ERR_NOMEM;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->size = size;
    h->keepalive_ms = keepalive_ms ? keepalive_ms : KEEPALIVE_MS;
    h->ring = calloc(size, sizeof(*h->ring));
    h->cache = calloc(size, sizeof(*h->cache));
    h->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    h->ep = epoll_create1(EPOLL_CLOEXEC);
    if (!h->ring || !h->cache || h->wake_fd < 0 || h->ep < 0) {
        int err = h->ring && h->cache ? ERR_INTERNAL : ERR_NOMEM;
        hub_destroy(h);
        return err;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(h->ep, EPOLL_CTL_ADD, h->wake_fd, &ev) < 0 ||
        pthread_create(&h->thread, NULL, run, h) != 0) {
        hub_destroy(h);
        return ERR_INTERNAL;
    }
    pthread_mutex_lock(&h->mu);
    while (!h->started)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    *ret = h;
    return 0;
}

void trace_hub_close(struct trace_hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    bool first = !h->closed;
    h->closed = true;
    pthread_mutex_unlock(&h->mu);
    if (first) {
        signal_sender(h);
        pthread_join(h->thread, NULL);
        return;
    }
    pthread_mutex_lock(&h->mu); /* a concurrent close returns once the sender is gone too */
    while (!h->stopped)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

struct trace_hub *trace_hub_free(struct trace_hub *h)
{
    if (!h)
        return NULL;
    trace_hub_close(h);
    hub_destroy(h);
    return NULL;
}

static bool is_request(const json_t *ev)
{
    const char *t = str(ev, "type");
    return t && (strcmp(t, "token.request") == 0 || strcmp(t, "authorize.request") == 0 ||
                 strcmp(t, "client.register") == 0);
}

/* The compact JSON of an authorization request's event? (A false match costs a slot
 * that renders to nothing: trace_entry_from_event reads the type again.) */
static bool is_request_text(const char *doc, size_t len)
{
    static const char *const types[] = {"\"type\":\"token.request\"",
                                        "\"type\":\"authorize.request\"",
                                        "\"type\":\"client.register\""};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (memmem(doc, len, types[i], strlen(types[i])))
            return true;
    return false;
}

bool trace_listening(struct trace_hub *h)
{
    return h && __atomic_load_n(&h->n_subs, __ATOMIC_RELAXED);
}

void trace_publish_text(struct trace_hub *h, char *doc, size_t len, const struct trace_match *m)
{
    if (!doc)
        return;
    if (!trace_listening(h) || !is_request_text(doc, len)) {
        free(doc);
        return;
    }
    struct slot ns = {doc, len, m ? *m : (struct trace_match){0}};
    char *freed[GARBAGE_PER_PUB];
    size_t n_freed = 0;
    pthread_mutex_lock(&h->mu);
    while (h->n_garbage && n_freed < GARBAGE_PER_PUB)
        freed[n_freed++] = h->garbage[--h->n_garbage];
    struct slot *sl = &h->ring[h->head & (h->size - 1)];
    char *old = sl->doc; /* not taken by the sender: it fell behind */
    *sl = ns;
    __atomic_store_n(&h->head, h->head + 1, __ATOMIC_RELEASE);
    bool wake = !h->dirty; /* the sender is idle: once per pass at most */
    h->dirty = true;
    pthread_mutex_unlock(&h->mu);
    if (wake)
        signal_sender(h);
    free(old);
    for (size_t i = 0; i < n_freed; i++)
        free(freed[i]);
}

void trace_publish_event(struct trace_hub *h, const json_t *ev, const struct trace_match *m)
{
    /* nobody listening: nothing to keep (the common case costs one atomic read) */
    if (!ev || !trace_listening(h) || !is_request(ev))
        return;
    char *doc = json_dumps(ev, JSON_COMPACT);
    if (doc)
        trace_publish_text(h, doc, strlen(doc), m);
}

int trace_attach(struct trace_hub *h, int fd, const struct trace_filter *f, const char *head,
                 size_t head_len, trace_release_fn release, void *arg)
{
    struct sub *s = calloc(1, sizeof(*s));
    int err = ERR_NOMEM;
    if (!s)
        goto fail;
    s->fd = fd;
    s->release = release;
    s->arg = arg;
    buf_init(&s->out, OUT_MAX);
    s->f.min_severity = f ? f->min_severity : TRACE_INFO;
    s->f.client_ip = f ? dup_or_null(f->client_ip) : NULL;
    s->f.client = f ? dup_or_null(f->client) : NULL;
    s->f.system = f ? dup_or_null(f->system) : NULL;
    if ((f && ((f->client_ip && !s->f.client_ip) || (f->client && !s->f.client) ||
               (f->system && !s->f.system))) ||
        buf_append(&s->out, head ? head : "", head_len) < 0)
        goto fail;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
        err = ERR_IO;
        goto fail;
    }
    pthread_mutex_lock(&h->mu);
    if (h->closed) {
        pthread_mutex_unlock(&h->mu);
        err = ERR_IO;
        goto fail;
    }
    s->pos = h->head;
    s->next = h->incoming;
    h->incoming = s;
    __atomic_add_fetch(&h->n_subs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&h->mu);
    signal_sender(h);
    return 0;
fail:
    if (s)
        sub_free(s);
    release(arg);
    return err;
}

void trace_hub_stats(struct trace_hub *h, struct trace_stats *ret)
{
    pthread_mutex_lock(&h->mu);
    ret->published = h->head;
    ret->priority_err = h->priority_err;
    pthread_mutex_unlock(&h->mu);
    ret->subscribers = __atomic_load_n(&h->n_subs, __ATOMIC_RELAXED);
    ret->dropped = __atomic_load_n(&h->dropped, __ATOMIC_RELAXED);
    ret->rendered = __atomic_load_n(&h->rendered, __ATOMIC_RELAXED);
    ret->blocked = __atomic_load_n(&h->blocked, __ATOMIC_RELAXED);
}
