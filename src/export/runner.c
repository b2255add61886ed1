/* export/runner.c — one worker per exporter (see runner.h).
 *
 * Invariant: a worker's persisted cursor is never past an event its sink has
 * not settled (acknowledged, or refused for good and parked as a dead letter).
 * A crash or kill therefore re-sends at most the batch in flight: delivery is
 * at least once, ordered by seq per exporter, and receivers drop duplicates by
 * the event id.
 *
 * A worker holds at most one batch (max_events records) in memory, so an
 * outage costs no memory: the backlog is the audit log itself. */
#include "export/runner.h"
#include "audit/audit.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "export/sink.h"
#include "logs/scim.h"
#include "store/store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_BASE_MS 200
#define BACKOFF_CAP_MS 30000
#define IDLE_POLL_MS 1000 /* events written by another node or process show up this fast */
#define RECENT_DEAD_LETTERS 20
#define RECORD_MAX (1024 * 1024)

enum wstate { W_STARTING, W_IDLE, W_SENDING, W_BACKOFF, W_PAUSED, W_BROKEN, W_STOPPED };
static const char *const state_names[] = {"starting", "idle",   "sending", "backoff",
                                          "paused",   "broken", "stopped"};

struct worker {
    struct export_manager *m;
    char *id;
    json_t *doc; /* the stored object this worker runs */
    struct exporter_config cfg;
    struct store_filter *filter;
    const struct sink_ops *ops;
    struct sink *sink;
    pthread_t thread;
    bool started;
    bool stop;     /* guarded by m->mu */
    /* statistics, guarded by m->mu */
    enum wstate state;
    int64_t cursor, delivered, retries, failures, dead;
    int64_t last_error_at, last_delivery_at;
    char last_error[256];
    struct worker *next;
};

struct export_manager {
    struct export_manager_config cfg;
    char *store_url, *node;
    struct store *st; /* status queries and cursor bookkeeping outside workers */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t gen; /* bumped by notify */
    struct worker *workers;
    /* removed workers' counters are gone with them; these are the totals of live ones */
};

static int64_t now_ms(void)
{
    return time_now_us() / 1000;
}

static void abs_deadline(struct timespec *ts, int64_t ms_from_now)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms_from_now / 1000;
    ts->tv_nsec += (ms_from_now % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits up to ms for notify() or stop; returns true when stopping. m->mu held. */
static bool wait_locked(struct worker *w, int64_t ms)
{
    if (w->stop)
        return true;
    struct timespec ts;
    abs_deadline(&ts, ms);
    uint64_t g = w->m->gen;
    while (!w->stop && g == w->m->gen)
        if (pthread_cond_timedwait(&w->m->cv, &w->m->mu, &ts) != 0)
            break;
    return w->stop;
}

/* Sleeps ms, woken early only by stop. */
static bool sleep_unless_stopped(struct worker *w, int64_t ms)
{
    struct timespec ts;
    abs_deadline(&ts, ms);
    pthread_mutex_lock(&w->m->mu);
    while (!w->stop)
        if (pthread_cond_timedwait(&w->m->cv, &w->m->mu, &ts) != 0)
            break;
    bool stop = w->stop;
    pthread_mutex_unlock(&w->m->mu);
    return stop;
}

static void set_state(struct worker *w, enum wstate s)
{
    pthread_mutex_lock(&w->m->mu);
    w->state = s;
    pthread_mutex_unlock(&w->m->mu);
}

static void set_error(struct worker *w, const char *msg)
{
    pthread_mutex_lock(&w->m->mu);
    snprintf(w->last_error, sizeof(w->last_error), "%.250s", msg && *msg ? msg : "unknown error");
    w->last_error_at = now_ms();
    pthread_mutex_unlock(&w->m->mu);
}

/* ---- one batch ---- */

struct fetched {
    struct export_record *rec;
    json_t **evs;
    struct buf *data;
    size_t n, cap;
    int64_t last_seq;
};

static void fetched_reset(struct fetched *f)
{
    for (size_t i = 0; i < f->n; i++) {
        json_decref(f->evs[i]);
        f->evs[i] = NULL;
        buf_reset(&f->data[i]); /* storage kept for the next batch */
    }
    f->n = 0;
    f->last_seq = 0;
}

static void fetched_done(struct fetched *f)
{
    fetched_reset(f);
    for (size_t i = 0; f->data && i < f->cap; i++)
        buf_done(&f->data[i]);
    free(f->rec);
    free(f->evs);
    free(f->data);
    *f = (struct fetched){0};
}

static const char *str_of(const json_t *ev, const char *k)
{
    const char *s = json_string_value(json_object_get(ev, k));
    return s ? s : "";
}

struct fetch_ctx {
    struct fetched *f;
    enum audit_format fmt;
};

/* One record: its encoding, then its id, time, type and severity, NUL-separated in one
 * buffer. JSON is the stored document itself (canonical already, as downloads send it):
 * no parse, no re-encoding — the exporter's hot path. */
static int fetch_one(const struct store_event *row, void *arg)
{
    struct fetch_ctx *c = arg;
    struct fetched *f = c->f;
    if (f->n == f->cap)
        return 1; /* cannot happen: the query's limit is the capacity */
    size_t i = f->n;
    struct buf *b = &f->data[i];
    json_t *ev = NULL;
    /* an event that does not parse or encode still takes its place: the sink gets an
     * empty record it will refuse, and it is parked, never silently skipped */
    if (c->fmt == AUDIT_FMT_JSON) {
        buf_puts(b, row->doc);
    } else if ((ev = json_loads(row->doc, 0, NULL)) != NULL) {
        audit_encode(c->fmt, ev, b);
    }
    size_t len = b->len, at[4];
    const char *meta[4] = {row->id, row->time, row->type, row->severity};
    for (int k = 0; k < 4; k++) {
        buf_append(b, "", 1);
        at[k] = b->len;
        buf_puts(b, meta[k] ? meta[k] : "");
    }
    f->evs[i] = ev;
    f->last_seq = row->seq;
    const char *base = b->data ? b->data : "";
    bool whole = b->data && b->len > at[3];
    f->rec[i] = (struct export_record){
        .seq = row->seq,
        .id = whole ? base + at[0] : "",
        .time = whole ? base + at[1] : "",
        .type = whole ? base + at[2] : "",
        .severity = whole ? base + at[3] : "",
        .ev = ev,
        .data = base,
        .len = b->data ? len : 0,
    };
    f->n++;
    return 0;
}

/* Parks records [from, to) marked rejected (or all of them when `all`). */
static void park(struct worker *w, struct store *st, const struct fetched *f, size_t from,
                 size_t to, const unsigned char *rejected, bool all, const char *why)
{
    for (size_t i = from; i < to; i++) {
        if (!all && !rejected[i - from])
            continue;
        const struct export_record *r = &f->rec[i];
        store_dead_letter_add(st, w->id, r->seq, *r->id ? r->id : "unknown",
                              why && *why ? why : "refused by the receiver");
        pthread_mutex_lock(&w->m->mu);
        w->dead++;
        pthread_mutex_unlock(&w->m->mu);
    }
}

/* Delivers f->rec[0..n) with retries. Returns false when stopping with records unsettled
 * (the cursor then stays before them). *ret_settled_seq: the seq up to which every
 * record is settled. */
static bool deliver(struct worker *w, struct store *st, struct fetched *f, int64_t *ret_settled)
{
    size_t off = 0;
    int attempt = 0;
    unsigned char *rej = calloc(f->n ? f->n : 1, 1);
    if (!rej)
        return false;
    while (off < f->n) {
        if (!w->sink) {
            struct err_detail d = {0};
            if (w->ops->open(&w->cfg, &w->sink, &d) < 0) {
                set_error(w, d.msg);
                set_state(w, W_BROKEN);
                w->sink = NULL;
                goto backoff;
            }
        }
        set_state(w, W_SENDING);
        struct export_batch b = {f->rec + off, f->n - off};
        memset(rej, 0, f->n);
        struct sink_result res = {.rejected = rej};
        int r = w->ops->send(w->sink, &b, &res);
        size_t settled = r == 0 || r == ERR_INVAL ? b.n : res.acked > b.n ? b.n : res.acked;
        park(w, st, f, off, off + settled, rej, r == ERR_INVAL, res.error);
        size_t refused = 0;
        for (size_t i = 0; i < settled; i++)
            refused += r == ERR_INVAL || rej[i];
        pthread_mutex_lock(&w->m->mu);
        w->delivered += (int64_t)(settled - refused);
        if (settled)
            w->last_delivery_at = now_ms();
        pthread_mutex_unlock(&w->m->mu);
        off += settled;
        if (settled) {
            *ret_settled = f->rec[off - 1].seq;
            store_cursor_set(st, w->id, *ret_settled); /* progress survives a crash */
            pthread_mutex_lock(&w->m->mu);
            w->cursor = *ret_settled;
            pthread_mutex_unlock(&w->m->mu);
        }
        if (off >= f->n)
            break;
        set_error(w, res.error);
        if (r != ERR_IO) { /* a sink bug or an unsupported sink: same backoff, never a spin */
            w->sink = (w->ops->close(w->sink), NULL);
        }
        pthread_mutex_lock(&w->m->mu);
        w->failures++;
        pthread_mutex_unlock(&w->m->mu);
    backoff:
        set_state(w, W_BACKOFF);
        /* full jitter over a capped exponential: spreads retries of many nodes apart */
        int64_t cap = BACKOFF_BASE_MS << (attempt < 8 ? attempt : 8);
        if (cap > BACKOFF_CAP_MS)
            cap = BACKOFF_CAP_MS;
        uint32_t rnd = 0;
        core_random(&rnd, sizeof(rnd));
        int64_t delay = BACKOFF_BASE_MS / 2 + (int64_t)(rnd % (uint32_t)cap);
        attempt++;
        if (sleep_unless_stopped(w, delay)) {
            free(rej);
            return false;
        }
        pthread_mutex_lock(&w->m->mu);
        w->retries++;
        pthread_mutex_unlock(&w->m->mu);
    }
    free(rej);
    return true;
}

/* The exporter's cursor, set from its start point ("now": the log's end; "beginning": 0)
 * when it has none yet. 0 or a store error. */
static int cursor_start(struct store *st, const struct worker *w, int64_t *ret)
{
    int r = store_cursor_get(st, w->id, ret);
    if (r != ERR_NOTFOUND)
        return r;
    *ret = 0;
    if (!w->cfg.start_beginning && (r = store_events_max_seq(st, ret)) < 0)
        return r;
    return store_cursor_set(st, w->id, *ret);
}

static void *work(void *p)
{
    struct worker *w = p;
    struct export_manager *m = w->m;
    struct store *st = NULL;
    struct err_detail d = {0};
    struct fetched f = {0};
    f.cap = w->cfg.max_events;
    f.rec = calloc(f.cap, sizeof(*f.rec));
    f.evs = calloc(f.cap, sizeof(*f.evs));
    f.data = calloc(f.cap, sizeof(*f.data));
    for (size_t i = 0; f.data && i < f.cap; i++)
        buf_init(&f.data[i], RECORD_MAX);
    int64_t cur = 0, first_pending = 0;
    if (!f.rec || !f.evs || !f.data) {
        set_error(w, "out of memory");
        goto out;
    }
    /* the store may be briefly busy at start: retry until stopped */
    while (store_open(m->store_url, &st, &d) < 0) {
        set_error(w, d.msg);
        if (sleep_unless_stopped(w, 1000))
            goto out;
    }
    /* a cursor lost to a power cut only means sending again (at least once): never fsync
     * for it, so a cursor commit never holds the write lock over a disk flush that the
     * audit writer, and with it issuance, would wait behind */
    store_set_sync(st, STORE_SYNC_PROCESS);
    int r = cursor_start(st, w, &cur); /* normally fixed already by worker_new */
    if (r < 0) {
        set_error(w, "cannot read or set the exporter's cursor");
        set_state(w, W_BROKEN);
        goto out;
    }
    pthread_mutex_lock(&m->mu);
    w->cursor = cur;
    w->state = W_IDLE;
    pthread_mutex_unlock(&m->mu);

    for (;;) {
        int64_t max = 0;
        if (store_events_max_seq(st, &max) < 0) {
            set_error(w, "cannot read the audit log");
            if (sleep_unless_stopped(w, 1000))
                break;
            continue;
        }
        pthread_mutex_lock(&m->mu);
        if (w->stop) {
            pthread_mutex_unlock(&m->mu);
            break;
        }
        if (max <= cur) {
            first_pending = 0;
            bool stop = wait_locked(w, IDLE_POLL_MS);
            pthread_mutex_unlock(&m->mu);
            if (stop)
                break;
            continue;
        }
        /* fewer than a full batch: wait for more, up to max_wait after the first one */
        if ((size_t)(max - cur) < w->cfg.max_events) {
            int64_t t = now_ms();
            if (!first_pending)
                first_pending = t;
            if (t - first_pending < w->cfg.max_wait_ms) {
                bool stop = wait_locked(w, w->cfg.max_wait_ms - (t - first_pending));
                pthread_mutex_unlock(&m->mu);
                if (stop)
                    break;
                continue;
            }
        }
        pthread_mutex_unlock(&m->mu);
        first_pending = 0;

        struct store_query q = {.filter = w->filter, .after_seq = cur, .limit = f.cap};
        struct fetch_ctx fc = {&f, w->cfg.format};
        fetched_reset(&f);
        if (store_events_query_rows(st, &q, fetch_one, &fc) < 0) {
            set_error(w, "cannot read the audit log");
            if (sleep_unless_stopped(w, 1000))
                break;
            continue;
        }
        /* a short page saw every event up to `max` (and maybe later ones): the cursor may
         * pass the ones the filter left out */
        int64_t scanned = f.n < f.cap ? (f.last_seq > max ? f.last_seq : max) : f.last_seq;
        int64_t settled = cur;
        if (f.n && !deliver(w, st, &f, &settled)) {
            cur = settled;
            break; /* stopping mid-batch: the cursor stays before what is unsettled */
        }
        cur = scanned;
        if (store_cursor_set(st, w->id, cur) < 0)
            set_error(w, "cannot store the exporter's cursor (will retry)");
        pthread_mutex_lock(&m->mu);
        w->cursor = cur;
        w->state = W_IDLE;
        pthread_mutex_unlock(&m->mu);
    }
out:
    fetched_done(&f);
    store_close(st);
    if (w->sink)
        w->ops->close(w->sink);
    w->sink = NULL;
    set_state(w, W_STOPPED);
    return NULL;
}

/* ---- manager ---- */

static void worker_free(struct worker *w)
{
    if (!w)
        return;
    exporter_config_done(&w->cfg);
    store_filter_free(w->filter);
    json_decref(w->doc);
    free(w->id);
    free(w);
}

static void worker_stop(struct worker *w)
{
    if (w->started) {
        pthread_mutex_lock(&w->m->mu);
        w->stop = true;
        pthread_cond_broadcast(&w->m->cv);
        pthread_mutex_unlock(&w->m->mu);
        pthread_join(w->thread, NULL);
    }
    worker_free(w);
}

/* A worker for doc: started unless paused; a configuration the runner cannot use is kept
 * as "broken" with the reason, so status shows it. */
static struct worker *worker_new(struct export_manager *m, const json_t *doc)
{
    struct worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->m = m;
    w->doc = json_deep_copy(doc);
    w->id = strdup(str_of(doc, "id"));
    if (!w->doc || !w->id) {
        worker_free(w);
        return NULL;
    }
    struct err_detail d = {0};
    int r = exporter_config_from_json(doc, m->cfg.kek, &w->cfg, &d);
    if (r == 0 && w->cfg.filter &&
        (r = scim_parse(w->cfg.filter, strlen(w->cfg.filter), &w->filter, &d)) < 0) {
        char why[sizeof(d.msg)];
        snprintf(why, sizeof(why), "%s", d.msg);
        err_set(&d, r, "filter: %.400s", why);
    }
    if (r == 0 && !(w->ops = sink_ops_for(w->cfg.type)))
        r = err_set(&d, ERR_INVAL, "type: no sink \"%s\"", w->cfg.type);
    if (r < 0) {
        snprintf(w->last_error, sizeof(w->last_error), "%.250s", d.msg);
        w->last_error_at = now_ms();
        w->state = W_BROKEN;
        store_cursor_get(m->st, w->id, &w->cursor);
        return w;
    }
    /* "now" is the moment the exporter is created (or the server starts with it), not when
     * its thread gets going: fix the cursor here, before anyone can commit more events */
    int64_t cur = 0;
    cursor_start(m->st, w, &cur); /* on failure the worker tries again on its connection */
    w->cursor = cur;
    if (w->cfg.paused) {
        w->state = W_PAUSED;
        return w;
    }
    w->state = W_STARTING;
    if (pthread_create(&w->thread, NULL, work, w) == 0)
        w->started = true;
    else {
        snprintf(w->last_error, sizeof(w->last_error), "cannot start the worker thread");
        w->state = W_BROKEN;
    }
    return w;
}

int export_manager_new(const struct export_manager_config *cfg, struct export_manager **ret,
                       struct err_detail *d)
{
    struct export_manager *m = calloc(1, sizeof(*m));
    if (!m)
        return ERR_NOMEM;
    m->cfg = *cfg;
    m->store_url = strdup(cfg->store_url);
    m->node = strdup(cfg->node ? cfg->node : "mcpauth");
    m->cfg.store_url = m->store_url;
    m->cfg.node = m->node;
    int r = m->store_url && m->node ? store_open(m->store_url, &m->st, d) : ERR_NOMEM;
    if (r == 0)
        store_set_sync(m->st, STORE_SYNC_PROCESS); /* see work() */
    if (r < 0) {
        free(m->store_url);
        free(m->node);
        free(m);
        return r;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    *ret = m;
    return 0;
}

struct export_manager *export_manager_free(struct export_manager *m)
{
    if (!m)
        return NULL;
    /* ask every worker to stop first, then join: they wind down in parallel */
    pthread_mutex_lock(&m->mu);
    for (struct worker *w = m->workers; w; w = w->next)
        w->stop = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    while (m->workers) {
        struct worker *w = m->workers;
        m->workers = w->next;
        worker_stop(w);
    }
    store_close(m->st);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m->store_url);
    free(m->node);
    free(m);
    return NULL;
}

static const json_t *find_doc(const json_t *list, const char *id)
{
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v) if (strcmp(str_of(v, "id"), id) == 0) return v;
    return NULL;
}

int export_manager_sync(struct export_manager *m, const json_t *exporters)
{
    static pthread_mutex_t sync_mu = PTHREAD_MUTEX_INITIALIZER; /* one reconcile at a time */
    pthread_mutex_lock(&sync_mu);
    /* stop workers whose object is gone or changed */
    struct worker **pp = &m->workers;
    while (*pp) {
        struct worker *w = *pp;
        const json_t *doc = find_doc(exporters, w->id);
        if (doc && json_equal(doc, w->doc)) {
            pp = &w->next;
            continue;
        }
        pthread_mutex_lock(&m->mu);
        *pp = w->next;
        pthread_mutex_unlock(&m->mu);
        char *id = doc ? NULL : strdup(w->id);
        worker_stop(w);
        if (id) /* removed: a new exporter of the same id starts from its own start point */
            store_cursor_delete(m->st, id);
        free(id);
    }
    /* start the new and changed ones */
    size_t i;
    const json_t *doc;
    int r = 0;
    json_array_foreach(exporters, i, doc)
    {
        const char *id = str_of(doc, "id");
        bool running = false;
        pthread_mutex_lock(&m->mu);
        for (struct worker *w = m->workers; w; w = w->next)
            running |= strcmp(w->id, id) == 0;
        pthread_mutex_unlock(&m->mu);
        if (running)
            continue;
        struct worker *w = worker_new(m, doc);
        if (!w) {
            r = ERR_NOMEM;
            continue;
        }
        pthread_mutex_lock(&m->mu);
        w->next = m->workers;
        m->workers = w;
        pthread_mutex_unlock(&m->mu);
    }
    pthread_mutex_unlock(&sync_mu);
    return r;
}

void export_manager_notify(struct export_manager *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->gen++;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* ---- status ---- */

static void put_time(json_t *o, const char *k, int64_t ms)
{
    if (!ms) {
        json_object_set_new(o, k, json_null());
        return;
    }
    char t[TIME_STR_LEN];
    time_format_us(ms * 1000, t);
    json_object_set_new(o, k, json_string(t));
}

static int first_time(const char *doc, int64_t seq, void *arg)
{
    (void)seq;
    json_t *ev = json_loads(doc, 0, NULL);
    int64_t us = 0;
    if (ev && time_parse_rfc3339(str_of(ev, "time"), &us) == 0)
        *(int64_t *)arg = us;
    json_decref(ev);
    return 1;
}

static int add_dead(int64_t seq, const char *event_id, const char *error, const char *time,
                    void *arg)
{
    json_array_append_new(arg, json_pack("{sIssssss}", "seq", (json_int_t)seq, "event_id",
                                         event_id, "error", error, "time", time));
    return 0;
}

int export_manager_status(struct export_manager *m, const char *id, json_t **ret,
                          struct err_detail *d)
{
    pthread_mutex_lock(&m->mu);
    struct worker *w = m->workers;
    while (w && strcmp(w->id, id) != 0)
        w = w->next;
    if (!w) {
        pthread_mutex_unlock(&m->mu);
        return err_set(d, ERR_NOTFOUND, "exporter:%s does not exist", id);
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(w->id));
    json_object_set_new(o, "type", json_string(str_of(w->doc, "type")));
    json_object_set_new(o, "state", json_string(state_names[w->state]));
    int64_t cursor = w->cursor;
    json_object_set_new(o, "cursor", json_integer(cursor));
    json_object_set_new(o, "delivered", json_integer(w->delivered));
    json_object_set_new(o, "retries", json_integer(w->retries));
    json_object_set_new(o, "failures", json_integer(w->failures));
    json_object_set_new(o, "last_error", *w->last_error ? json_string(w->last_error) : json_null());
    put_time(o, "last_error_at", w->last_error_at);
    put_time(o, "last_delivery_at", w->last_delivery_at);
    pthread_mutex_unlock(&m->mu);

    int64_t max = 0, oldest_us = 0, dead = 0;
    store_events_max_seq(m->st, &max);
    if (max > cursor)
        store_events_scan(m->st, cursor, 1, first_time, &oldest_us);
    json_object_set_new(o, "last_seq", json_integer(max));
    json_object_set_new(o, "lag_events", json_integer(max > cursor ? max - cursor : 0));
    double lag_s = oldest_us ? (double)(time_now_us() - oldest_us) / 1e6 : 0.0;
    json_object_set_new(o, "lag_seconds", json_real(lag_s > 0 ? lag_s : 0.0));
    json_t *recent = json_array();
    store_dead_letters(m->st, id, RECENT_DEAD_LETTERS, &dead, add_dead, recent);
    json_object_set_new(o, "dead_letters", json_integer(dead));
    json_object_set_new(o, "recent_dead_letters", recent);
    *ret = o;
    return 0;
}

/* ---- test event ---- */

int export_manager_test(struct export_manager *m, const json_t *doc, json_t **ret,
                        struct err_detail *d)
{
    struct exporter_config cfg = {0};
    int r = exporter_config_from_json(doc, m->cfg.kek, &cfg, d);
    if (r < 0)
        return r;
    const struct sink_ops *ops = sink_ops_for(cfg.type);
    json_t *ev = audit_event_new("exporter.test", "success", "info", m->node);
    json_object_set_new(ev, "seq", json_integer(0));
    json_object_set_new(ev, "hash", json_string(""));
    json_object_set_new(ev, "status_detail",
                        json_string("Test event sent by POST /api/v1/exporters/{id}/test"));
    struct buf b;
    buf_init(&b, RECORD_MAX);
    audit_encode(cfg.format, ev, &b);
    struct export_record rec = {0, str_of(ev, "id"), str_of(ev, "time"), "exporter.test",
                                "info", ev, b.data ? b.data : "", b.len};
    struct export_batch batch = {&rec, 1};
    unsigned char rej = 0;
    struct sink_result res = {.rejected = &rej};
    struct sink *s = NULL;
    struct err_detail od = {0};
    int sr = ops ? ops->open(&cfg, &s, &od) : ERR_INVAL;
    if (sr == 0) {
        sr = ops->send(s, &batch, &res);
        ops->close(s);
    } else {
        snprintf(res.error, sizeof(res.error), "%.250s", ops ? od.msg : "unknown exporter type");
    }
    bool ok = sr == 0 && !rej;
    json_t *o = json_object();
    json_object_set_new(o, "delivered", json_boolean(ok));
    json_object_set_new(o, "event_id", json_string(rec.id));
    json_object_set_new(o, "error", ok ? json_null()
                                       : json_string(*res.error ? res.error : err_message(sr)));
    buf_done(&b);
    json_decref(ev);
    exporter_config_done(&cfg);
    *ret = o;
    return 0;
}

/* ---- metrics ---- */

int export_manager_metrics(struct export_manager *m, struct buf *out)
{
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"mcpauth_exporter_up", "gauge", "1 while the exporter delivers or waits for events."},
        {"mcpauth_exporter_cursor", "gauge", "Seq of the last event the exporter settled."},
        {"mcpauth_exporter_lag_events", "gauge", "Events in the log after the cursor."},
        {"mcpauth_exporter_lag_seconds", "gauge",
         "Age of the oldest event not yet settled (0 when none)."},
        {"mcpauth_exporter_delivered_total", "counter", "Events acknowledged by the sink."},
        {"mcpauth_exporter_retries_total", "counter", "Batches sent again after a failure."},
        {"mcpauth_exporter_failures_total", "counter", "Failed deliveries (transient)."},
        {"mcpauth_exporter_dead_letters_total", "counter",
         "Events the sink refused for good, parked (this process)."},
        {"mcpauth_exporter_last_error_timestamp_seconds", "gauge",
         "When the last error happened (0: none); the text is in the exporter's status."},
    };
    enum { N_FAM = sizeof(fam) / sizeof(fam[0]) };
    int64_t max = 0;
    store_events_max_seq(m->st, &max);
    /* copy what is needed under the lock; the lag's store read happens outside it */
    struct row {
        char id[130];
        double v[N_FAM];
    } *rows = NULL;
    size_t n = 0;
    pthread_mutex_lock(&m->mu);
    for (struct worker *w = m->workers; w; w = w->next)
        n++;
    rows = calloc(n ? n : 1, sizeof(*rows));
    size_t i = 0;
    for (struct worker *w = m->workers; rows && w; w = w->next, i++) {
        snprintf(rows[i].id, sizeof(rows[i].id), "%s", w->id);
        double *v = rows[i].v;
        v[0] = w->state == W_IDLE || w->state == W_SENDING;
        v[1] = (double)w->cursor;
        v[2] = max > w->cursor ? (double)(max - w->cursor) : 0;
        v[3] = (double)w->cursor; /* replaced by the lag below */
        v[4] = (double)w->delivered;
        v[5] = (double)w->retries;
        v[6] = (double)w->failures;
        v[7] = (double)w->dead;
        v[8] = (double)w->last_error_at / 1000.0;
    }
    pthread_mutex_unlock(&m->mu);
    if (!rows)
        return ERR_NOMEM;
    for (i = 0; i < n; i++) {
        int64_t oldest_us = 0, cursor = (int64_t)rows[i].v[3];
        if (max > cursor)
            store_events_scan(m->st, cursor, 1, first_time, &oldest_us);
        double lag = oldest_us ? (double)(time_now_us() - oldest_us) / 1e6 : 0.0;
        rows[i].v[3] = lag > 0 ? lag : 0.0;
    }
    for (size_t f = 0; f < N_FAM; f++) {
        buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name,
                   fam[f].type);
        for (i = 0; i < n; i++)
            buf_printf(out, rows[i].v[f] == (double)(int64_t)rows[i].v[f] ? "%s{exporter=\"%s\"} %.0f\n"
                                                                 : "%s{exporter=\"%s\"} %.3f\n",
                       fam[f].name, rows[i].id, rows[i].v[f]);
    }
    free(rows);
    return 0;
}
