/* tests/unit/test_sink_http.c — export/sink_http against a scripted HTTP/1.1 receiver:
 * the body and headers of each profile (webhook with its HMAC signature, Splunk HEC,
 * Loki push, Elasticsearch _bulk), the settling rules (2xx, 5xx, per-item _bulk
 * statuses, a poison record found one by one, 401 retried not refused), the time
 * bound on a receiver that never answers, a receiver that is down, secrets kept
 * out of errors, and what open() refuses. The receiver is a thread on
 * 127.0.0.1:<ephemeral> that answers one request per connection from a script
 * (or a handler) and records every request it saw. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/timeutil.h"
#include "export/sink.h"

/* ---- the receiver ---- */

#define MAX_REQS 32
#define MAX_HUNG 8

struct req {
    char target[512];
    char headers[4096];
    char *body;
    size_t len;
};

struct reply {
    int status;
    const char *body;
};

struct server {
    int fd;
    unsigned port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    struct req reqs[MAX_REQS];
    size_t nreqs;
    struct reply script[MAX_REQS]; /* answers in order; then `handler`, then 200 */
    size_t nscript, next;
    struct reply (*handler)(const struct req *r);
    bool hang; /* read the request, never answer */
    int hung[MAX_HUNG];
    size_t nhung;
};

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Reads one request; false if the client went away first. */
static bool read_request(int cfd, struct req *r)
{
    char *buf = malloc(1 << 20);
    size_t len = 0, need = 0;
    char *end = NULL;
    assert_non_null(buf);
    while (len < (1 << 20) - 1) {
        ssize_t n = recv(cfd, buf + len, (1 << 20) - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (!end && (end = strstr(buf, "\r\n\r\n"))) {
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            need = (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
        }
        if (end && len >= need)
            break;
    }
    if (!end || len < need) {
        free(buf);
        return false;
    }
    memset(r, 0, sizeof(*r));
    const char *sp = strchr(buf, ' ');
    size_t tl = sp ? strcspn(sp + 1, " ") : 0;
    snprintf(r->target, sizeof(r->target), "%.*s", (int)tl, sp ? sp + 1 : "");
    snprintf(r->headers, sizeof(r->headers), "%.*s", (int)(end + 2 - buf), buf);
    r->len = need - (size_t)(end + 4 - buf);
    r->body = malloc(r->len + 1);
    memcpy(r->body, end + 4, r->len);
    r->body[r->len] = '\0';
    free(buf);
    return true;
}

static void serve_one(struct server *s, int cfd)
{
    struct timeval tv = {.tv_sec = 3};
    setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct req r;
    if (!read_request(cfd, &r)) {
        close(cfd);
        return;
    }
    pthread_mutex_lock(&s->lock);
    struct reply rep = {200, ""};
    if (s->next < s->nscript)
        rep = s->script[s->next++];
    else if (s->handler)
        rep = s->handler(&r);
    bool hang = s->hang;
    if (s->nreqs < MAX_REQS)
        s->reqs[s->nreqs++] = r;
    else
        free(r.body);
    if (hang && s->nhung < MAX_HUNG)
        s->hung[s->nhung++] = cfd;
    pthread_mutex_unlock(&s->lock);
    if (hang)
        return;
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     rep.status, strlen(rep.body));
    send_all(cfd, head, (size_t)n);
    send_all(cfd, rep.body, strlen(rep.body));
    shutdown(cfd, SHUT_WR);
    close(cfd);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int cfd = accept(s->fd, NULL, NULL);
        if (cfd >= 0)
            serve_one(s, cfd);
    }
    return NULL;
}

static void server_start(struct server *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 64), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    for (size_t i = 0; i < s->nhung; i++)
        close(s->hung[i]);
    close(s->fd);
    for (size_t i = 0; i < s->nreqs; i++)
        free(s->reqs[i].body);
    pthread_mutex_destroy(&s->lock);
}

static void script(struct server *s, int status, const char *body)
{
    pthread_mutex_lock(&s->lock);
    s->script[s->nscript++] = (struct reply){status, body};
    pthread_mutex_unlock(&s->lock);
}

static size_t nreqs(struct server *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->nreqs;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* The value of header `name` in request r (copied into out), or NULL. */
static const char *header(const struct req *r, const char *name, char *out, size_t n)
{
    char key[128];
    snprintf(key, sizeof(key), "\r\n%s:", name);
    const char *p = strcasestr(r->headers, key);
    if (!p)
        return NULL;
    p += strlen(key);
    while (*p == ' ')
        p++;
    size_t l = strcspn(p, "\r\n");
    snprintf(out, n, "%.*s", (int)l, p);
    return out;
}

/* ---- fixture: the receiver, a config and a sink ---- */

struct fx {
    struct server srv;
    struct exporter_config cfg;
    struct sink *sink;
    unsigned char rejected[16];
    struct sink_result res;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    server_start(&f->srv);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    sink_http_ops.close(f->sink);
    exporter_config_done(&f->cfg);
    server_stop(&f->srv);
    free(f);
    return 0;
}

/* Fills f->cfg from a JSON object whose "url" may hold one %u for the port. */
static int config(struct fx *f, const char *json_fmt, struct err_detail *d)
{
    char text[1024];
    snprintf(text, sizeof(text), json_fmt, f->srv.port);
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    if (!doc)
        fail_msg("bad test JSON: %s", je.text);
    exporter_config_done(&f->cfg);
    int r = exporter_config_from_json(doc, NULL, &f->cfg, d);
    json_decref(doc);
    return r;
}

static void open_sink(struct fx *f, const char *json_fmt, const char *token, const char *secret)
{
    struct err_detail d = {.msg = ""};
    assert_int_equal(config(f, json_fmt, &d), 0);
    if (token)
        f->cfg.auth.token = strdup(token);
    if (secret)
        f->cfg.auth.hmac_secret = strdup(secret);
    int r = sink_http_ops.open(&f->cfg, &f->sink, &d);
    if (r != 0)
        fail_msg("open: %d %s", r, d.msg);
}

static int open_fails(struct fx *f, const char *json_fmt, const char *token)
{
    struct err_detail d = {.msg = ""};
    int r = config(f, json_fmt, &d);
    if (r < 0)
        return r;
    if (token)
        f->cfg.auth.token = strdup(token);
    struct sink *s = (struct sink *)&d; /* must stay untouched */
    r = sink_http_ops.open(&f->cfg, &s, &d);
    assert_true(r < 0);
    assert_ptr_equal(s, (struct sink *)&d);
    assert_true(d.msg[0] != '\0');
    return r;
}

#define EV(id, time, data)                                                                         \
    {                                                                                              \
        0, id, time, "token.request", "info", NULL, data, sizeof(data) - 1                         \
    }

static const struct export_record recs[] = {
    EV("019a4f6e-0000-7000-8000-000000000001", "2026-11-22T09:14:03.512384Z",
       "{\"id\":\"019a4f6e-0000-7000-8000-000000000001\",\"n\":1}"),
    EV("019a4f6e-0000-7000-8000-000000000002", "2026-11-22T09:14:03.000001Z",
       "{\"id\":\"019a4f6e-0000-7000-8000-000000000002\",\"n\":2,\"s\":\"a\\\"b\"}"),
    EV("019a4f6e-0000-7000-8000-000000000003", "2026-11-22T09:14:04.250000Z",
       "{\"id\":\"019a4f6e-0000-7000-8000-000000000003\",\"n\":3}"),
    EV("019a4f6e-0000-7000-8000-000000000004", "2026-11-22T09:14:05Z",
       "{\"id\":\"019a4f6e-0000-7000-8000-000000000004\",\"n\":4}"),
    EV("019a4f6e-0000-7000-8000-000000000005", "2026-11-22T09:14:06Z",
       "{\"id\":\"019a4f6e-0000-7000-8000-000000000005\",\"n\":5}"),
};

static int send_n(struct fx *f, const struct export_record *rec, size_t n)
{
    memset(f->rejected, 0, sizeof(f->rejected));
    f->res = (struct sink_result){.acked = 99, .rejected = f->rejected};
    struct export_batch b = {rec, n};
    return sink_http_ops.send(f->sink, &b, &f->res);
}

static json_t *load(const char *p, size_t n)
{
    json_error_t je;
    json_t *j = json_loadb(p, n, 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %.*s", je.text, (int)n, p);
    return j;
}

/* ---- webhook ---- */

static void webhook_lines_signature_bearer(void **state)
{
    struct fx *f = *state;
    open_sink(f,
              "{\"id\":\"w\",\"type\":\"http\",\"profile\":\"webhook\","
              "\"url\":\"http://127.0.0.1:%u/hook?x=1\"}",
              "tok-123", "hmac-key");
    assert_int_equal(send_n(f, recs, 3), 0);
    assert_int_equal(f->res.acked, 3);
    assert_string_equal(f->res.error, "");
    assert_int_equal(nreqs(&f->srv), 1);
    const struct req *r = &f->srv.reqs[0];
    assert_true(strncmp(r->headers, "POST ", 5) == 0);
    assert_string_equal(r->target, "/hook?x=1");
    char want[1024];
    snprintf(want, sizeof(want), "%s\n%s\n%s\n", recs[0].data, recs[1].data, recs[2].data);
    assert_string_equal(r->body, want);

    char v[256];
    assert_non_null(header(r, "Content-Type", v, sizeof(v)));
    assert_string_equal(v, "application/x-ndjson");
    assert_non_null(header(r, "Authorization", v, sizeof(v)));
    assert_string_equal(v, "Bearer tok-123");
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), "hmac-key", 8, (const unsigned char *)r->body, r->len, mac, &ml);
    char hex[2 * EVP_MAX_MD_SIZE + 8] = "sha256=";
    for (unsigned i = 0; i < ml; i++)
        snprintf(hex + 7 + 2 * i, 3, "%02x", mac[i]);
    assert_non_null(header(r, "X-Mcpauth-Signature", v, sizeof(v)));
    assert_string_equal(v, hex);
}

static void webhook_cef_is_text_plain_unsigned(void **state)
{
    struct fx *f = *state;
    open_sink(f,
              "{\"id\":\"w\",\"type\":\"http\",\"profile\":\"webhook\",\"format\":\"cef\","
              "\"url\":\"http://127.0.0.1:%u/hook\"}",
              NULL, NULL);
    static const struct export_record cef[] = {EV("i1", "2026-11-22T09:14:03Z", "CEF:0|a|b")};
    assert_int_equal(send_n(f, cef, 1), 0);
    char v[256];
    const struct req *r = &f->srv.reqs[0];
    assert_string_equal(header(r, "Content-Type", v, sizeof(v)), "text/plain; charset=utf-8");
    assert_null(header(r, "X-Mcpauth-Signature", v, sizeof(v)));
    assert_null(header(r, "Authorization", v, sizeof(v)));
    assert_string_equal(r->body, "CEF:0|a|b\n");
}

/* ---- splunk_hec ---- */

static void splunk_hec_events(void **state)
{
    struct fx *f = *state;
    open_sink(f,
              "{\"id\":\"s\",\"type\":\"http\",\"profile\":\"splunk_hec\",\"index\":\"audit\","
              "\"url\":\"http://127.0.0.1:%u/services/collector/event\"}",
              "hec-token", NULL);
    script(&f->srv, 200, "{\"text\":\"Success\",\"code\":0}");
    assert_int_equal(send_n(f, recs, 2), 0);
    assert_int_equal(f->res.acked, 2);
    const struct req *r = &f->srv.reqs[0];
    assert_string_equal(r->target, "/services/collector/event");
    char v[256];
    assert_string_equal(header(r, "Authorization", v, sizeof(v)), "Splunk hec-token");

    const char *p = r->body;
    for (size_t i = 0; i < 2; i++) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        json_t *o = load(p, (size_t)(nl - p));
        int64_t us = 0;
        assert_int_equal(time_parse_rfc3339(recs[i].time, &us), 0);
        double t = json_number_value(json_object_get(o, "time"));
        assert_true(json_is_real(json_object_get(o, "time")));
        assert_true(t > (double)(us / 1000) / 1000 - 0.0005 &&
                    t < (double)(us / 1000) / 1000 + 0.0005);
        assert_string_equal(json_string_value(json_object_get(o, "source")), "mcpauth");
        assert_string_equal(json_string_value(json_object_get(o, "sourcetype")), "mcpauth:audit");
        assert_string_equal(json_string_value(json_object_get(o, "index")), "audit");
        assert_non_null(json_string_value(json_object_get(o, "host")));
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(o, "fields"), "event_id")),
            recs[i].id);
        json_t *ev = json_object_get(o, "event");
        assert_true(json_is_object(ev));
        json_t *want = load(recs[i].data, recs[i].len);
        assert_true(json_equal(ev, want));
        json_decref(want);
        json_decref(o);
        p = nl + 1;
    }
    assert_string_equal(p, "");
    /* the ms fraction is written out exactly */
    assert_non_null(strstr(r->body, ".512,"));
}

static void splunk_hec_rfc5424_event_is_a_string(void **state)
{
    struct fx *f = *state;
    open_sink(f,
              "{\"id\":\"s\",\"type\":\"http\",\"profile\":\"splunk_hec\",\"format\":\"rfc5424\","
              "\"url\":\"http://127.0.0.1:%u\"}",
              "hec-token", NULL);
    static const struct export_record sys[] = {
        EV("i1", "2026-11-22T09:14:03Z", "<110>1 2026-11-22T09:14:03Z h mcpauth - x [a=\"b\"] m")};
    assert_int_equal(send_n(f, sys, 1), 0);
    const struct req *r = &f->srv.reqs[0];
    assert_string_equal(r->target, "/services/collector/event"); /* bare URL completed */
    json_t *o = load(r->body, r->len);
    assert_string_equal(json_string_value(json_object_get(o, "event")), sys[0].data);
    assert_null(json_object_get(o, "index"));
    json_decref(o);
}

static void splunk_hec_bad_index_is_retried(void **state)
{
    struct fx *f = *state;
    open_sink(f,
              "{\"id\":\"s\",\"type\":\"http\",\"profile\":\"splunk_hec\",\"index\":\"nope\","
              "\"url\":\"http://127.0.0.1:%u/services/collector/event\"}",
              "hec-token", NULL);
    script(&f->srv, 400, "{\"text\":\"Incorrect index\",\"code\":7}");
    assert_int_equal(send_n(f, recs, 3), ERR_IO);
    assert_int_equal(f->res.acked, 0);
    assert_int_equal(nreqs(&f->srv), 1); /* not taken one by one */
    assert_non_null(strstr(f->res.error, "400"));
    assert_non_null(strstr(f->res.error, "Incorrect index"));
}

/* ---- loki ---- */

static void loki_push_in_time_order(void **state)
{
    struct fx *f = *state;
    open_sink(
        f, "{\"id\":\"l\",\"type\":\"http\",\"profile\":\"loki\",\"url\":\"http://127.0.0.1:%u\"}",
        "loki-token", NULL);
    script(&f->srv, 204, "");
    assert_int_equal(send_n(f, recs, 3), 0);
    assert_int_equal(f->res.acked, 3);
    const struct req *r = &f->srv.reqs[0];
    assert_string_equal(r->target, "/loki/api/v1/push");
    char v[256];
    assert_string_equal(header(r, "Content-Type", v, sizeof(v)), "application/json");
    assert_string_equal(header(r, "Authorization", v, sizeof(v)), "Bearer loki-token");
    json_t *o = load(r->body, r->len);
    json_t *streams = json_object_get(o, "streams");
    assert_int_equal(json_array_size(streams), 1);
    json_t *st = json_array_get(streams, 0);
    json_t *labels = json_pack("{s:s}", "job", "mcpauth");
    assert_true(json_equal(json_object_get(st, "stream"), labels));
    json_decref(labels);
    json_t *values = json_object_get(st, "values");
    assert_int_equal(json_array_size(values), 3);
    /* recs[1] is the earliest: it comes first */
    static const size_t order[] = {1, 0, 2};
    static const char *const ns[] = {"1795338843000001000", "1795338843512384000",
                                     "1795338844250000000"};
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(values, i);
        assert_string_equal(json_string_value(json_array_get(e, 0)), ns[i]);
        assert_string_equal(json_string_value(json_array_get(e, 1)), recs[order[i]].data);
    }
    json_decref(o);
}

static void loki_custom_labels(void **state)
{
    struct fx *f = *state;
    open_sink(f,
              "{\"id\":\"l\",\"type\":\"http\",\"profile\":\"loki\",\"labels\":{\"app\":\"auth\","
              "\"env\":\"prod\"},\"url\":\"http://127.0.0.1:%u/tenant/loki/api/v1/push\"}",
              NULL, NULL);
    assert_int_equal(send_n(f, recs, 1), 0);
    const struct req *r = &f->srv.reqs[0];
    assert_string_equal(r->target, "/tenant/loki/api/v1/push");
    json_t *o = load(r->body, r->len);
    json_t *want = json_pack("{s:s,s:s}", "app", "auth", "env", "prod");
    assert_true(json_equal(
        json_object_get(json_array_get(json_object_get(o, "streams"), 0), "stream"), want));
    json_decref(want);
    json_decref(o);
}

/* ---- elastic ---- */

static void elastic_bulk_lines(void **state)
{
    struct fx *f = *state;
    open_sink(
        f,
        "{\"id\":\"e\",\"type\":\"http\",\"profile\":\"elastic\",\"url\":\"http://127.0.0.1:%u\"}",
        NULL, NULL);
    script(&f->srv, 200, "{\"errors\":false}");
    assert_int_equal(send_n(f, recs, 2), 0);
    assert_int_equal(f->res.acked, 2);
    const struct req *r = &f->srv.reqs[0];
    assert_true(strncmp(r->target, "/_bulk?filter_path=", 19) == 0);
    char v[256];
    assert_string_equal(header(r, "Content-Type", v, sizeof(v)), "application/x-ndjson");
    const char *p = r->body;
    for (size_t i = 0; i < 2; i++) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        json_t *a = load(p, (size_t)(nl - p));
        json_t *c = json_object_get(a, "create");
        assert_string_equal(json_string_value(json_object_get(c, "_index")), "mcpauth-audit");
        assert_string_equal(json_string_value(json_object_get(c, "_id")), recs[i].id);
        json_decref(a);
        p = nl + 1;
        nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_int_equal((size_t)(nl - p), recs[i].len);
        assert_memory_equal(p, recs[i].data, recs[i].len);
        p = nl + 1;
    }
    assert_string_equal(p, "");
}

static void elastic_items_409_400_429(void **state)
{
    struct fx *f = *state;
    open_sink(f,
              "{\"id\":\"e\",\"type\":\"http\",\"profile\":\"elastic\",\"index\":\"siem\","
              "\"url\":\"http://127.0.0.1:%u/es/_bulk\"}",
              NULL, NULL);
    script(
        &f->srv, 200,
        "{\"errors\":true,\"items\":["
        "{\"create\":{\"status\":201}},"
        "{\"create\":{\"status\":409,\"error\":{\"type\":\"version_conflict_engine_exception\"}}},"
        "{\"create\":{\"status\":400,\"error\":{\"type\":\"mapper_parsing_exception\","
        "\"reason\":\"failed to parse field [n]\"}}},"
        "{\"create\":{\"status\":429,\"error\":{\"type\":\"es_rejected_execution_exception\"}}},"
        "{\"create\":{\"status\":201}}]}");
    assert_int_equal(send_n(f, recs, 5), ERR_IO);
    assert_int_equal(f->res.acked, 3);
    assert_int_equal(f->rejected[0], 0);
    assert_int_equal(f->rejected[1], 0); /* 409: already there, a resend */
    assert_int_equal(f->rejected[2], 1);
    assert_int_equal(f->rejected[3], 0);
    assert_int_equal(f->rejected[4], 0);
    assert_non_null(strstr(f->res.error, "429"));
    const struct req *r = &f->srv.reqs[0];
    assert_true(strncmp(r->target, "/es/_bulk?filter_path=", 22) == 0);
    assert_non_null(strstr(r->body, "\"_index\":\"siem\""));

    /* without a transient item: 0, all settled, the refusal explained */
    script(&f->srv, 200,
           "{\"errors\":true,\"items\":[{\"create\":{\"status\":201}},"
           "{\"create\":{\"status\":400,\"error\":{\"type\":\"mapper_parsing_exception\"}}}]}");
    assert_int_equal(send_n(f, recs, 2), 0);
    assert_int_equal(f->res.acked, 2);
    assert_int_equal(f->rejected[0], 0);
    assert_int_equal(f->rejected[1], 1);
    assert_non_null(strstr(f->res.error, "mapper_parsing_exception"));
}

static void elastic_unreadable_answer_goes_one_by_one(void **state)
{
    struct fx *f = *state;
    open_sink(
        f,
        "{\"id\":\"e\",\"type\":\"http\",\"profile\":\"elastic\",\"url\":\"http://127.0.0.1:%u\"}",
        NULL, NULL);
    script(&f->srv, 200, "{\"errors\":true,\"items\":[]}"); /* items missing */
    script(&f->srv, 200, "{\"errors\":false}");
    script(&f->srv, 200, "{\"errors\":true,\"items\":[{\"index\":{\"status\":400}}]}");
    assert_int_equal(send_n(f, recs, 2), 0);
    assert_int_equal(f->res.acked, 2);
    assert_int_equal(f->rejected[0], 0);
    assert_int_equal(f->rejected[1], 1);
    assert_int_equal(nreqs(&f->srv), 3);
}

/* ---- status handling ---- */

static void status_503_is_transient(void **state)
{
    struct fx *f = *state;
    open_sink(
        f,
        "{\"id\":\"w\",\"type\":\"http\",\"profile\":\"webhook\",\"url\":\"http://127.0.0.1:%u/\"}",
        NULL, NULL);
    script(&f->srv, 503, "{\"error\":\"overloaded\"}");
    assert_int_equal(send_n(f, recs, 3), ERR_IO);
    assert_int_equal(f->res.acked, 0);
    assert_int_equal(f->rejected[0] + f->rejected[1] + f->rejected[2], 0);
    assert_non_null(strstr(f->res.error, "503"));
    /* the same sink works again afterwards */
    assert_int_equal(send_n(f, recs, 3), 0);
    assert_int_equal(f->res.acked, 3);
}

static struct reply refuse_poison(const struct req *r)
{
    if (strstr(r->body, "poison"))
        return (struct reply){400, "{\"error\":\"bad event\"}"};
    return (struct reply){200, "{}"};
}

static void poison_record_found_one_by_one(void **state)
{
    struct fx *f = *state;
    open_sink(
        f,
        "{\"id\":\"w\",\"type\":\"http\",\"profile\":\"webhook\",\"url\":\"http://127.0.0.1:%u/\"}",
        NULL, NULL);
    f->srv.handler = refuse_poison;
    static const struct export_record batch[] = {
        EV("a", "2026-11-22T09:14:03Z", "{\"n\":1}"),
        EV("b", "2026-11-22T09:14:03Z", "{\"n\":2,\"x\":\"poison\"}"),
        EV("c", "2026-11-22T09:14:03Z", "{\"n\":3}"),
    };
    assert_int_equal(send_n(f, batch, 3), 0);
    assert_int_equal(f->res.acked, 3);
    assert_int_equal(f->rejected[0], 0);
    assert_int_equal(f->rejected[1], 1);
    assert_int_equal(f->rejected[2], 0);
    assert_non_null(strstr(f->res.error, "400"));
    assert_int_equal(nreqs(&f->srv), 4); /* the batch, then each record alone */
    assert_string_equal(f->srv.reqs[1].body, "{\"n\":1}\n");
    assert_string_equal(f->srv.reqs[3].body, "{\"n\":3}\n");

    /* a batch of one refused: rejected at once */
    assert_int_equal(send_n(f, batch + 1, 1), 0);
    assert_int_equal(f->res.acked, 1);
    assert_int_equal(f->rejected[0], 1);
    assert_int_equal(nreqs(&f->srv), 5);
}

static void poison_search_stops_at_transient(void **state)
{
    struct fx *f = *state;
    open_sink(
        f,
        "{\"id\":\"w\",\"type\":\"http\",\"profile\":\"webhook\",\"url\":\"http://127.0.0.1:%u/\"}",
        NULL, NULL);
    script(&f->srv, 422, "");
    script(&f->srv, 422, "");
    script(&f->srv, 200, "");
    script(&f->srv, 502, "");
    assert_int_equal(send_n(f, recs, 4), ERR_IO);
    assert_int_equal(f->res.acked, 2);
    assert_int_equal(f->rejected[0], 1);
    assert_int_equal(f->rejected[1], 0);
    assert_non_null(strstr(f->res.error, "502"));
}

static void unauthorized_is_retried_not_refused(void **state)
{
    struct fx *f = *state;
    open_sink(
        f,
        "{\"id\":\"w\",\"type\":\"http\",\"profile\":\"webhook\",\"url\":\"http://127.0.0.1:%u/\"}",
        "TOPSECRET-token", "TOPSECRET-hmac");
    /* a receiver that quotes our credentials back must not get them into the error */
    script(&f->srv, 401, "{\"error\":\"bad token TOPSECRET-token\"}");
    assert_int_equal(send_n(f, recs, 3), ERR_IO);
    assert_int_equal(f->res.acked, 0);
    assert_int_equal(nreqs(&f->srv), 1);
    assert_non_null(strstr(f->res.error, "401"));
    assert_null(strstr(f->res.error, "TOPSECRET"));
    script(&f->srv, 400, "{\"error\":\"bad hmac TOPSECRET-hmac\"}");
    assert_int_equal(send_n(f, recs, 1), 0);
    assert_int_equal(f->rejected[0], 1);
    assert_null(strstr(f->res.error, "TOPSECRET"));
    script(&f->srv, 302, "");
    assert_int_equal(send_n(f, recs, 1), ERR_IO);
    assert_non_null(strstr(f->res.error, "redirect"));
}

static void silent_receiver_times_out(void **state)
{
    struct fx *f = *state;
    open_sink(f,
              "{\"id\":\"w\",\"type\":\"http\",\"profile\":\"webhook\",\"timeout\":\"500ms\","
              "\"url\":\"http://127.0.0.1:%u/\"}",
              "TOPSECRET-token", NULL);
    f->srv.hang = true;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(send_n(f, recs, 2), ERR_IO);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    assert_true(ms >= 400);
    assert_true(ms < 2500);
    assert_int_equal(f->res.acked, 0);
    assert_true(f->res.error[0] != '\0');
    assert_null(strstr(f->res.error, "TOPSECRET"));
}

static void receiver_down(void **state)
{
    struct fx *f = *state;
    /* a port nobody listens on: bind one, then let it go */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    char doc[256];
    snprintf(doc, sizeof(doc),
             "{\"id\":\"w\",\"type\":\"http\",\"profile\":\"webhook\",\"timeout\":\"2s\","
             "\"url\":\"http://127.0.0.1:%u/\"}",
             ntohs(a.sin_port));
    open_sink(f, doc, "TOPSECRET-token", "TOPSECRET-hmac");
    assert_int_equal(send_n(f, recs, 3), ERR_IO);
    assert_int_equal(f->res.acked, 0);
    assert_true(f->res.error[0] != '\0');
    assert_null(strstr(f->res.error, "TOPSECRET"));
}

/* An answer past 64 KiB is cut off: the status still counts, and a _bulk answer
 * that said "errors":false up front needs nothing more. */
static void big_answer_is_cut_off(void **state)
{
    struct fx *f = *state;
    open_sink(f,
              "{\"id\":\"e\",\"type\":\"http\",\"profile\":\"elastic\",\"url\":\"http://"
              "127.0.0.1:%u\"}",
              NULL, NULL);
    size_t n = 200 * 1024;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "{\"errors\":false,\"items\":[", 25);
    big[n - 2] = ']';
    big[n - 1] = '}';
    big[n] = '\0';
    script(&f->srv, 200, big);
    assert_int_equal(send_n(f, recs, 2), 0);
    assert_int_equal(f->res.acked, 2);
    script(&f->srv, 503, big);
    assert_int_equal(send_n(f, recs, 2), ERR_IO);
    assert_non_null(strstr(f->res.error, "503"));
    /* and the next request works on a new connection */
    script(&f->srv, 200, "{\"errors\":false}");
    assert_int_equal(send_n(f, recs, 2), 0);
    assert_int_equal(nreqs(&f->srv), 3);
    free(big);
}

/* ---- open ---- */

static void open_refuses(void **state)
{
    struct fx *f = *state;
    assert_int_equal(open_fails(f,
                                "{\"id\":\"x\",\"type\":\"http\",\"profile\":\"webhook\","
                                "\"url\":\"ftp://127.0.0.1:%u/\"}",
                                NULL),
                     ERR_INVAL);
    assert_int_equal(
        open_fails(f, "{\"id\":\"x\",\"type\":\"http\",\"url\":\"http://127.0.0.1:%u/\"}", NULL),
        ERR_INVAL);
    assert_int_equal(open_fails(f,
                                "{\"id\":\"x\",\"type\":\"http\",\"profile\":\"kafka\","
                                "\"url\":\"http://127.0.0.1:%u/\"}",
                                NULL),
                     ERR_INVAL);
    assert_int_equal(open_fails(f,
                                "{\"id\":\"x\",\"type\":\"http\",\"profile\":\"elastic\","
                                "\"format\":\"cef\",\"url\":\"http://127.0.0.1:%u/\"}",
                                NULL),
                     ERR_INVAL);
    assert_int_equal(open_fails(f,
                                "{\"id\":\"x\",\"type\":\"http\",\"profile\":\"splunk_hec\","
                                "\"url\":\"https://127.0.0.1:%u/\"}",
                                NULL),
                     ERR_INVAL);
    assert_int_equal(open_fails(f,
                                "{\"id\":\"x\",\"type\":\"http\",\"profile\":\"webhook\","
                                "\"tls\":{\"ca_file\":\"/nonexistent/ca.pem\"},"
                                "\"url\":\"https://127.0.0.1:%u/\"}",
                                NULL),
                     ERR_INVAL);
    /* accepted: no connection is made by open() */
    open_sink(f,
              "{\"id\":\"x\",\"type\":\"http\",\"profile\":\"splunk_hec\",\"format\":\"cef\","
              "\"url\":\"https://127.0.0.1:%u/\"}",
              "t", NULL);
    assert_int_equal(nreqs(&f->srv), 0);
}

int main(void)
{
    setenv("NO_PROXY", "*", 1); /* a proxy from the environment must not catch loopback */
    setenv("no_proxy", "*", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(webhook_lines_signature_bearer, setup, teardown),
        cmocka_unit_test_setup_teardown(webhook_cef_is_text_plain_unsigned, setup, teardown),
        cmocka_unit_test_setup_teardown(splunk_hec_events, setup, teardown),
        cmocka_unit_test_setup_teardown(splunk_hec_rfc5424_event_is_a_string, setup, teardown),
        cmocka_unit_test_setup_teardown(splunk_hec_bad_index_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(loki_push_in_time_order, setup, teardown),
        cmocka_unit_test_setup_teardown(loki_custom_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(elastic_bulk_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(elastic_items_409_400_429, setup, teardown),
        cmocka_unit_test_setup_teardown(elastic_unreadable_answer_goes_one_by_one, setup, teardown),
        cmocka_unit_test_setup_teardown(status_503_is_transient, setup, teardown),
        cmocka_unit_test_setup_teardown(poison_record_found_one_by_one, setup, teardown),
        cmocka_unit_test_setup_teardown(poison_search_stops_at_transient, setup, teardown),
        cmocka_unit_test_setup_teardown(unauthorized_is_retried_not_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(silent_receiver_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(receiver_down, setup, teardown),
        cmocka_unit_test_setup_teardown(big_answer_is_cut_off, setup, teardown),
        cmocka_unit_test_setup_teardown(open_refuses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
