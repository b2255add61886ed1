/* audit/writer.c — the group-commit thread. Invariant: an event's callback
 * runs with err 0 only after the transaction holding it committed, and the
 * events of one batch are appended in submission order, so seq order is the
 * order requests were decided in. */
#include "audit/writer.h"
#include "audit/audit.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct item {
    struct audit_prepared *ev; /* serialised by the submitting thread */
    audit_done_fn done;
    void *arg;
    char *jti[2];
    int64_t exp[2];
};

struct audit_writer {
    struct store *store;
    struct store *checkpointer; /* its own connection: checkpoints off the commit path */
    pthread_t thread, cp_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct item *ring; /* AUDIT_QUEUE_MAX slots */
    size_t head, len;
    bool stop;
    /* checkpoint hand-shake: the checkpointer asks (cp_want) for the writer to pause
     * between two transactions (cp_paused) while it copies back the WAL's last frames, so
     * that the writer's next transaction starts the WAL over */
    pthread_cond_t cp_cv;
    bool cp_want, cp_paused;
    struct audit_writer_stats stats;
    void (*on_commit)(void *arg); /* set before the first event; called after each commit */
    void *on_commit_arg;
};

/* Checkpoints never run on the commit path: the writer's connection has automatic
 * checkpoints off, and this thread copies the WAL back into the database from a
 * connection of its own every CHECKPOINT_PERIOD_MS (passive: it never blocks a commit).
 * A passive checkpoint cannot catch a writer that commits without pause, so the WAL only
 * starts over when the writer's next transaction finds every frame copied back: once the
 * WAL holds WAL_RESET_FRAMES, the writer pauses between two transactions while the last
 * frames (at most one period's worth) are copied and synced. That pause is the only time a
 * commit waits for a checkpoint.
 * The database file is synced before the pause, so the pause only syncs its last frames.
 * Measured (client credentials, 64 connections, 2 cores): SQLite's automatic checkpoint in
 * the writer (every 1000 pages while the WAL grows by ~20k pages/s) made a request wait up
 * to 16 ms for its commit at p99; with the hand-shake that wait is under 8 ms, a pause
 * lasts 2-5 ms about once a second, and throughput rose from ~12.5k to ~14k tokens/s. */
#define CHECKPOINT_PERIOD_MS 10
#define WAL_RESET_FRAMES     32768 /* 128 MiB of 4 KiB pages */
#define WAL_LIMIT_BYTES      (128LL * 1024 * 1024)

static bool cp_sleep(struct audit_writer *w, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->stop)
        if (pthread_cond_timedwait(&w->cp_cv, &w->mu, &ts) != 0)
            break;
    bool stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    return !stop;
}

static void *checkpoint_loop(void *p)
{
    struct audit_writer *w = p;
    while (cp_sleep(w, CHECKPOINT_PERIOD_MS)) {
        int frames = 0;
        store_checkpoint(w->checkpointer, 0, &frames);
        if (frames < WAL_RESET_FRAMES)
            continue;
        store_sync_db(w->checkpointer); /* the bulk of the pause's sync, without a pause */
        store_checkpoint(w->checkpointer, 0, NULL);
        pthread_mutex_lock(&w->mu);
        w->cp_want = true;
        pthread_cond_signal(&w->cv); /* an idle writer pauses at once */
        while (!w->cp_paused && !w->stop)
            pthread_cond_wait(&w->cp_cv, &w->mu);
        bool paused = w->cp_paused;
        pthread_mutex_unlock(&w->mu);
        if (paused)
            store_checkpoint(w->checkpointer, 0, NULL); /* the rest, with no writer */
        pthread_mutex_lock(&w->mu);
        w->cp_want = false;
        pthread_cond_broadcast(&w->cp_cv);
        pthread_mutex_unlock(&w->mu);
    }
    store_checkpoint(w->checkpointer, 1, NULL);
    return NULL;
}

/* Writer side of the hand-shake, with w->mu held: pause while the checkpointer asks. */
static void cp_pause(struct audit_writer *w)
{
    if (!w->cp_want || w->stop)
        return;
    w->cp_paused = true;
    pthread_cond_broadcast(&w->cp_cv);
    while (w->cp_want && !w->stop)
        pthread_cond_wait(&w->cp_cv, &w->mu);
    w->cp_paused = false;
}

static void *run(void *p)
{
    struct audit_writer *w = p;
    struct item *batch = malloc(AUDIT_BATCH_MAX * sizeof(*batch));
    struct audit_prepared **evs = malloc(AUDIT_BATCH_MAX * sizeof(*evs));
    if (!batch || !evs)
        abort(); /* nothing durable can happen without them */
    for (;;) {
        pthread_mutex_lock(&w->mu);
        cp_pause(w);
        while (!w->len && !w->stop) {
            pthread_cond_wait(&w->cv, &w->mu);
            cp_pause(w);
        }
        if (!w->len && w->stop) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        size_t n = w->len < AUDIT_BATCH_MAX ? w->len : AUDIT_BATCH_MAX;
        for (size_t i = 0; i < n; i++)
            batch[i] = w->ring[(w->head + i) % AUDIT_QUEUE_MAX];
        w->head = (w->head + n) % AUDIT_QUEUE_MAX;
        w->len -= n;
        pthread_mutex_unlock(&w->mu);

        for (size_t i = 0; i < n; i++)
            evs[i] = batch[i].ev;
        int r = store_begin(w->store);
        if (r == 0) {
            r = audit_append_prepared(w->store, evs, n);
            for (size_t i = 0; i < n && r == 0; i++)
                for (int k = 0; k < 2 && r == 0; k++)
                    if (batch[i].jti[k])
                        r = store_jti_add(w->store, batch[i].jti[k], batch[i].exp[k]);
            if (r == 0)
                r = store_commit(w->store);
            else
                store_rollback(w->store);
        }
        pthread_mutex_lock(&w->mu);
        w->stats.batches++;
        if (r == 0)
            w->stats.events += n;
        else
            w->stats.failures += n;
        if (n > w->stats.max_batch)
            w->stats.max_batch = n;
        int b = 0;
        for (size_t lim = 1; b < 7 && n > lim; lim *= 4)
            b++;
        w->stats.batch_hist[b]++;
        pthread_mutex_unlock(&w->mu);
        if (r == 0 && w->on_commit)
            w->on_commit(w->on_commit_arg);
        for (size_t i = 0; i < n; i++) {
            if (batch[i].done)
                batch[i].done(batch[i].arg, r);
            audit_prepared_free(batch[i].ev);
            free(batch[i].jti[0]);
            free(batch[i].jti[1]);
        }
    }
    free(batch);
    free(evs);
    return NULL;
}

int audit_writer_start(const char *store_url, enum store_sync sync, struct audit_writer **ret,
                       struct err_detail *d)
{
    struct audit_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return ERR_NOMEM;
    w->ring = malloc(AUDIT_QUEUE_MAX * sizeof(*w->ring));
    int r = w->ring ? store_open(store_url, &w->store, d) : ERR_NOMEM;
    if (r == 0 && ((r = store_set_sync(w->store, sync)) < 0 ||
                   (r = store_set_manual_checkpoints(w->store, WAL_LIMIT_BYTES)) < 0)) {
        err_set(d, r, "cannot set the store's durability");
        w->store = store_close(w->store);
    }
    if (r == 0 && (r = store_open(store_url, &w->checkpointer, d)) == 0 &&
        (r = store_set_sync(w->checkpointer, sync)) < 0)
        err_set(d, r, "cannot set up WAL checkpoints");
    if (r < 0 && w->store) {
        w->store = store_close(w->store);
        w->checkpointer = store_close(w->checkpointer);
    }
    if (r < 0) {
        free(w->ring);
        free(w);
        return r;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->cp_cv, NULL);
    if (pthread_create(&w->thread, NULL, run, w) != 0 ||
        pthread_create(&w->cp_thread, NULL, checkpoint_loop, w) != 0) {
        /* (a writer thread already started would be a leak; failing to start threads
         * at start-up ends the process anyway) */
        store_close(w->store);
        store_close(w->checkpointer);
        free(w->ring);
        free(w);
        return err_set(d, ERR_INTERNAL, "cannot start the audit writer thread");
    }
    *ret = w;
    return 0;
}

struct audit_writer *audit_writer_stop(struct audit_writer *w)
{
    if (!w)
        return NULL;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_cond_broadcast(&w->cp_cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_join(w->cp_thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->cp_cv);
    store_close(w->store);
    store_close(w->checkpointer);
    free(w->ring);
    free(w);
    return NULL;
}

int audit_writer_submit(struct audit_writer *w, json_t *ev, audit_done_fn done, void *arg)
{
    char *none[2] = {NULL, NULL};
    int64_t exps[2] = {0, 0};
    return audit_writer_submit_jtis(w, ev, none, exps, done, arg);
}

int audit_writer_submit_jtis(struct audit_writer *w, json_t *json_ev, char *jti_keys[2],
                             const int64_t jti_exps[2], audit_done_fn done, void *arg)
{
    return audit_writer_submit_doc(w, json_ev, jti_keys, jti_exps, done, arg, NULL, NULL);
}

int audit_writer_submit_doc(struct audit_writer *w, json_t *json_ev, char *jti_keys[2],
                            const int64_t jti_exps[2], audit_done_fn done, void *arg,
                            char **ret_doc, size_t *ret_len)
{
    /* serialise here, on the submitting thread: the one writer thread only seals */
    struct audit_prepared *ev = NULL;
    int pr = audit_prepare(json_ev, &ev);
    json_decref(json_ev);
    if (ret_doc) {
        *ret_doc = pr == 0 ? malloc(ev->len + 1) : NULL;
        if (*ret_doc) {
            memcpy(*ret_doc, ev->canon, ev->len + 1);
            *ret_len = ev->len;
        }
    }
    pthread_mutex_lock(&w->mu);
    if (pr < 0 || w->stop || w->len >= AUDIT_QUEUE_MAX) {
        pthread_mutex_unlock(&w->mu);
        audit_prepared_free(ev);
        free(jti_keys[0]);
        free(jti_keys[1]);
        return ERR_IO;
    }
    w->ring[(w->head + w->len) % AUDIT_QUEUE_MAX] =
        (struct item){ev, done, arg, {jti_keys[0], jti_keys[1]}, {jti_exps[0], jti_exps[1]}};
    w->len++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void audit_writer_on_commit(struct audit_writer *w, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&w->mu);
    w->on_commit = fn;
    w->on_commit_arg = arg;
    pthread_mutex_unlock(&w->mu);
}

void audit_writer_stats(struct audit_writer *w, struct audit_writer_stats *ret)
{
    pthread_mutex_lock(&w->mu);
    *ret = w->stats;
    ret->queue_len = w->len;
    pthread_mutex_unlock(&w->mu);
}
