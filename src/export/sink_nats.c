/* export/sink_nats.c — the nats sink: nats://HOST[:PORT]/SUBJECT, published to
 * JetStream.
 *
 * Each record is one JetStream message on SUBJECT with the event id as
 * Nats-Msg-Id, so the stream's duplicate window drops a record sent twice.
 * The operator creates the stream; this sink never does (a stream's limits,
 * replicas and retention are theirs to choose). A subject that no stream
 * captures is answered "no responders" and fails the batch with ERR_IO.
 *
 * One connection per sink, made on the first send (open() only prepares the
 * options: TLS files are read there, nothing is dialled) and kept across sends.
 * libnats does not reconnect it behind our back: a broken or timed-out
 * connection is closed, and the next send dials a new one. send() publishes
 * the whole batch asynchronously and waits, up to cfg->timeout_ms, for every
 * publish acknowledgement; acked is the prefix of records the stream stored
 * (or refused for good: too large for the server or the stream).
 *
 * Invariant: when send() returns, libnats holds no message of that batch and
 * no acknowledgement handler of it is still running (the pending list is taken
 * back and completion is awaited once more), so the handler never sees a batch
 * that is gone and close() never frees a sink a handler still uses.
 *
 * libnats copies the password and token into its options and frees them
 * without wiping; nothing here can reach those copies. */
#include "export/sink.h"

#include <limits.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ST_PENDING, ST_DELIVERED, ST_REJECTED, ST_FAILED };

#define MSG_ID_HDR "Nats-Msg-Id"

struct sink {
    natsOptions *opts;
    natsConnection *nc; /* NULL until the first send, and after a failure */
    jsCtx *js;
    char *subject;
    char where[300]; /* "HOST:PORT", for messages */
    int64_t timeout_ms;

    /* the batch in flight; the ack handler runs on a libnats thread */
    pthread_mutex_t mu;
    const struct export_batch *b; /* NULL when no batch is in flight */
    size_t *by_id;                /* indexes of b->rec sorted by id */
    unsigned char *st;            /* ST_* per record */
    size_t cap;
    int no_stream;       /* a publish was answered "no responders" */
    char fail_text[128]; /* the first transient refusal */
    char rej_text[128];  /* the first permanent refusal */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int by_id_cmp(const void *a, const void *b, void *batch)
{
    const struct export_record *rec = ((const struct export_batch *)batch)->rec;
    const char *x = rec[*(const size_t *)a].id;
    const char *y = rec[*(const size_t *)b].id;
    return strcmp(x ? x : "", y ? y : "");
}

/* The first record of the batch with this id still pending, or SIZE_MAX. Called locked. */
static size_t find_pending(const struct sink *s, const char *id)
{
    size_t lo = 0, hi = s->b->n;
    while (lo < hi) { /* lower bound */
        size_t mid = lo + (hi - lo) / 2;
        const char *m = s->b->rec[s->by_id[mid]].id;
        if (strcmp(m ? m : "", id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < s->b->n; lo++) {
        size_t i = s->by_id[lo];
        const char *m = s->b->rec[i].id;
        if (strcmp(m ? m : "", id) != 0)
            break;
        if (s->st[i] == ST_PENDING)
            return i;
    }
    return SIZE_MAX;
}

/* JetStream's answer to one publish; on a libnats thread. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    struct sink *s = closure;
    const char *id = NULL;
    if (natsMsgHeader_Get(msg, MSG_ID_HDR, &id) != NATS_OK)
        id = NULL;
    pthread_mutex_lock(&s->mu);
    size_t i = s->b && id ? find_pending(s, id) : SIZE_MAX;
    if (i != SIZE_MAX) {
        if (pa) {
            s->st[i] = ST_DELIVERED; /* pa->Duplicate: stored before, as good */
        } else if (pae && pae->ErrCode == JSStreamMessageExceedsMaximumErr) {
            s->st[i] = ST_REJECTED;
            if (!s->rej_text[0])
                snprintf(s->rej_text, sizeof(s->rej_text), "%s",
                         pae->ErrText ? pae->ErrText : "message too large for the stream");
        } else {
            s->st[i] = ST_FAILED;
            if (pae && pae->Err == NATS_NO_RESPONDERS)
                s->no_stream = 1;
            else if (!s->fail_text[0])
                snprintf(s->fail_text, sizeof(s->fail_text), "%s",
                         pae && pae->ErrText ? pae->ErrText : "publish failed");
        }
    }
    pthread_mutex_unlock(&s->mu);
    natsMsg_Destroy(msg); /* ours once the handler is called */
}

/* Truncation is fine: the text is for a status line and the log. */
__attribute__((format(printf, 2, 3))) static void result_error(struct sink_result *res,
                                                               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof(res->error), fmt, ap);
    va_end(ap);
}

/* A subject one publishes to: dot-separated non-empty tokens, no wildcards, no spaces. */
static int valid_subject(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n > 1024 || t[0] == '.' || t[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= ' ' || c == 0x7f || c == '*' || c == '>' || (c == '.' && t[i + 1] == '.'))
            return 0;
    }
    return 1;
}

static int opt_fail(natsStatus st, const char *what, struct err_detail *d)
{
    if (st == NATS_ILLEGAL_STATE)
        return err_set(d, ERR_UNSUPPORTED, "nats: %s: not supported by this libnats", what);
    if (st == NATS_NO_MEMORY)
        return ERR_NOMEM;
    return err_set(d, ERR_INVAL, "nats: %s: %s", what, nats_GetLastError(NULL));
}

static int build_opts(const struct exporter_config *cfg, struct sink *s, struct err_detail *d)
{
    natsOptions *o = s->opts;
    natsStatus st;
    char url[320];
    int port = cfg->port ? cfg->port : 4222;
    int v6 = strchr(cfg->host, ':') != NULL;
    snprintf(url, sizeof(url), "nats://%s%s%s:%d", v6 ? "[" : "", cfg->host, v6 ? "]" : "", port);
    snprintf(s->where, sizeof(s->where), "%s%s%s:%d", v6 ? "[" : "", cfg->host, v6 ? "]" : "",
             port);
    if ((st = natsOptions_SetURL(o, url)) != NATS_OK)
        return opt_fail(st, "url", d);
    if ((st = natsOptions_SetTimeout(o, s->timeout_ms)) != NATS_OK ||
        (st = natsOptions_SetAllowReconnect(o, false)) != NATS_OK ||
        (st = natsOptions_SetName(o, "mcpauth exporter")) != NATS_OK)
        return opt_fail(st, "options", d);

    if (cfg->auth.hmac_secret)
        return err_set(d, ERR_INVAL, "nats: auth.hmac_secret is not used by the nats sink");
    if ((cfg->auth.username || cfg->auth.password) && cfg->auth.token)
        return err_set(d, ERR_INVAL, "nats: use auth.username and auth.password, or auth.token");
    if (!cfg->auth.username != !cfg->auth.password)
        return err_set(d, ERR_INVAL, "nats: auth.username and auth.password go together");
    if (cfg->auth.username &&
        (st = natsOptions_SetUserInfo(o, cfg->auth.username, cfg->auth.password)) != NATS_OK)
        return st == NATS_NO_MEMORY ? ERR_NOMEM : err_set(d, ERR_INVAL, "nats: auth refused");
    if (cfg->auth.token && (st = natsOptions_SetToken(o, cfg->auth.token)) != NATS_OK)
        return st == NATS_NO_MEMORY ? ERR_NOMEM : err_set(d, ERR_INVAL, "nats: auth refused");

    if (cfg->tls.key_file && !cfg->tls.cert_file)
        return err_set(d, ERR_INVAL, "tls.key_file needs tls.cert_file");
    if (cfg->tls.cert_file && !cfg->tls.key_file)
        return err_set(d, ERR_INVAL, "tls.cert_file needs tls.key_file");
    if (!cfg->tls.ca_file && !cfg->tls.cert_file)
        return 0; /* plaintext, as the nats:// URL says */
    if ((st = natsOptions_SetSecure(o, true)) != NATS_OK)
        return opt_fail(st, "tls", d);
    if (cfg->tls.ca_file && natsOptions_LoadCATrustedCertificates(o, cfg->tls.ca_file) != NATS_OK)
        return err_set(d, ERR_INVAL, "tls.ca_file: cannot be loaded: %s", nats_GetLastError(NULL));
    if (cfg->tls.cert_file &&
        natsOptions_LoadCertificatesChain(o, cfg->tls.cert_file, cfg->tls.key_file) != NATS_OK)
        return err_set(d, ERR_INVAL, "tls.cert_file/key_file: cannot be loaded: %s",
                       nats_GetLastError(NULL));
    if (cfg->tls.server_name &&
        (st = natsOptions_SetExpectedHostname(o, cfg->tls.server_name)) != NATS_OK)
        return opt_fail(st, "tls.server_name", d);
    if (!cfg->tls.verify && (st = natsOptions_SkipServerVerification(o, true)) != NATS_OK)
        return opt_fail(st, "tls.verify", d);
    return 0;
}

static void disconnect(struct sink *s)
{
    jsCtx_Destroy(s->js);
    s->js = NULL;
    natsConnection_Destroy(s->nc);
    s->nc = NULL;
}

static void close_(struct sink *s)
{
    if (!s)
        return;
    disconnect(s);
    natsOptions_Destroy(s->opts);
    pthread_mutex_destroy(&s->mu);
    free(s->subject);
    free(s->by_id);
    free(s->st);
    free(s);
}

static int open_(const struct exporter_config *cfg, struct sink **ret, struct err_detail *d)
{
    if (!cfg->scheme || strcmp(cfg->scheme, "nats") != 0)
        return err_set(d, ERR_INVAL, "a nats exporter's url is nats://HOST:PORT/SUBJECT");
    if (!cfg->host || !*cfg->host)
        return err_set(d, ERR_INVAL, "nats: the url names no host");
    if (!valid_subject(cfg->path))
        return err_set(d, ERR_INVAL,
                       "nats: the url's path must be a subject to publish to "
                       "(dot-separated tokens, no wildcards or spaces)");
    struct sink *s = calloc(1, sizeof(*s));
    if (!s)
        return ERR_NOMEM;
    pthread_mutex_init(&s->mu, NULL);
    s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
    int r = ERR_NOMEM;
    if (!(s->subject = strdup(cfg->path)))
        goto fail;
    natsStatus st = natsOptions_Create(&s->opts);
    if (st != NATS_OK) {
        r = st == NATS_NO_MEMORY
                ? ERR_NOMEM
                : err_set(d, ERR_INTERNAL, "nats: library: %s", natsStatus_GetText(st));
        goto fail;
    }
    if ((r = build_opts(cfg, s, d)) < 0)
        goto fail;
    *ret = s;
    return 0;
fail:
    close_(s);
    return r;
}

static int connect_(struct sink *s, struct sink_result *res)
{
    if (s->nc && natsConnection_Status(s->nc) == NATS_CONN_STATUS_CONNECTED)
        return 0;
    disconnect(s);
    natsStatus st = natsConnection_Connect(&s->nc, s->opts);
    if (st != NATS_OK) {
        /* the server's text ("Authorization Violation") or ours; never the credentials */
        result_error(res, "nats: cannot connect to %s: %s", s->where,
                     st == NATS_NO_SERVER ? "no server available" : nats_GetLastError(NULL));
        s->nc = NULL;
        return ERR_IO;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = s->timeout_ms;
    jo.PublishAsync.MaxPending = 1024;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = s;
    if ((st = natsConnection_JetStream(&s->js, s->nc, &jo)) != NATS_OK) {
        disconnect(s);
        result_error(res, "nats: JetStream: %s", natsStatus_GetText(st));
        return st == NATS_NO_MEMORY ? ERR_NOMEM : ERR_IO;
    }
    return 0;
}

static int grow(struct sink *s, size_t n)
{
    if (n <= s->cap)
        return 0;
    size_t *ix = realloc(s->by_id, n * sizeof(*ix));
    if (!ix)
        return ERR_NOMEM;
    s->by_id = ix;
    unsigned char *st = realloc(s->st, n);
    if (!st)
        return ERR_NOMEM;
    s->st = st;
    s->cap = n;
    return 0;
}

/* Waits for every outstanding acknowledgement (handler returned), up to `deadline`;
 * gives up early when the connection is gone. 1 when none is outstanding. */
static int complete(struct sink *s, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = left < 1 ? 1 : left < 100 ? left : 100;
        if (js_PublishAsyncComplete(s->js, &po) == NATS_OK)
            return 1;
        if (left <= 1 || natsConnection_IsClosed(s->nc))
            return 0;
    }
}

static int send_(struct sink *s, const struct export_batch *b, struct sink_result *res)
{
    int64_t deadline = now_ms() + s->timeout_ms;
    int r;
    res->acked = 0;
    res->error[0] = '\0';
    if (b->n == 0)
        return 0;
    if ((r = grow(s, b->n)) < 0)
        return r;
    if ((r = connect_(s, res)) < 0)
        return r;

    for (size_t i = 0; i < b->n; i++)
        s->by_id[i] = i;
    qsort_r(s->by_id, b->n, sizeof(*s->by_id), by_id_cmp, (void *)b);
    pthread_mutex_lock(&s->mu);
    s->b = b;
    memset(s->st, ST_PENDING, b->n);
    s->no_stream = 0;
    s->fail_text[0] = s->rej_text[0] = '\0';
    pthread_mutex_unlock(&s->mu);

    natsStatus local = NATS_OK; /* why publishing stopped */
    for (size_t i = 0; i < b->n && local == NATS_OK; i++) {
        const struct export_record *rec = &b->rec[i];
        if (rec->len > INT_MAX) {
            pthread_mutex_lock(&s->mu);
            s->st[i] = ST_REJECTED;
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        natsMsg *m = NULL;
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = rec->id;
        natsStatus st = natsMsg_Create(&m, s->subject, NULL, rec->data, (int)rec->len);
        while (st == NATS_OK) {
            st = js_PublishMsgAsync(s->js, &m, &po);
            /* NATS_TIMEOUT: stalled behind MaxPending unacknowledged publishes */
            if (st != NATS_TIMEOUT || now_ms() >= deadline)
                break;
        }
        natsMsg_Destroy(m); /* NULL (no-op) when libnats took it */
        if (st == NATS_MAX_PAYLOAD) {
            pthread_mutex_lock(&s->mu);
            s->st[i] = ST_REJECTED;
            if (!s->rej_text[0])
                snprintf(s->rej_text, sizeof(s->rej_text), "larger than the server's max_payload");
            pthread_mutex_unlock(&s->mu);
        } else if (st != NATS_OK) {
            local = st;
        }
    }
    int done = complete(s, deadline);
    if (!done) {
        /* take back what is unanswered; a handler already past the pending list is
         * awaited, so none runs after we return */
        natsMsgList pending = {0};
        if (js_PublishAsyncGetPendingList(&pending, s->js) == NATS_OK)
            natsMsgList_Destroy(&pending);
        complete(s, now_ms() + 1000);
    }

    pthread_mutex_lock(&s->mu);
    s->b = NULL;
    size_t acked = 0;
    while (acked < b->n && (s->st[acked] == ST_DELIVERED || s->st[acked] == ST_REJECTED)) {
        if (s->st[acked] == ST_REJECTED)
            res->rejected[acked] = 1;
        acked++;
    }
    pthread_mutex_unlock(&s->mu); /* no handler of this batch remains: the texts are stable */
    res->acked = acked;
    if (acked == b->n) {
        if (s->rej_text[0])
            result_error(res, "nats: subject %s: record refused: %s", s->subject, s->rej_text);
        return 0;
    }

    int closed = natsConnection_IsClosed(s->nc);
    if (local != NATS_OK)
        result_error(res, "nats: subject %s: publish failed: %s", s->subject,
                     natsStatus_GetText(local));
    else if (s->no_stream)
        result_error(res,
                     "nats: no JetStream stream captures subject %s (or JetStream is not enabled "
                     "on %s)",
                     s->subject, s->where);
    else if (closed)
        result_error(res, "nats: connection to %s lost", s->where);
    else if (!done)
        result_error(res, "nats: subject %s: %zu of %zu records not acknowledged within %lld ms",
                     s->subject, b->n - acked, b->n, (long long)s->timeout_ms);
    else
        result_error(res, "nats: subject %s: %s", s->subject,
                     s->fail_text[0] ? s->fail_text : "publish failed");
    /* a connection that lost or delayed answers is not trusted with the next batch */
    if (closed || !done || local != NATS_OK)
        disconnect(s);
    return ERR_IO;
}

const struct sink_ops sink_nats_ops = {"nats", open_, send_, close_};
