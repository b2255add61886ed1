/* tests/unit/test_sink_nats.c — the nats sink against a real nats-server with
 * JetStream, started by this test as a child process on a free loopback port
 * with a temporary store dir (killed in every path: teardown, atexit, and the
 * child's parent-death signal). Streams are created here, as an operator
 * would. Checked: a batch is stored whole and in order with Nats-Msg-Id = event
 * id; the same batch sent again adds nothing (JetStream dedup); a subject no
 * stream captures fails with a clear ERR_IO; records too large for the server
 * or the stream are rejected while the rest is stored; a killed server gives
 * ERR_IO within the timeout and the same sink delivers after a restart. What
 * open() refuses is checked without a server. Skipped when nats-server is not
 * installed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "export/sink.h"

static const char *server_bin;
static pid_t server_pid, auth_pid;
static int port;
static char store_dir[] = "/tmp/mcpauth-nats-XXXXXX";
static char url_base[64];

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reap(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        *pid = 0;
    }
}

static void stop_server(void)
{
    reap(&server_pid);
}

static void stop_all(void)
{
    reap(&server_pid);
    reap(&auth_pid);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &n) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int port_open(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)p),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Runs nats-server with `argv` (argv[0] unused) into *ret_pid; waits for `on_port`. */
static int spawn(char *const argv[], int on_port, pid_t *ret_pid)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        execv(server_bin, argv);
        _exit(127);
    }
    *ret_pid = pid;
    for (int64_t deadline = now_ms() + 5000; now_ms() < deadline; usleep(20000))
        if (port_open(on_port))
            return 0;
    reap(ret_pid);
    return -1;
}

/* The JetStream server on `port`, its store in store_dir. */
static int start_server(void)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    char *const argv[] = {"nats-server", "-js", "-a", "127.0.0.1", "-p", p, "-sd", store_dir, NULL};
    return spawn(argv, port, &server_pid);
}

static int setup(void **state)
{
    (void)state;
    static const char *const where[] = {"/usr/sbin/nats-server", "/usr/bin/nats-server",
                                        "/usr/local/bin/nats-server"};
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]) && !server_bin; i++)
        if (access(where[i], X_OK) == 0)
            server_bin = where[i];
    if (!server_bin)
        return 0; /* each test skips */
    atexit(stop_all);
    if (!mkdtemp(store_dir) || (port = free_port()) < 0)
        return -1;
    snprintf(url_base, sizeof(url_base), "nats://127.0.0.1:%d", port);
    return start_server();
}

static int teardown(void **state)
{
    (void)state;
    stop_all();
    if (store_dir[sizeof(store_dir) - 7] != 'X') {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", store_dir);
        if (system(cmd) != 0)
            return -1;
    }
    nats_CloseAndWait(5000); /* every libnats thread gone before the leak check */
    return 0;
}

/* An operator's view of the server: streams, messages by seq. */
struct admin {
    natsConnection *nc;
    jsCtx *js;
};

static void admin_open(struct admin *a)
{
    assert_int_equal(natsConnection_ConnectTo(&a->nc, url_base), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&a->js, a->nc, NULL), NATS_OK);
}

static void admin_close(struct admin *a)
{
    jsCtx_Destroy(a->js);
    natsConnection_Destroy(a->nc);
}

static void add_stream(struct admin *a, const char *name, const char *subject, int32_t max_msg)
{
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {subject};
    sc.Name = name;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.MaxMsgSize = max_msg;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus st = NATS_TIMEOUT;
    /* JetStream may still be starting when the port opens */
    for (int64_t deadline = now_ms() + 5000; st != NATS_OK && now_ms() < deadline;)
        if ((st = js_AddStream(&si, a->js, &sc, NULL, &jerr)) != NATS_OK)
            usleep(100000);
    assert_int_equal(st, NATS_OK);
    jsStreamInfo_Destroy(si);
}

static uint64_t stream_msgs(struct admin *a, const char *name)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    assert_int_equal(js_GetStreamInfo(&si, a->js, name, NULL, &jerr), NATS_OK);
    uint64_t n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

/* Stored message `seq` of `stream` has this data and Nats-Msg-Id. */
static void assert_stored(struct admin *a, const char *stream, uint64_t seq, const char *id,
                          const char *data)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    assert_int_equal(js_GetMsg(&m, a->js, stream, seq, NULL, &jerr), NATS_OK);
    assert_int_equal(natsMsg_GetDataLength(m), (int)strlen(data));
    assert_memory_equal(natsMsg_GetData(m), data, strlen(data));
    const char *v = NULL;
    assert_int_equal(natsMsgHeader_Get(m, "Nats-Msg-Id", &v), NATS_OK);
    assert_string_equal(v, id);
    natsMsg_Destroy(m);
}

static void config(struct exporter_config *cfg, const char *url, const char *timeout,
                   const char *extra_json)
{
    char doc[1024];
    snprintf(doc, sizeof(doc),
             "{\"id\":\"n1\",\"type\":\"nats\",\"url\":\"%s\",\"timeout\":\"%s\"%s%s}", url,
             timeout, extra_json ? "," : "", extra_json ? extra_json : "");
    json_error_t jerr;
    json_t *j = json_loads(doc, 0, &jerr);
    assert_non_null(j);
    struct err_detail d = {{0}};
    assert_int_equal(exporter_config_from_json(j, NULL, cfg, &d), 0);
    json_decref(j);
}

static struct sink *open_subject(const char *subject, const char *timeout)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/%s", url_base, subject);
    struct exporter_config cfg;
    config(&cfg, url, timeout, NULL);
    struct sink *s = NULL;
    struct err_detail d = {{0}};
    assert_int_equal(sink_nats_ops.open(&cfg, &s, &d), 0);
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

static int send_batch(struct sink *s, struct recs *r, size_t n, unsigned char *rej,
                      struct sink_result *res)
{
    memset(res, 0, sizeof(*res));
    memset(rej, 0, n);
    res->rejected = rej;
    struct export_batch b = {r->rec, n};
    return sink_nats_ops.send(s, &b, res);
}

static void test_open_refuses(void **state)
{
    (void)state;
    static const struct {
        const char *url, *extra, *needle;
    } bad[] = {
        {"tcp://h:4222/a", NULL, "nats://"},
        {"nats://h:4222", NULL, "subject"},
        {"nats://h:4222/a.*", NULL, "subject"},
        {"nats://h:4222/a..b", NULL, "subject"},
        {"nats://h:4222/a.>", NULL, "subject"},
        {"nats://h:4222/a", "\"tls\":{\"key_file\":\"/k.pem\"}", "cert_file"},
        {"nats://h:4222/a", "\"tls\":{\"ca_file\":\"/nonexistent/ca.pem\"}", "ca_file"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct exporter_config cfg;
        config(&cfg, bad[i].url, "1s", bad[i].extra);
        struct sink *s = (struct sink *)&cfg; /* must stay untouched */
        struct err_detail d = {{0}};
        assert_int_equal(sink_nats_ops.open(&cfg, &s, &d), ERR_INVAL);
        assert_ptr_equal(s, (struct sink *)&cfg);
        assert_non_null(strstr(d.msg, bad[i].needle));
        exporter_config_done(&cfg);
    }
    struct exporter_config cfg;
    config(&cfg, "nats://h/audit.events", "1s", NULL);
    cfg.auth.password = strdup("s3cret-pw");
    struct sink *s = NULL;
    struct err_detail d = {{0}};
    assert_int_equal(sink_nats_ops.open(&cfg, &s, &d), ERR_INVAL);
    assert_null(strstr(d.msg, "s3cret"));
    cfg.auth.username = strdup("svc");
    assert_int_equal(sink_nats_ops.open(&cfg, &s, &d), 0); /* nothing dialled */
    sink_nats_ops.close(s);
    sink_nats_ops.close(NULL);
    exporter_config_done(&cfg);
}

static void test_stores_in_order_and_dedups(void **state)
{
    (void)state;
    if (!server_bin)
        skip();
    struct admin a;
    admin_open(&a);
    add_stream(&a, "ORDER", "audit.order", 0);
    struct sink *s = open_subject("audit.order", "5s");
    struct recs r;
    unsigned char rej[64];
    struct sink_result res;
    make(&r, 40, 100);
    assert_int_equal(send_batch(s, &r, 40, rej, &res), 0);
    assert_int_equal(res.acked, 40);
    assert_string_equal(res.error, "");
    assert_int_equal(stream_msgs(&a, "ORDER"), 40);
    for (size_t i = 0; i < 40; i++) {
        assert_int_equal(rej[i], 0);
        assert_stored(&a, "ORDER", i + 1, r.id[i], r.data[i]);
    }
    /* at least once, exactly once in the stream: the same ids again add nothing */
    assert_int_equal(send_batch(s, &r, 40, rej, &res), 0);
    assert_int_equal(res.acked, 40);
    assert_int_equal(stream_msgs(&a, "ORDER"), 40);
    /* the connection is kept; new ids follow */
    make(&r, 3, 200);
    assert_int_equal(send_batch(s, &r, 3, rej, &res), 0);
    assert_int_equal(stream_msgs(&a, "ORDER"), 43);
    assert_stored(&a, "ORDER", 43, r.id[2], r.data[2]);
    sink_nats_ops.close(s);
    admin_close(&a);
}

static void test_no_stream(void **state)
{
    (void)state;
    if (!server_bin)
        skip();
    struct sink *s = open_subject("nobody.listens", "3s");
    struct recs r;
    unsigned char rej[64];
    struct sink_result res;
    make(&r, 5, 300);
    int64_t t0 = now_ms();
    assert_int_equal(send_batch(s, &r, 5, rej, &res), ERR_IO);
    assert_true(now_ms() - t0 < 3500);
    assert_int_equal(res.acked, 0);
    assert_non_null(strstr(res.error, "no JetStream stream captures subject nobody.listens"));
    sink_nats_ops.close(s);
}

static void test_rejects_oversized(void **state)
{
    (void)state;
    if (!server_bin)
        skip();
    struct admin a;
    admin_open(&a);
    add_stream(&a, "SMALL", "audit.small", 100);
    struct sink *s = open_subject("audit.small", "5s");
    struct recs r;
    unsigned char rej[64];
    struct sink_result res;
    make(&r, 4, 400);
    char mid[200];
    memset(mid, 'x', sizeof(mid)); /* over the stream's max_msg_size */
    r.rec[1].data = mid;
    r.rec[1].len = sizeof(mid);
    size_t big_n = 1200 * 1000; /* over the server's max_payload (1 MiB) */
    char *big = malloc(big_n);
    assert_non_null(big);
    memset(big, 'y', big_n);
    r.rec[2].data = big;
    r.rec[2].len = big_n;
    assert_int_equal(send_batch(s, &r, 4, rej, &res), 0);
    free(big);
    assert_int_equal(res.acked, 4);
    assert_int_equal(rej[0], 0);
    assert_int_equal(rej[1], 1);
    assert_int_equal(rej[2], 1);
    assert_int_equal(rej[3], 0);
    assert_non_null(strstr(res.error, "record refused"));
    assert_int_equal(stream_msgs(&a, "SMALL"), 2);
    assert_stored(&a, "SMALL", 1, r.id[0], r.data[0]);
    assert_stored(&a, "SMALL", 2, r.id[3], r.data[3]);
    sink_nats_ops.close(s);
    admin_close(&a);
}

/* A server that takes the batch and never answers (SIGSTOP): ERR_IO within the
 * timeout; once it answers again the batch is resent, and the copies it had
 * already taken are dropped by JetStream's dedup. */
static void test_server_hangs(void **state)
{
    (void)state;
    if (!server_bin)
        skip();
    struct admin a;
    admin_open(&a);
    add_stream(&a, "HANG", "audit.hang", 0);
    struct sink *s = open_subject("audit.hang", "1500ms");
    struct recs r;
    unsigned char rej[64];
    struct sink_result res;
    make(&r, 4, 700);
    assert_int_equal(send_batch(s, &r, 4, rej, &res), 0); /* connected */

    assert_int_equal(kill(server_pid, SIGSTOP), 0);
    make(&r, 10, 800);
    int64_t t0 = now_ms();
    int rc = send_batch(s, &r, 10, rej, &res);
    int64_t took = now_ms() - t0;
    kill(server_pid, SIGCONT);
    assert_int_equal(rc, ERR_IO);
    assert_true(took >= 1400 && took < 3000);
    assert_int_equal(res.acked, 0);
    assert_non_null(strstr(res.error, "not acknowledged within 1500 ms"));

    rc = ERR_IO;
    for (int attempt = 0; attempt < 10 && rc != 0; attempt++)
        if ((rc = send_batch(s, &r, 10, rej, &res)) != 0)
            usleep(200000);
    assert_int_equal(rc, 0);
    assert_int_equal(res.acked, 10);
    sink_nats_ops.close(s);
    assert_int_equal(stream_msgs(&a, "HANG"), 14);
    for (size_t i = 0; i < 10; i++)
        assert_stored(&a, "HANG", 5 + i, r.id[i], r.data[i]);
    admin_close(&a);
}

/* A server that wants a user and password (core NATS only: the sink connects,
 * and no stream answers); a wrong password is ERR_IO and never shows up. */
static void test_auth(void **state)
{
    (void)state;
    if (!server_bin)
        skip();
    int p = free_port();
    char ps[16], url[128];
    snprintf(ps, sizeof(ps), "%d", p);
    char *const argv[] = {"nats-server", "-a",  "127.0.0.1", "-p",         ps,
                          "--user",      "svc", "--pass",    "pw-right-1", NULL};
    assert_int_equal(spawn(argv, p, &auth_pid), 0);
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d/audit.auth", p);
    static const char *const pw[] = {"pw-wrong-1", "pw-right-1"};
    struct sink_result res;
    for (size_t k = 0; k < 2; k++) {
        struct exporter_config cfg;
        config(&cfg, url, "2s", NULL);
        cfg.auth.username = strdup("svc");
        cfg.auth.password = strdup(pw[k]);
        struct sink *s = NULL;
        struct err_detail d = {{0}};
        assert_int_equal(sink_nats_ops.open(&cfg, &s, &d), 0);
        exporter_config_done(&cfg);
        struct recs r;
        unsigned char rej[64];
        make(&r, 2, 900);
        int rc = send_batch(s, &r, 2, rej, &res);
        sink_nats_ops.close(s);
        assert_int_equal(rc, ERR_IO);
        assert_null(strstr(res.error, "pw-"));
        if (k == 0)
            assert_non_null(strstr(res.error, "cannot connect"));
        else /* connected: what fails now is the missing stream */
            assert_non_null(strstr(res.error, "no JetStream stream captures"));
    }
    reap(&auth_pid);
}

/* Last: it restarts the server. */
static void test_server_killed_then_back(void **state)
{
    (void)state;
    if (!server_bin)
        skip();
    struct admin a;
    admin_open(&a);
    add_stream(&a, "BOUNCE", "audit.bounce", 0);
    admin_close(&a);
    struct sink *s = open_subject("audit.bounce", "2s");
    struct recs r;
    unsigned char rej[64];
    struct sink_result res;
    make(&r, 5, 500);
    assert_int_equal(send_batch(s, &r, 5, rej, &res), 0); /* connected */

    stop_server();
    make(&r, 8, 600);
    int64_t t0 = now_ms();
    assert_int_equal(send_batch(s, &r, 8, rej, &res), ERR_IO);
    assert_true(now_ms() - t0 < 3000);
    assert_int_equal(res.acked, 0);
    assert_true(res.error[0] != '\0');
    /* down for good: the next send fails at connect, as fast */
    t0 = now_ms();
    assert_int_equal(send_batch(s, &r, 8, rej, &res), ERR_IO);
    assert_true(now_ms() - t0 < 3000);
    assert_non_null(strstr(res.error, "cannot connect"));

    assert_int_equal(start_server(), 0);
    int rc = ERR_IO;
    for (int attempt = 0; attempt < 20 && rc != 0; attempt++) {
        rc = send_batch(s, &r, 8, rej, &res);
        if (rc != 0)
            usleep(250000); /* JetStream recovers its streams after the port opens */
    }
    assert_int_equal(rc, 0);
    assert_int_equal(res.acked, 8);
    sink_nats_ops.close(s);

    admin_open(&a);
    assert_int_equal(stream_msgs(&a, "BOUNCE"), 13);
    for (size_t i = 0; i < 8; i++)
        assert_stored(&a, "BOUNCE", 6 + i, r.id[i], r.data[i]);
    admin_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_refuses),
        cmocka_unit_test(test_stores_in_order_and_dedups),
        cmocka_unit_test(test_no_stream),
        cmocka_unit_test(test_rejects_oversized),
        cmocka_unit_test(test_server_hangs),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_server_killed_then_back),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
