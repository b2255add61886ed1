/* export/sink_kafka.c — the kafka sink: kafka://BROKER[,BROKER...]/TOPIC.
 *
 * One idempotent librdkafka producer (enable.idempotence, acks=all) per sink,
 * created on the first send (open() makes no connection) and kept across sends.
 * Each record becomes one message: key = the event id, value = the encoded
 * event, header "type" = the event type. send() produces the whole batch, then
 * serves delivery reports until every message has one or cfg->timeout_ms has
 * passed; message.timeout.ms is set below that bound so librdkafka itself gives
 * up on a message before we do.
 *
 * Invariant: when send() returns, no message of that batch is left inside the
 * producer. On a failed batch the queue and in-flight requests are purged and
 * their reports drained, and every delivery report carries a generation number
 * in its opaque, so a late report of an earlier batch can never be taken for
 * one of the current batch. acked is the prefix of records delivered (or
 * permanently refused): a later record delivered out of order is sent again
 * next time, a duplicate with the same key (at least once). Ordering holds per
 * partition only; keys spread records over partitions, so a topic that must
 * keep the log's order has one partition.
 *
 * librdkafka copies sasl.password into its configuration and frees it without
 * wiping; nothing here can reach that copy. */
#include "export/sink.h"

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ST_PENDING, ST_DELIVERED, ST_REJECTED, ST_FAILED };

/* The opaque of a message: (generation << IDX_BITS) | index. */
#define IDX_BITS 20u
#define IDX_MAX  ((size_t)1 << IDX_BITS)

struct sink {
    rd_kafka_conf_t *conf; /* template, duplicated for each producer we create */
    rd_kafka_t *rk;        /* NULL until the first send, and after a fatal error */
    char *topic;
    int64_t timeout_ms;

    /* the batch in flight, written by the delivery report callback (our thread) */
    uintptr_t gen;
    unsigned char *st; /* ST_* per record */
    size_t cap, n, pending;
    rd_kafka_resp_err_t rej_err, fail_err; /* first permanent / transient error, for messages */
    char broker_err[160];                  /* last error_cb message: why brokers are unreachable */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Refused for this record whatever we do; anything else may pass next time. */
static int permanent(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        return 1;
    default:
        return 0;
    }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct sink *s = opaque;
    uintptr_t tag = (uintptr_t)m->_private;
    size_t i = (size_t)(tag & (IDX_MAX - 1));
    if ((tag >> IDX_BITS) != (s->gen & (UINTPTR_MAX >> IDX_BITS)) || i >= s->n ||
        s->st[i] != ST_PENDING)
        return; /* a report of an earlier batch, purged and given up on */
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        s->st[i] = ST_DELIVERED;
    } else {
        int perm = permanent(m->err);
        rd_kafka_resp_err_t *first = perm ? &s->rej_err : &s->fail_err;
        s->st[i] = perm ? ST_REJECTED : ST_FAILED;
        if (*first == RD_KAFKA_RESP_ERR_NO_ERROR)
            *first = m->err;
    }
    s->pending--;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)err;
    struct sink *s = opaque;
    snprintf(s->broker_err, sizeof(s->broker_err), "%s", reason ? reason : "");
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    /* library code never logs: librdkafka's default writes to stderr */
    (void)rk;
    (void)level;
    (void)fac;
    (void)buf;
}

static int valid_topic(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n > 249 || strcmp(t, ".") == 0 || strcmp(t, "..") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int set(rd_kafka_conf_t *conf, const char *name, const char *value, struct err_detail *d)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK)
        return 0;
    /* the only secret is sasl.password, and librdkafka does not echo values */
    return err_set(d, ERR_INVAL, "kafka: %s: %s", name, errstr);
}

static int build_conf(const struct exporter_config *cfg, struct sink *s, struct err_detail *d)
{
    rd_kafka_conf_t *c = s->conf;
    char num[32];
    int64_t t = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
    /* librdkafka gives up on a message a little before send() stops waiting, so the
     * report (with its reason) arrives inside the bound */
    int64_t msg_t = t > 1000 ? t - t / 10 : t;
    int r;
    if ((r = set(c, "bootstrap.servers", cfg->host, d)) < 0 ||
        (r = set(c, "enable.idempotence", "true", d)) < 0 || (r = set(c, "acks", "all", d)) < 0 ||
        (r = set(c, "linger.ms", "5", d)) < 0)
        return r;
    snprintf(num, sizeof(num), "%lld", (long long)msg_t);
    if ((r = set(c, "message.timeout.ms", num, d)) < 0)
        return r;
    /* one request may not outlive the message it carries */
    snprintf(num, sizeof(num), "%lld", (long long)(msg_t < 30000 ? msg_t : 30000));
    if ((r = set(c, "request.timeout.ms", num, d)) < 0 ||
        (r = set(c, "socket.timeout.ms", num, d)) < 0)
        return r;
    /* a broker back after an outage is found again within a couple of seconds */
    if ((r = set(c, "reconnect.backoff.max.ms", "2000", d)) < 0)
        return r;

    int tls = cfg->tls.ca_file || cfg->tls.cert_file;
    int sasl = cfg->auth.username || cfg->auth.password;
    if (cfg->tls.key_file && !cfg->tls.cert_file)
        return err_set(d, ERR_INVAL, "tls.key_file needs tls.cert_file");
    if (sasl && !(cfg->auth.username && cfg->auth.password))
        return err_set(d, ERR_INVAL,
                       "kafka: SASL/PLAIN needs both auth.username and "
                       "auth.password");
    if (cfg->auth.token || cfg->auth.hmac_secret)
        return err_set(d, ERR_INVAL,
                       "kafka: only auth.username and auth.password are used "
                       "(SASL/PLAIN)");
    if ((r = set(c, "security.protocol",
                 sasl ? (tls ? "sasl_ssl" : "sasl_plaintext") : (tls ? "ssl" : "plaintext"), d)) <
        0)
        return r;
    if (tls) {
        if ((cfg->tls.ca_file && (r = set(c, "ssl.ca.location", cfg->tls.ca_file, d)) < 0) ||
            (cfg->tls.cert_file &&
             (r = set(c, "ssl.certificate.location", cfg->tls.cert_file, d)) < 0) ||
            (cfg->tls.key_file && (r = set(c, "ssl.key.location", cfg->tls.key_file, d)) < 0) ||
            (r = set(c, "enable.ssl.certificate.verification", cfg->tls.verify ? "true" : "false",
                     d)) < 0 ||
            (r = set(c, "ssl.endpoint.identification.algorithm", cfg->tls.verify ? "https" : "none",
                     d)) < 0)
            return r;
    }
    if (sasl) {
        if ((r = set(c, "sasl.mechanisms", "PLAIN", d)) < 0 ||
            (r = set(c, "sasl.username", cfg->auth.username, d)) < 0 ||
            (r = set(c, "sasl.password", cfg->auth.password, d)) < 0)
            return r;
    }
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_conf_set_error_cb(c, on_error);
    rd_kafka_conf_set_log_cb(c, on_log);
    rd_kafka_conf_set_opaque(c, s);
    return 0;
}

static void close_(struct sink *s)
{
    if (!s)
        return;
    if (s->rk) {
        rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_destroy(s->rk);
    }
    if (s->conf)
        rd_kafka_conf_destroy(s->conf);
    free(s->topic);
    free(s->st);
    free(s);
}

static int open_(const struct exporter_config *cfg, struct sink **ret, struct err_detail *d)
{
    if (!cfg->scheme || strcmp(cfg->scheme, "kafka") != 0)
        return err_set(d, ERR_INVAL, "a kafka exporter's url is kafka://BROKER[,BROKER...]/TOPIC");
    if (!cfg->host || !*cfg->host)
        return err_set(d, ERR_INVAL, "kafka: the url names no broker");
    if (!valid_topic(cfg->path))
        return err_set(d, ERR_INVAL,
                       "kafka: the url's path must be a topic name (1-249 of a-z A-Z 0-9 . _ -)");
    struct sink *s = calloc(1, sizeof(*s));
    if (!s)
        return ERR_NOMEM;
    int r = ERR_NOMEM;
    s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
    if (!(s->topic = strdup(cfg->path)) || !(s->conf = rd_kafka_conf_new()))
        goto fail;
    if ((r = build_conf(cfg, s, d)) < 0)
        goto fail;
    *ret = s;
    return 0;
fail:
    close_(s);
    return r;
}

static int ensure_producer(struct sink *s, struct sink_result *res)
{
    if (s->rk)
        return 0;
    rd_kafka_conf_t *c = rd_kafka_conf_dup(s->conf);
    char errstr[200];
    if (!c)
        return ERR_NOMEM;
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof(errstr));
    if (!s->rk) {
        rd_kafka_conf_destroy(c); /* not taken over on failure */
        snprintf(res->error, sizeof(res->error), "kafka: cannot create the producer: %s", errstr);
        return ERR_IO;
    }
    return 0;
}

static int grow(struct sink *s, size_t n)
{
    if (n <= s->cap)
        return 0;
    unsigned char *st = realloc(s->st, n);
    if (!st)
        return ERR_NOMEM;
    s->st = st;
    s->cap = n;
    return 0;
}

/* Serves delivery reports until none of the batch is pending or `deadline` passed. */
static void serve(struct sink *s, int64_t deadline)
{
    while (s->pending > 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            break;
        rd_kafka_poll(s->rk, left < 100 ? (int)left : 100);
    }
}

static int send_(struct sink *s, const struct export_batch *b, struct sink_result *res)
{
    int64_t deadline = now_ms() + s->timeout_ms;
    size_t n = b->n < IDX_MAX ? b->n : IDX_MAX - 1;
    int r;
    res->acked = 0;
    res->error[0] = '\0';
    if (n == 0)
        return 0;
    if ((r = grow(s, n)) < 0)
        return r;
    if ((r = ensure_producer(s, res)) < 0)
        return r;

    s->gen++;
    s->n = n;
    s->pending = 0;
    s->rej_err = s->fail_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    s->broker_err[0] = '\0';
    memset(s->st, ST_PENDING, n);
    rd_kafka_resp_err_t local = RD_KAFKA_RESP_ERR_NO_ERROR; /* why producing stopped */
    size_t produced = 0;
    for (; produced < n; produced++) {
        const struct export_record *rec = &b->rec[produced];
        uintptr_t tag = (s->gen << IDX_BITS) | produced;
        rd_kafka_resp_err_t e;
        for (;;) {
            e = rd_kafka_producev(s->rk, RD_KAFKA_V_TOPIC(s->topic),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_KEY(rec->id, rec->id ? strlen(rec->id) : 0),
                                  RD_KAFKA_V_VALUE((void *)rec->data, rec->len),
                                  RD_KAFKA_V_HEADER("type", rec->type ? rec->type : "", -1),
                                  RD_KAFKA_V_OPAQUE((void *)tag), RD_KAFKA_V_END);
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || now_ms() >= deadline)
                break;
            rd_kafka_poll(s->rk, 10); /* make room: serve reports of this batch */
        }
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            s->pending++;
        } else if (permanent(e)) {
            s->st[produced] = ST_REJECTED; /* larger than message.max.bytes */
            if (s->rej_err == RD_KAFKA_RESP_ERR_NO_ERROR)
                s->rej_err = e;
        } else {
            local = e;
            break;
        }
    }
    serve(s, deadline);

    size_t acked = 0;
    while (acked < n && (s->st[acked] == ST_DELIVERED || s->st[acked] == ST_REJECTED)) {
        if (s->st[acked] == ST_REJECTED)
            res->rejected[acked] = 1;
        acked++;
    }
    res->acked = acked;
    if (acked == b->n) {
        if (s->rej_err != RD_KAFKA_RESP_ERR_NO_ERROR)
            snprintf(res->error, sizeof(res->error), "kafka: topic %s: record refused: %s",
                     s->topic, rd_kafka_err2str(s->rej_err));
        return 0;
    }

    /* Failed: leave nothing of this batch behind for the next send to trip over. */
    const char *sep = s->broker_err[0] ? ": " : "";
    if (local != RD_KAFKA_RESP_ERR_NO_ERROR)
        snprintf(res->error, sizeof(res->error), "kafka: topic %s: %s%s%s", s->topic,
                 rd_kafka_err2str(local), sep, s->broker_err);
    else if (s->pending > 0)
        snprintf(res->error, sizeof(res->error),
                 "kafka: topic %s: %zu of %zu records not acknowledged within %lld ms%s%s",
                 s->topic, s->pending, n, (long long)s->timeout_ms, sep, s->broker_err);
    else
        snprintf(res->error, sizeof(res->error),
                 "kafka: topic %s: %zu of %zu records not "
                 "delivered: %s%s%s",
                 s->topic, n - acked, n,
                 s->fail_err ? rd_kafka_err2str(s->fail_err) : "batch too large", sep,
                 s->broker_err);
    if (s->pending > 0) {
        rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        serve(s, now_ms() + 1000); /* purged reports are served at once */
    }
    s->n = 0; /* whatever still reports about this batch is ignored */
    char fatal[128];
    if (rd_kafka_fatal_error(s->rk, fatal, sizeof(fatal)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        /* an idempotent producer that lost its sequence state cannot be used again */
        snprintf(res->error, sizeof(res->error), "kafka: producer failed: %s", fatal);
        rd_kafka_destroy(s->rk);
        s->rk = NULL;
    }
    return ERR_IO;
}

const struct sink_ops sink_kafka_ops = {"kafka", open_, send_, close_};
