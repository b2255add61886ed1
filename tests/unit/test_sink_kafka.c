/* tests/unit/test_sink_kafka.c — the kafka sink against librdkafka's mock
 * cluster, run inside this process: a batch arrives whole and in order with
 * key = event id and a "type" header; a record over message.max.bytes and a
 * record the broker refuses are rejected while the rest is delivered; a broker
 * that is down gives ERR_IO within the timeout and the same sink delivers once
 * it is back; transient broker errors are retried inside one send. What open()
 * refuses is checked without any broker. Each test reads its own topic back
 * with a consumer assigned to partition 0 from the beginning. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export/sink.h"

static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mcluster;
static char brokers[256];

static void quiet(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    (void)level;
    (void)fac;
    (void)buf;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup_cluster(void **state)
{
    (void)state;
    char errstr[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(c, quiet);
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof(errstr));
    if (!mock_rk)
        return -1;
    mcluster = rd_kafka_mock_cluster_new(mock_rk, 1);
    if (!mcluster)
        return -1;
    snprintf(brokers, sizeof(brokers), "%s", rd_kafka_mock_cluster_bootstraps(mcluster));
    return 0;
}

static int teardown_cluster(void **state)
{
    (void)state;
    rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(mock_rk);
    /* every librdkafka thread gone, so a leak check sees a quiet process */
    return rd_kafka_wait_destroyed(10000) == 0 ? 0 : -1;
}

/* A config as the runner gets it, through exporter_config_from_json. */
static void config(struct exporter_config *cfg, const char *url, const char *timeout,
                   const char *extra_json)
{
    char doc[1024];
    snprintf(doc, sizeof(doc),
             "{\"id\":\"k1\",\"type\":\"kafka\",\"url\":\"%s\",\"timeout\":\"%s\"%s%s}", url,
             timeout, extra_json ? "," : "", extra_json ? extra_json : "");
    json_error_t jerr;
    json_t *j = json_loads(doc, 0, &jerr);
    assert_non_null(j);
    struct err_detail d = {{0}};
    assert_int_equal(exporter_config_from_json(j, NULL, cfg, &d), 0);
    json_decref(j);
}

static struct sink *open_topic(const char *topic, const char *timeout)
{
    char url[512];
    snprintf(url, sizeof(url), "kafka://%s/%s", brokers, topic);
    assert_int_equal(rd_kafka_mock_topic_create(mcluster, topic, 1, 1), 0);
    struct exporter_config cfg;
    config(&cfg, url, timeout, NULL);
    struct sink *s = NULL;
    struct err_detail d = {{0}};
    assert_int_equal(sink_kafka_ops.open(&cfg, &s, &d), 0);
    exporter_config_done(&cfg); /* the sink keeps nothing borrowed */
    return s;
}

struct recs {
    struct export_record rec[64];
    char id[64][40];
    char data[64][64];
};

static void make(struct recs *r, size_t n, int base)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(r->id[i], sizeof(r->id[i]), "019a4f6e-0000-7000-8000-%012d", base + (int)i);
        snprintf(r->data[i], sizeof(r->data[i]), "{\"n\":%d}", base + (int)i);
        r->rec[i] = (struct export_record){.seq = base + (int64_t)i,
                                           .id = r->id[i],
                                           .type = "token.request",
                                           .data = r->data[i],
                                           .len = strlen(r->data[i])};
    }
}

struct got {
    size_t n;
    char key[128][40];
    char val[128][64];
    char type[128][32];
};

/* Reads `topic` partition 0 from the beginning until `want` messages or 10 s. */
static void consume(const char *topic, size_t want, struct got *g)
{
    char errstr[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(c, quiet);
    assert_int_equal(rd_kafka_conf_set(c, "bootstrap.servers", brokers, errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(c, "group.id", "test", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(c, "enable.auto.commit", "false", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);
    memset(g, 0, sizeof(*g));
    int64_t deadline = now_ms() + 10000;
    while (g->n < want && now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && g->n < 128) {
            snprintf(g->key[g->n], sizeof(g->key[0]), "%.*s", (int)m->key_len,
                     (const char *)m->key);
            snprintf(g->val[g->n], sizeof(g->val[0]), "%.*s", (int)m->len,
                     (const char *)m->payload);
            rd_kafka_headers_t *h = NULL;
            const void *v = NULL;
            size_t vn = 0;
            if (rd_kafka_message_headers(m, &h) == 0 &&
                rd_kafka_header_get_last(h, "type", &v, &vn) == 0)
                snprintf(g->type[g->n], sizeof(g->type[0]), "%.*s", (int)vn, (const char *)v);
            g->n++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static void test_open_refuses(void **state)
{
    (void)state;
    static const struct {
        const char *url, *extra, *needle;
    } bad[] = {
        {"http://b:9092/t", NULL, "kafka://"},
        {"kafka://b:9092", NULL, "topic"},
        {"kafka://b:9092/a/b", NULL, "topic"},
        {"kafka://b:9092/t", "\"tls\":{\"key_file\":\"/k.pem\"}", "cert_file"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct exporter_config cfg;
        config(&cfg, bad[i].url, "1s", bad[i].extra);
        struct sink *s = (struct sink *)&cfg; /* must stay untouched */
        struct err_detail d = {{0}};
        assert_int_equal(sink_kafka_ops.open(&cfg, &s, &d), ERR_INVAL);
        assert_ptr_equal(s, (struct sink *)&cfg);
        assert_non_null(strstr(d.msg, bad[i].needle));
        exporter_config_done(&cfg);
    }
    /* SASL needs both halves; the password never shows in the message */
    struct exporter_config cfg;
    config(&cfg, "kafka://b:9092/t", "1s", NULL);
    cfg.auth.password = strdup("s3cret-pw");
    struct sink *s = NULL;
    struct err_detail d = {{0}};
    assert_int_equal(sink_kafka_ops.open(&cfg, &s, &d), ERR_INVAL);
    assert_null(strstr(d.msg, "s3cret"));
    /* both halves and TLS files: open() checks nothing on the network */
    cfg.auth.username = strdup("svc");
    cfg.tls.ca_file = strdup("/nonexistent/ca.pem");
    assert_int_equal(sink_kafka_ops.open(&cfg, &s, &d), 0);
    sink_kafka_ops.close(s);
    sink_kafka_ops.close(NULL);
    exporter_config_done(&cfg);
}

static void test_delivers_in_order(void **state)
{
    (void)state;
    struct sink *s = open_topic("t-order", "5s");
    struct recs r;
    make(&r, 20, 100);
    unsigned char rej[20] = {0};
    struct sink_result res = {.rejected = rej};
    struct export_batch b = {r.rec, 20};
    assert_int_equal(sink_kafka_ops.send(s, &b, &res), 0);
    assert_int_equal(res.acked, 20);
    assert_string_equal(res.error, "");
    /* the producer is kept: a second batch goes through the same one */
    make(&r, 5, 200);
    b.n = 5;
    memset(&res, 0, sizeof(res));
    res.rejected = rej;
    assert_int_equal(sink_kafka_ops.send(s, &b, &res), 0);
    assert_int_equal(res.acked, 5);
    sink_kafka_ops.close(s);

    static struct got g;
    consume("t-order", 25, &g);
    assert_int_equal(g.n, 25);
    for (int i = 0; i < 25; i++) {
        int n = i < 20 ? 100 + i : 200 + i - 20;
        char id[40], val[64];
        snprintf(id, sizeof(id), "019a4f6e-0000-7000-8000-%012d", n);
        snprintf(val, sizeof(val), "{\"n\":%d}", n);
        assert_string_equal(g.key[i], id);
        assert_string_equal(g.val[i], val);
        assert_string_equal(g.type[i], "token.request");
    }
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(rej[i], 0);
}

static void test_rejects_oversized(void **state)
{
    (void)state;
    struct sink *s = open_topic("t-big", "5s");
    struct recs r;
    make(&r, 3, 300);
    size_t big_n = 1200 * 1000; /* over the default message.max.bytes (1000000) */
    char *big = malloc(big_n);
    assert_non_null(big);
    memset(big, 'x', big_n);
    r.rec[1].data = big;
    r.rec[1].len = big_n;
    unsigned char rej[3] = {0};
    struct sink_result res = {.rejected = rej};
    struct export_batch b = {r.rec, 3};
    assert_int_equal(sink_kafka_ops.send(s, &b, &res), 0);
    assert_int_equal(res.acked, 3);
    assert_int_equal(rej[0], 0);
    assert_int_equal(rej[1], 1);
    assert_int_equal(rej[2], 0);
    assert_non_null(strstr(res.error, "t-big"));
    free(big);

    /* the broker refuses a record: rejected too, and the sink goes on */
    rd_kafka_mock_push_request_errors(mcluster, 0 /* Produce */, 1,
                                      RD_KAFKA_RESP_ERR_INVALID_RECORD);
    make(&r, 1, 310);
    b.n = 1;
    memset(&res, 0, sizeof(res));
    res.rejected = rej;
    rej[0] = 0;
    assert_int_equal(sink_kafka_ops.send(s, &b, &res), 0);
    assert_int_equal(res.acked, 1);
    assert_int_equal(rej[0], 1);
    make(&r, 1, 320);
    memset(&res, 0, sizeof(res));
    res.rejected = rej;
    rej[0] = 0;
    assert_int_equal(sink_kafka_ops.send(s, &b, &res), 0);
    assert_int_equal(rej[0], 0);
    sink_kafka_ops.close(s);

    static struct got g;
    consume("t-big", 3, &g);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.val[0], "{\"n\":300}");
    assert_string_equal(g.val[1], "{\"n\":302}");
    assert_string_equal(g.val[2], "{\"n\":320}");
}

static void test_transient_errors_retried(void **state)
{
    (void)state;
    struct sink *s = open_topic("t-retry", "5s");
    rd_kafka_mock_push_request_errors(mcluster, 0 /* Produce */, 2,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    struct recs r;
    make(&r, 10, 400);
    unsigned char rej[10] = {0};
    struct sink_result res = {.rejected = rej};
    struct export_batch b = {r.rec, 10};
    assert_int_equal(sink_kafka_ops.send(s, &b, &res), 0);
    assert_int_equal(res.acked, 10);
    sink_kafka_ops.close(s);
    static struct got g;
    consume("t-retry", 10, &g);
    assert_int_equal(g.n, 10);
    for (int i = 0; i < 10; i++) {
        char val[64];
        snprintf(val, sizeof(val), "{\"n\":%d}", 400 + i);
        assert_string_equal(g.val[i], val);
    }
}

static void test_broker_down_then_back(void **state)
{
    (void)state;
    struct sink *s = open_topic("t-down", "2s");
    struct recs r;
    make(&r, 8, 500);
    unsigned char rej[8] = {0};
    struct sink_result res = {.rejected = rej};
    struct export_batch b = {r.rec, 8};

    assert_int_equal(rd_kafka_mock_broker_set_down(mcluster, 1), 0);
    int64_t t0 = now_ms();
    assert_int_equal(sink_kafka_ops.send(s, &b, &res), ERR_IO);
    int64_t took = now_ms() - t0;
    assert_true(took < 3500);
    assert_int_equal(res.acked, 0);
    assert_non_null(strstr(res.error, "t-down"));
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(rej[i], 0);

    assert_int_equal(rd_kafka_mock_broker_set_up(mcluster, 1), 0);
    int rc = ERR_IO;
    for (int attempt = 0; attempt < 4 && rc != 0; attempt++) {
        memset(&res, 0, sizeof(res));
        res.rejected = rej;
        rc = sink_kafka_ops.send(s, &b, &res);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(res.acked, 8);
    sink_kafka_ops.close(s);

    /* at least once: all of them, in order, each first seen in batch order */
    static struct got g;
    consume("t-down", 8, &g);
    assert_true(g.n >= 8);
    size_t next = 0;
    for (size_t i = 0; i < g.n && next < 8; i++)
        if (strcmp(g.key[i], r.id[next]) == 0)
            next++;
    assert_int_equal(next, 8);
}

/* A broker that takes the batch and answers too late: ERR_IO within the timeout,
 * the in-flight requests purged; the same producer delivers once answers are
 * quick again (copies of the late batch may precede: at least once). */
static void test_broker_slow(void **state)
{
    (void)state;
    struct sink *s = open_topic("t-slow", "1500ms");
    struct recs r;
    make(&r, 2, 600);
    unsigned char rej[8] = {0};
    struct sink_result res = {.rejected = rej};
    struct export_batch b = {r.rec, 2};
    assert_int_equal(sink_kafka_ops.send(s, &b, &res), 0); /* producer id obtained */

    make(&r, 6, 700);
    b.n = 6;
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mcluster, 1, 4000), 0);
    int64_t t0 = now_ms();
    memset(&res, 0, sizeof(res));
    res.rejected = rej;
    int rc = sink_kafka_ops.send(s, &b, &res);
    int64_t took = now_ms() - t0;
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mcluster, 1, 0), 0);
    assert_int_equal(rc, ERR_IO);
    assert_true(took < 3000);
    assert_int_equal(res.acked, 0);
    assert_non_null(strstr(res.error, "t-slow"));

    rc = ERR_IO;
    for (int attempt = 0; attempt < 6 && rc != 0; attempt++) {
        memset(&res, 0, sizeof(res));
        res.rejected = rej;
        rc = sink_kafka_ops.send(s, &b, &res);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(res.acked, 6);
    sink_kafka_ops.close(s);

    static struct got g;
    consume("t-slow", 8, &g);
    assert_true(g.n >= 8);
    assert_string_equal(g.val[0], "{\"n\":600}");
    size_t next = 0;
    for (size_t i = 2; i < g.n && next < 6; i++)
        if (strcmp(g.key[i], r.id[next]) == 0)
            next++;
    assert_int_equal(next, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_refuses),
        cmocka_unit_test(test_delivers_in_order),
        cmocka_unit_test(test_rejects_oversized),
        cmocka_unit_test(test_transient_errors_retried),
        cmocka_unit_test(test_broker_down_then_back),
        cmocka_unit_test(test_broker_slow),
    };
    return cmocka_run_group_tests(tests, setup_cluster, teardown_cluster);
}
