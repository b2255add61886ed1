/* trace/trace.c — the live trace hub (see trace.h).
 *
 * Workload: every authorization request publishes one entry (thousands per
 * second); a handful to hundreds of subscribers read, on the machine whose
 * CPU issuance needs. The request thread takes no lock: it numbers its entry
 * with one atomic add and swaps it (the event's JSON text, a copy the audit
 * writer made while serialising it) into the ring slot of that number.
 * Everything else (parsing, rendering, filtering, writing to every socket)
 * happens on the sender thread at the lowest CPU priority (SCHED_IDLE), in
 * passes at most every WAKE_PERIOD_MS: when issuance saturates the CPU the
 * sender gets little of it, falls behind and drops entries, and issuance keeps
 * its pace. Because publishers never wait for the sender, a sender preempted
 * anywhere (even for seconds) delays only the trace.
 *
 * Invariants: head counts entries ever published (a publisher's atomic add
 * gives its entry's number). Ring slot q % size holds the node of entry q
 * from when its publisher swaps it in until the sender takes it out (or a
 * publisher a lap later swaps it out: lost). The sender takes entries in
 * order into its own cache, rendered: cache slot q % size holds entry q for
 * q in [tail - size, tail) unless q was lost. Only the sender touches the
 * cache, the subscribers' list, its epoll set and the subscribers' sockets.
 * Memory a publisher allocated is freed by publishers: the sender pushes what
 * it took onto a lock-free stack that the next publisher empties (freeing it
 * on the sender would take that publisher's malloc arena lock from a thread
 * that may wait long for a CPU while holding it). */
#include "trace/trace.h"
#include "core/buf.h"
#include "core/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
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

#define KEEPALIVE_MS      15000
#define WAKE_PERIOD_MS    10             /* the sender runs at most this often: batches frames */
#define PERIOD_PER_SUB_US 1000           /* ... and with many streams at most every 1 ms each */
#define BATCH             256            /* entries per write (one iovec each, plus a marker) */
#define OUT_MAX           (256 * 1024)   /* bytes of one write, and of a subscriber's unsent tail */
#define ROUNDS            (4096 / BATCH) /* writes per subscriber and pass, so one cannot hog it */
#define BUDGET_WINDOW_MS  100            /* the machine's idle time is read this often */
#define BUDGET_IDLE_DIV   2              /* the sender may use half the CPU left idle */
#define BUDGET_RESERVE_PM 100            /* beyond this much of all CPUs' time left idle */
#define BUDGET_FLOOR_PM   10             /* per mille of one core the sender may always use */
#define BUDGET_MAX_US     200000         /* CPU saved up in a quiet spell, for a burst */
#define BUDGET_DEBT_US    50000          /* at most this much owed after a long pass */
/* an entry not in its slot this long after its number was taken is given up as lost */
#define STALL_MS        100
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
            buf_printf(b, "%s%s%s%s%s",
                       denied++  ? ", "
                       : granted ? "; denied "
                                 : "denied ",
                       str(sc, "name"), r ? " (" : "",
                       !r                                    ? ""
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
                   resource   ? "resource "
                   : audience ? "audience "
                              : "no resource or audience",
                   resource   ? resource
                   : audience ? audience
                              : "",
                   "");
    } else if (reason && strcmp(reason, "no_access_policy") == 0) {
        sev = TRACE_WARNING;
        buf_printf(&msg,
                   "Both workloads matched (%s, %s); the access policy is inactive or does "
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
        "server_workload", system, "severity", sev_names[sev], "message", msg.data ? msg.data : "",
        "event_id", str(ev, "id"));
    buf_done(&msg);
    return e;
}

/* ---- hub ---- */

/* A published entry: the event's JSON text (owned). Text, not the publisher's json_t:
 * one allocation crosses threads instead of the event's tree of them, and the publisher
 * frees its tree at once on its own thread (measured: a kept tree made glibc's
 * allocator the bottleneck once 100 subscribers listened). */
struct node {
    uint64_t seq;
    char *doc;
    size_t len;
    struct trace_match m;
    struct node *next; /* on the garbage stack */
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
    /* shared, lock-free (__atomic builtins) */
    struct node **ring; /* size slots, power of two */
    size_t size;
    uint64_t head;        /* entries published */
    struct sub *incoming; /* stack: attached, not yet taken by the sender */
    struct node *garbage; /* stack: taken by the sender, for publishers to free */
    struct sub *dead;     /* stack: ended streams, for publishers to free */
    bool closed, stopped, idle;
    uint64_t n_subs, dropped, rendered, blocked, throttled;
    int priority_err;
    /* start and stop hand-shakes only: never taken by a publisher */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, joined;
    int64_t keepalive_ms;
    int wake_fd, ep;
    pthread_t thread;
    /* the sender's own */
    struct budget {
        int stat_fd;     /* /proc/stat (or a test's file); -1: no budget */
        int64_t tick_us; /* one clock tick of /proc/stat */
        int64_t ncpu;
        uint64_t idle; /* idle + iowait ticks, all CPUs, at window_ms */
        int64_t window_ms;
        int64_t tokens_us; /* CPU the sender may still use */
    } budget;
    uint64_t tail; /* next entry to take from the ring */
    int64_t stall_since_ms;
    struct rendered *cache;
    struct sub *subs;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Treiber stacks: pushes from any thread, and a consumer that takes the whole stack at
 * once (so no pop can meet a node pushed again: no ABA). Sequentially consistent, as
 * attach's and the sender's hand-shake at stop need (free on x86: locked instructions). */
#define STACK_PUSH(top, item)                                                                      \
    do {                                                                                           \
        (item)->next = __atomic_load_n((top), __ATOMIC_RELAXED);                                   \
        while (!__atomic_compare_exchange_n((top), &(item)->next, (item), true, __ATOMIC_SEQ_CST,  \
                                            __ATOMIC_RELAXED))                                     \
            ;                                                                                      \
    } while (0)
#define STACK_TAKE(top) __atomic_exchange_n((top), NULL, __ATOMIC_SEQ_CST)

static void node_free(struct node *n)
{
    free(n->doc);
    free(n);
}

static void sub_free(struct sub *s);

/* What the sender took and what streams ended: freed by a publisher (or by the sender
 * when nobody publishes; then no publisher can wait for its arena). */
static void free_garbage(struct trace_hub *h)
{
    if (__atomic_load_n(&h->garbage, __ATOMIC_RELAXED))
        for (struct node *n = STACK_TAKE(&h->garbage), *next; n; n = next) {
            next = n->next;
            node_free(n);
        }
    if (__atomic_load_n(&h->dead, __ATOMIC_RELAXED))
        for (struct sub *d = STACK_TAKE(&h->dead), *next; d; d = next) {
            next = d->next;
            sub_free(d);
        }
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

/* Entries `s` can no longer get are lost to it: counted now, told with its next write.
 * Those before the cache's window (rendered, then overwritten), and those not taken
 * yet that the ring lapped (publishers freed them). Counted even while `s` is stalled:
 * /metrics shows a stuck reader's losses as they happen. */
static void note_lost(struct trace_hub *h, struct sub *s)
{
    uint64_t head = __atomic_load_n(&h->head, __ATOMIC_ACQUIRE);
    uint64_t oldest = h->tail > h->size ? h->tail - h->size : 0;
    if (s->pos >= h->tail && head > h->size && head - h->size > s->pos)
        oldest = head - h->size;
    if (s->pos < oldest) {
        s->lost += oldest - s->pos;
        __atomic_add_fetch(&h->dropped, oldest - s->pos, __ATOMIC_RELAXED);
        s->pos = oldest;
    }
}

/* Takes entries up to `upto` out of the ring, in order, and renders them into the
 * cache: lazily, when a subscriber that can write needs them (a stalled one costs no
 * rendering). An entry whose publisher has its number but has not swapped it in yet (a
 * few instructions) stops here; it is taken next time, unless that lasted STALL_MS or
 * the ring lapped it: then it is lost, and every subscriber is told so. */
static void consume(struct trace_hub *h, int64_t now, uint64_t upto)
{
    uint64_t head = __atomic_load_n(&h->head, __ATOMIC_SEQ_CST);
    if (head - h->tail > h->size) { /* the ring lapped the sender: lost, not in the cache */
        h->tail = head - h->size;
        h->stall_since_ms = 0;
    }
    if (upto > head)
        upto = head;
    while (h->tail < upto) {
        uint64_t q = h->tail;
        struct node **slot = &h->ring[q & (h->size - 1)];
        struct node *n = __atomic_exchange_n(slot, NULL, __ATOMIC_SEQ_CST);
        if (n && n->seq > q) {
            /* published a lap later, after `head` was read: q was lost; n goes back,
             * unless yet another lap took the slot meanwhile (then n is lost too) */
            struct node *none = NULL;
            if (!__atomic_compare_exchange_n(slot, &none, n, false, __ATOMIC_SEQ_CST,
                                             __ATOMIC_RELAXED))
                STACK_PUSH(&h->garbage, n);
        } else if (!n || n->seq < q) {
            if (n) /* a straggler of an older lap, given up already */
                STACK_PUSH(&h->garbage, n);
            if (!h->stall_since_ms)
                h->stall_since_ms = now ? now : 1;
            if (now - h->stall_since_ms < STALL_MS)
                return;
        } else {
            render(h, q, n->doc, n->len, &n->m);
            STACK_PUSH(&h->garbage, n);
        }
        h->stall_since_ms = 0;
        h->tail++;
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
    note_lost(h, s);
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
        consume(h, now, head - s->pos > BATCH ? s->pos + BATCH : head);
        note_lost(h, s); /* the ring may have lapped the sender meanwhile */
        uint64_t end = h->tail;
        /* entries lost before the sender took them: told first */
        for (; s->pos < end && !cached(h, s->pos); s->pos++) {
            s->lost++;
            __atomic_add_fetch(&h->dropped, 1, __ATOMIC_RELAXED);
        }
        if (s->pos >= end && !s->lost)
            break;
        if (end - s->pos > BATCH)
            end = s->pos + BATCH;
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
            if (!e)
                break; /* lost: told by the next batch's marker */
            if (!matches(&s->f, e))
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

/* The stream is over: out of the epoll set first, then the socket goes back; the
 * memory (the attaching thread's) is freed by a publisher. */
static void sub_end(struct trace_hub *h, struct sub *s)
{
    if (s->in_epoll)
        epoll_ctl(h->ep, EPOLL_CTL_DEL, s->fd, NULL);
    set_blocked(h, s, false);
    s->release(s->arg);
    __atomic_sub_fetch(&h->n_subs, 1, __ATOMIC_SEQ_CST);
    STACK_PUSH(&h->dead, s);
}

/* The peer sent something: EOF or an error ends the stream, bytes are ignored. */
static void on_readable(struct sub *s)
{
    char scratch[512];
    ssize_t n = recv(s->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        s->gone = true;
}

/* ---- the sender's CPU budget ----
 *
 * SCHED_IDLE alone did not keep the sender off issuance's CPU: on this kernel (EEVDF,
 * 6.18) it and the subscribers' readers still took a tenth of two saturated cores. So
 * the sender also budgets itself: it may use half the CPU the machine left idle beyond
 * BUDGET_RESERVE_PM of its capacity (read from /proc/stat every BUDGET_WINDOW_MS; not
 * all of it: a thread using "idle" CPU still delays the wake-ups of the others, and on
 * the same machine its readers use CPU in proportion), plus a floor of BUDGET_FLOOR_PM
 * per mille of one core so that a busy machine's trace still moves (with `dropped`
 * markers for the rest). A pass that finds the budget spent serves nobody; entries
 * wait in the ring and those it laps are dropped, never rendered. */
static bool read_idle(int fd, uint64_t *ret)
{
    char b[512];
    ssize_t n = pread(fd, b, sizeof(b) - 1, 0);
    if (n <= 0)
        return false;
    b[n] = '\0';
    unsigned long long idle, iowait; /* after user, nice, system */
    if (sscanf(b, "cpu %*u %*u %*u %llu %llu", &idle, &iowait) != 2)
        return false;
    *ret = (uint64_t)(idle + iowait);
    return true;
}

static int64_t thread_cpu_us(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) < 0)
        return 0;
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void budget_init(struct budget *b, const char *stat_path)
{
    *b = (struct budget){.stat_fd = -1}; /* earned from the first window on */
    long hz = sysconf(_SC_CLK_TCK);
    if (!stat_path || hz <= 0)
        return;
    b->tick_us = 1000000 / hz;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    b->ncpu = n > 0 ? n : 1;
    b->stat_fd = open(stat_path, O_RDONLY | O_CLOEXEC);
    if (b->stat_fd >= 0 && !read_idle(b->stat_fd, &b->idle)) {
        close(b->stat_fd);
        b->stat_fd = -1;
    }
    b->window_ms = time_mono_ms();
}

static void budget_refill(struct budget *b, int64_t now)
{
    if (b->stat_fd < 0 || now - b->window_ms < BUDGET_WINDOW_MS)
        return;
    uint64_t idle;
    if (!read_idle(b->stat_fd, &idle)) {
        close(b->stat_fd); /* unreadable now: no budget from here on */
        b->stat_fd = -1;
        return;
    }
    /* idle time below the reserve is the jitter of a saturated machine (I/O waits, the
     * gaps between a request's threads), not spare CPU: using it slowed issuance */
    int64_t elapsed_us = (now - b->window_ms) * 1000;
    int64_t spare = (idle > b->idle ? (int64_t)(idle - b->idle) * b->tick_us : 0) -
                    elapsed_us * b->ncpu * BUDGET_RESERVE_PM / 1000;
    int64_t gain = (spare > 0 ? spare / BUDGET_IDLE_DIV : 0) + elapsed_us * BUDGET_FLOOR_PM / 1000;
    b->tokens_us = b->tokens_us + gain > BUDGET_MAX_US ? BUDGET_MAX_US : b->tokens_us + gain;
    b->idle = idle;
    b->window_ms = now;
}

static bool budget_allows(const struct budget *b)
{
    return b->stat_fd < 0 || b->tokens_us > 0;
}

static void budget_spend(struct budget *b, int64_t us)
{
    if (b->stat_fd < 0)
        return;
    b->tokens_us -= us;
    if (b->tokens_us < -BUDGET_DEBT_US)
        b->tokens_us = -BUDGET_DEBT_US;
}

/* The sender's priority: SCHED_IDLE, the CPU nothing else wants (nice 19 still took a
 * fifth of a core from saturated issuance: a thread that sleeps between passes wakes
 * with EEVDF credit); nice 19 where SCHED_IDLE is refused. 0 or -errno. */
static int lower_priority(void)
{
    struct sched_param sp = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0)
        return 0;
    /* raising one's own nice value needs no privilege; only this thread is affected */
    return setpriority(PRIO_PROCESS, (id_t)gettid(), 19) < 0 ? -errno : 0;
}

/* The sender: waits for entries (the wake eventfd), socket events or the next keep-alive
 * check, serves every subscriber, then sleeps WAKE_PERIOD_MS so that a burst goes out in
 * few large writes. */
static void *run(void *p)
{
    struct trace_hub *h = p;
    __atomic_store_n(&h->priority_err, lower_priority(), __ATOMIC_RELAXED);
    pthread_mutex_lock(&h->mu);
    h->started = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);

    struct epoll_event evs[64];
    bool more = false; /* a subscriber has entries left over from the last pass */
    uint64_t seen = 0; /* head when the last pass began */
    uint64_t last_head = 0;
    for (;;) {
        /* idle: a publisher signals (once) when it publishes; every second at least, so
         * keep-alives are due on time. An entry published during the last pass, before
         * `idle` was set, is seen here (both sides sequentially consistent). */
        int timeout = more ? 0 : 1000;
        if (!more) {
            __atomic_store_n(&h->idle, true, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&h->head, __ATOMIC_SEQ_CST) != seen)
                timeout = 0;
        }
        int n = epoll_wait(h->ep, evs, 64, timeout);
        __atomic_store_n(&h->idle, false, __ATOMIC_SEQ_CST);
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
        if (__atomic_load_n(&h->closed, __ATOMIC_SEQ_CST))
            break;
        int64_t now = time_mono_ms();
        seen = __atomic_load_n(&h->head, __ATOMIC_SEQ_CST);
        for (struct sub *in = STACK_TAKE(&h->incoming), *next; in; in = next) {
            struct sub *s = in;
            next = s->next;
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
            s->in_epoll = epoll_ctl(h->ep, EPOLL_CTL_ADD, s->fd, &ev) == 0;
            s->gone = !s->in_epoll;
            s->last_out_ms = now;
            s->next = h->subs;
            h->subs = s;
        }
        more = false;
        unsigned n_streams = 0;
        budget_refill(&h->budget, now);
        bool allowed = budget_allows(&h->budget);
        if (!allowed)
            __atomic_add_fetch(&h->throttled, 1, __ATOMIC_RELAXED);
        int64_t cpu0 = h->budget.stat_fd >= 0 ? thread_cpu_us() : 0;
        for (struct sub **pp = &h->subs; *pp;) {
            struct sub *s = *pp;
            int r = s->gone ? ERR_IO : allowed ? serve(h, s, now) : 0;
            if (r < 0 || s->gone) {
                *pp = s->next;
                sub_end(h, s);
            } else {
                more |= r > 0;
                n_streams++;
                pp = &s->next;
            }
        }
        if (allowed)
            budget_spend(&h->budget, thread_cpu_us() - cpu0);
        if (!allowed && n_streams) /* come back next period, not only when woken */
            more = true;
        /* nobody published during the pass: no publisher can wait for an arena lock */
        uint64_t head = __atomic_load_n(&h->head, __ATOMIC_RELAXED);
        if (head == last_head)
            free_garbage(h);
        last_head = head;
        /* a write costs a syscall here and a wake-up at each reader whatever it carries:
         * with many streams, fewer and larger writes (100 streams: each every 100 ms, so
         * about 1,000 writes a second in all) */
        int64_t period_us = (int64_t)n_streams * PERIOD_PER_SUB_US;
        if (period_us < WAKE_PERIOD_MS * 1000)
            period_us = WAKE_PERIOD_MS * 1000;
        if (period_us > 1000000)
            period_us = 1000000;
        struct timespec z = {period_us / 1000000, (period_us % 1000000) * 1000};
        nanosleep(&z, NULL);
    }
    /* stopped first, then what is attached: a late trace_attach sees `stopped` and ends
     * what is left itself (both take the whole incoming stack: each stream ends once) */
    __atomic_store_n(&h->stopped, true, __ATOMIC_SEQ_CST);
    for (struct sub *in = STACK_TAKE(&h->incoming), *next; in; in = next) {
        next = in->next;
        in->next = h->subs;
        h->subs = in;
    }
    while (h->subs) {
        struct sub *s = h->subs;
        h->subs = s->next;
        sub_end(h, s);
    }
    pthread_mutex_lock(&h->mu);
    h->joined = true; /* for concurrent closers: the sender is done */
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void hub_destroy(struct trace_hub *h)
{
    for (size_t i = 0; h->ring && i < h->size; i++)
        if (h->ring[i])
            node_free(h->ring[i]);
    free_garbage(h);
    for (size_t i = 0; h->cache && i < h->size; i++)
        rendered_clear(&h->cache[i]);
    free(h->ring);
    free(h->cache);
    if (h->wake_fd >= 0)
        close(h->wake_fd);
    if (h->ep >= 0)
        close(h->ep);
    if (h->budget.stat_fd >= 0)
        close(h->budget.stat_fd);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

int trace_hub_new(size_t ring, unsigned keepalive_ms, struct trace_hub **ret)
{
    return trace_hub_new_budgeted(ring, keepalive_ms, NULL, ret);
}

int trace_hub_new_budgeted(size_t ring, unsigned keepalive_ms, const char *cpu_stat,
                           struct trace_hub **ret)
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
    budget_init(&h->budget, cpu_stat);
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
    if (!__atomic_exchange_n(&h->closed, true, __ATOMIC_SEQ_CST)) {
        signal_sender(h);
        pthread_join(h->thread, NULL);
        return;
    }
    pthread_mutex_lock(&h->mu); /* a concurrent close returns once the sender is gone too */
    while (!h->joined)
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
    free_garbage(h);
    struct node *n = malloc(sizeof(*n));
    if (!n) {
        free(doc);
        return;
    }
    *n = (struct node){.doc = doc, .len = len, .m = m ? *m : (struct trace_match){0}};
    n->seq = __atomic_fetch_add(&h->head, 1, __ATOMIC_SEQ_CST);
    struct node *old = __atomic_exchange_n(&h->ring[n->seq & (h->size - 1)], n, __ATOMIC_SEQ_CST);
    if (old) /* not taken by the sender: it fell a lap behind */
        node_free(old);
    /* the sender waits for entries: wake it, once */
    if (__atomic_load_n(&h->idle, __ATOMIC_SEQ_CST) &&
        __atomic_exchange_n(&h->idle, false, __ATOMIC_SEQ_CST))
        signal_sender(h);
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
    if (__atomic_load_n(&h->closed, __ATOMIC_SEQ_CST)) {
        err = ERR_IO;
        goto fail;
    }
    s->pos = __atomic_load_n(&h->head, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&h->n_subs, 1, __ATOMIC_SEQ_CST);
    STACK_PUSH(&h->incoming, s);
    if (__atomic_load_n(&h->stopped, __ATOMIC_SEQ_CST)) {
        /* the sender stopped meanwhile and may not have seen this one: what it left is
         * ended here (released on this thread) */
        for (struct sub *x = STACK_TAKE(&h->incoming), *next; x; x = next) {
            next = x->next;
            sub_end(h, x); /* never in the epoll set; its memory waits for hub_destroy */
        }
        return 0;
    }
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
    ret->published = __atomic_load_n(&h->head, __ATOMIC_RELAXED);
    ret->priority_err = __atomic_load_n(&h->priority_err, __ATOMIC_RELAXED);
    ret->subscribers = __atomic_load_n(&h->n_subs, __ATOMIC_RELAXED);
    ret->dropped = __atomic_load_n(&h->dropped, __ATOMIC_RELAXED);
    ret->rendered = __atomic_load_n(&h->rendered, __ATOMIC_RELAXED);
    ret->blocked = __atomic_load_n(&h->blocked, __ATOMIC_RELAXED);
    ret->throttled = __atomic_load_n(&h->throttled, __ATOMIC_RELAXED);
}
