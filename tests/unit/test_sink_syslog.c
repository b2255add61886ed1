/* tests/unit/test_sink_syslog.c — export/sink_syslog against a real rsyslogd:
 * the test starts its own rsyslogd in the foreground (private config, work
 * directory and output file under a mkdtemp directory; imtcp plain and with
 * the ossl driver, anonymous and requiring a client certificate; imudp;
 * imrelp, all on free loopback ports), with a test CA and certificates made by
 * the openssl CLI, and checks what lands in rsyslog's output file: each event
 * id, in order. Also: open() validation without a network; a receiver that is
 * down (ERR_IO, acked 0) then back (the next send goes through, including after
 * a restart between two batches); certificate verification failures; and a
 * listener that accepts and never reads, which must not hold send() much past
 * timeout_ms. Prints the TCP throughput to rsyslog (not asserted). Skipped when
 * rsyslogd is not installed; rsyslogd is killed and the directory removed in
 * every path (group teardown). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit/encode.h"
#include "core/buf.h"
#include "export/exporter.h"
#include "export/sink.h"

#define RSYSLOGD "/usr/sbin/rsyslogd"

static char dir[64];         /* the mkdtemp directory, "" when none */
static pid_t rs_pid = -1;    /* the running rsyslogd, -1 when none */
static int have_rsyslog = 0; /* group setup succeeded */
static int port_tcp, port_tls, port_mtls, port_udp, port_relp;

/* ---- time, files, processes ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static long file_size(const char *name)
{
    char p[256];
    path_of(p, sizeof(p), name);
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : 0;
}

/* The bytes of `name` from `off` on, NUL-terminated; caller frees. */
static char *read_from(const char *name, long off)
{
    char p[256];
    path_of(p, sizeof(p), name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long end = ftell(f);
    if (end < off)
        off = end;
    fseek(f, off, SEEK_SET);
    char *s = malloc((size_t)(end - off) + 1);
    size_t got = s ? fread(s, 1, (size_t)(end - off), f) : 0;
    fclose(f);
    if (s)
        s[got] = '\0';
    return s;
}

/* A free loopback port of `type`: bound, read, closed (a small race nobody else runs). */
static int free_port(int type)
{
    int fd = socket(AF_INET, type, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int can_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int r = system(cmd);
    return r == 0 ? 0 : -1;
}

static void rs_stop(void)
{
    if (rs_pid <= 0)
        return;
    kill(rs_pid, SIGTERM);
    int64_t until = now_ms() + 5000;
    while (waitpid(rs_pid, NULL, WNOHANG) == 0) {
        if (now_ms() > until) {
            kill(rs_pid, SIGKILL);
            waitpid(rs_pid, NULL, 0);
            break;
        }
        sleep_ms(20);
    }
    rs_pid = -1;
}

/* Starts rsyslogd on the config in `dir` and waits until its TCP listeners answer. */
static int rs_start(void)
{
    char conf[256], pidf[256], log[256];
    path_of(conf, sizeof(conf), "rsyslog.conf");
    path_of(pidf, sizeof(pidf), "rsyslog.pid");
    path_of(log, sizeof(log), "rsyslog.stderr");
    unlink(pidf);
    char *argv[] = {(char *)RSYSLOGD, (char *)"-n", (char *)"-f", conf, (char *)"-i", pidf, NULL};
    pid_t parent = getpid();
    rs_pid = fork();
    if (rs_pid < 0)
        return -1;
    if (rs_pid == 0) {
        /* dies with the test, even one killed or aborted before its teardown */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(RSYSLOGD, argv);
        _exit(127);
    }
    int64_t until = now_ms() + 10000;
    while (now_ms() < until) {
        if (waitpid(rs_pid, NULL, WNOHANG) == rs_pid) {
            rs_pid = -1;
            return -1;
        }
        if (can_connect(port_tcp) && can_connect(port_tls) && can_connect(port_mtls) &&
            can_connect(port_relp)) {
            sleep_ms(100); /* imudp binds in the same startup */
            return 0;
        }
        sleep_ms(20);
    }
    rs_stop();
    return -1;
}

static int write_conf(void)
{
    char p[256];
    path_of(p, sizeof(p), "rsyslog.conf");
    FILE *f = fopen(p, "w");
    if (!f)
        return -1;
    fprintf(f, "global(workDirectory=\"%s/work\" maxMessageSize=\"64k\"\n", dir);
    fprintf(f, "  defaultNetstreamDriverCAFile=\"%s/ca.pem\"\n", dir);
    fprintf(f, "  defaultNetstreamDriverCertFile=\"%s/server.pem\"\n", dir);
    fprintf(f, "  defaultNetstreamDriverKeyFile=\"%s/server.key\")\n", dir);
    fputs("module(load=\"imtcp\")\n"
          "module(load=\"imudp\")\n"
          "module(load=\"imrelp\")\n"
          "template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n",
          f);
    fprintf(f,
            "ruleset(name=\"r\") {\n"
            "  action(type=\"omfile\" file=\"%s/out.log\" template=\"raw\"\n"
            "         flushOnTXEnd=\"on\" asyncWriting=\"off\")\n"
            "}\n",
            dir);
    static const char ossl[] = "streamDriver.name=\"ossl\" streamDriver.mode=\"1\"";
    fprintf(f, "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"r\")\n", port_tcp);
    fprintf(f,
            "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"r\" %s"
            " streamDriver.authMode=\"anon\")\n",
            port_tls, ossl);
    fprintf(f,
            "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"r\" %s"
            " streamDriver.authMode=\"x509/certvalid\")\n",
            port_mtls, ossl);
    fprintf(f, "input(type=\"imudp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"r\")\n", port_udp);
    fprintf(f, "input(type=\"imrelp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"r\")\n",
            port_relp);
    return fclose(f) == 0 ? 0 : -1;
}

/* A CA, a server certificate it signs (127.0.0.1 and localhost), a client certificate it
 * signs, and a second CA that signed nothing here. */
static int make_certs(void)
{
    return sh("cd '%s' && mkdir work && ("
              "K='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes' && "
              "openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 -subj /CN=mcpauth-test-ca"
              " && openssl req -x509 $K -keyout other.key -out other.pem -days 2 -subj /CN=other"
              " && openssl req $K -keyout server.key -out server.csr -subj /CN=localhost"
              " && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n"
              "extendedKeyUsage=serverAuth\\n' > server.ext"
              " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
              " -out server.pem -days 2 -extfile server.ext"
              " && openssl req $K -keyout client.key -out client.csr -subj /CN=mcpauth-client"
              " && printf 'extendedKeyUsage=clientAuth\\n' > client.ext"
              " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
              " -out client.pem -days 2 -extfile client.ext"
              ") > openssl.log 2>&1",
              dir);
}

static int group_setup(void **state)
{
    (void)state;
    if (access(RSYSLOGD, X_OK) != 0)
        return 0; /* each test skips */
    snprintf(dir, sizeof(dir), "/tmp/mcpauth-syslog-XXXXXX");
    if (!mkdtemp(dir)) {
        dir[0] = '\0';
        return -1;
    }
    port_tcp = free_port(SOCK_STREAM);
    port_tls = free_port(SOCK_STREAM);
    port_mtls = free_port(SOCK_STREAM);
    port_relp = free_port(SOCK_STREAM);
    port_udp = free_port(SOCK_DGRAM);
    if (port_tcp < 0 || port_tls < 0 || port_mtls < 0 || port_relp < 0 || port_udp < 0 ||
        make_certs() < 0 || write_conf() < 0 || rs_start() < 0) {
        fprintf(stderr, "cannot start rsyslogd (see %s)\n", dir);
        return -1;
    }
    have_rsyslog = 1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    rs_stop();
    if (dir[0] && getenv("KEEP_SYSLOG_TEST_DIR") == NULL)
        sh("rm -rf '%s'", dir);
    return 0;
}

/* Per test: rsyslogd runs (a failed restart test may have left it stopped). */
static int need_rsyslog(void **state)
{
    (void)state;
    if (!have_rsyslog)
        return 0;
    return rs_pid > 0 ? 0 : rs_start();
}

#define REQUIRE_RSYSLOG()                                                                          \
    do {                                                                                           \
        if (!have_rsyslog)                                                                         \
            skip();                                                                                \
    } while (0)

/* ---- records ---- */

static const char EVENT[] =
    "{\"id\":\"X\",\"seq\":0,\"time\":\"2026-11-22T09:14:03.512384Z\","
    "\"type\":\"token.request\",\"outcome\":\"granted\",\"severity\":\"info\",\"reason\":null,"
    "\"status_detail\":null,\"user\":\"alice@example.com\","
    "\"groups\":[\"engineering\",\"admins\"],\"client\":\"desktop-agent\",\"system\":\"github\","
    "\"audience\":\"https://auth.github.example/\",\"access_policy\":\"desktop-github\","
    "\"scopes\":[{\"name\":\"repo:read\",\"outcome\":\"granted\"},"
    "{\"name\":\"repo:write\",\"outcome\":\"denied\",\"reason\":\"scope_not_enabled\"}],"
    "\"token\":{\"id\":\"019a4f6e-2b1d-7aa0-b0c1-d2e3f4a5b6c7\",\"type\":\"id-jag\","
    "\"key_id\":\"es256-2026-11-22\",\"alg\":\"ES256\",\"lifetime\":300,"
    "\"expires_at\":\"2026-11-22T09:19:03Z\"},"
    "\"request\":{\"id\":\"019a4f6e-2b1c-7d3e-8f40-5a6b7c8d9e10\",\"endpoint\":\"token\","
    "\"grant_type\":\"urn:ietf:params:oauth:grant-type:token-exchange\","
    "\"client_ip\":\"127.0.0.1\",\"user_agent\":\"node\"},"
    "\"node\":\"host-a\",\"prev_hash\":\"PREVHASH\",\"hash\":\"THISHASH\"}";

struct batch {
    struct export_batch b;
    struct export_record *rec;
    json_t **ev;
    char **data;
    char (*ids)[48];
};

/* n events "PREFIX-000000"..., encoded in f; `pad` extra bytes of status_detail each. */
static struct batch *batch_new(const char *prefix, size_t first, size_t n, enum audit_format f,
                               size_t pad)
{
    struct batch *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->rec = calloc(n, sizeof(*t->rec));
    t->ev = calloc(n, sizeof(*t->ev));
    t->data = calloc(n, sizeof(*t->data));
    t->ids = calloc(n, sizeof(*t->ids));
    assert_true(t->rec && t->ev && t->data && t->ids);
    char *detail = NULL;
    if (pad) {
        detail = malloc(pad + 1);
        assert_non_null(detail);
        memset(detail, 'x', pad);
        detail[pad] = '\0';
    }
    json_t *base = json_loads(EVENT, 0, NULL);
    assert_non_null(base);
    for (size_t i = 0; i < n; i++) {
        snprintf(t->ids[i], sizeof(t->ids[i]), "%s-%06zu", prefix, first + i);
        json_t *ev = json_deep_copy(base);
        json_object_set_new(ev, "id", json_string(t->ids[i]));
        json_object_set_new(ev, "seq", json_integer((json_int_t)(first + i + 1)));
        if (detail)
            json_object_set_new(ev, "status_detail", json_string(detail));
        struct buf b;
        buf_init(&b, 0);
        assert_int_equal(audit_encode(f, ev, &b), 0);
        t->ev[i] = ev;
        t->rec[i] = (struct export_record){
            .seq = (int64_t)(first + i + 1),
            .id = t->ids[i],
            .time = json_string_value(json_object_get(ev, "time")),
            .type = json_string_value(json_object_get(ev, "type")),
            .severity = json_string_value(json_object_get(ev, "severity")),
            .ev = ev,
        };
        t->data[i] = buf_take(&b, &t->rec[i].len);
        t->rec[i].data = t->data[i];
    }
    json_decref(base);
    free(detail);
    t->b = (struct export_batch){t->rec, n};
    return t;
}

static void batch_free(struct batch *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->b.n; i++) {
        json_decref(t->ev[i]);
        free(t->data[i]);
    }
    free(t->rec);
    free(t->ev);
    free(t->data);
    free(t->ids);
    free(t);
}

/* Sends t through s; returns the sink's answer with res filled. */
static int send_batch(struct sink *s, const struct batch *t, struct sink_result *res,
                      unsigned char *rejected)
{
    memset(res, 0, sizeof(*res));
    memset(rejected, 0, t->b.n);
    res->rejected = rejected;
    return sink_syslog_ops.send(s, &t->b, res);
}

/* The index of the first "PREFIX-NNNNNN" in line [p, e), or -1. */
static long id_in_line(const char *p, const char *e, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *q = p; q < e;) {
        const char *h = memmem(q, (size_t)(e - q), prefix, pl);
        if (!h)
            return -1;
        q = h + 1;
        if ((h > p && (isalnum((unsigned char)h[-1]) || h[-1] == '-')) || e - h < (long)pl + 7 ||
            h[pl] != '-')
            continue;
        long k = 0;
        size_t i = 0;
        for (; i < 6 && isdigit((unsigned char)h[pl + 1 + i]); i++)
            k = k * 10 + (h[pl + 1 + i] - '0');
        if (i == 6)
            return k;
    }
    return -1;
}

/* Waits (at most `ms`) until out.log, from `off`, holds every id of t, "PREFIX-000000"
 * up, in order when `ordered`. Reads each line once (the throughput test makes MBs). */
static int wait_ids(long off, const struct batch *t, const char *prefix, int ordered, int ms)
{
    int64_t until = now_ms() + ms;
    size_t found = 0, n = t->b.n;
    unsigned char *seen = calloc(n ? n : 1, 1);
    assert_non_null(seen);
    for (;;) {
        char *s = read_from("out.log", off);
        const char *p = s, *nl;
        while (found < n && (nl = strchr(p, '\n')) != NULL) {
            long k = id_in_line(p, nl, prefix);
            if (ordered && k >= 0 && (size_t)k == found)
                found++;
            else if (!ordered && k >= 0 && (size_t)k < n && !seen[k]) {
                seen[k] = 1;
                found++;
            }
            p = nl + 1;
        }
        off += (long)(p - s);
        free(s);
        if (found == n)
            break;
        if (now_ms() > until) {
            print_error("%zu of %zu ids of %s found\n", found, n, prefix);
            break;
        }
        sleep_ms(20);
    }
    free(seen);
    return found == n;
}

/* ---- sinks ---- */

/* Opens a syslog sink on `url` through exporter_config_from_json (the config is freed at
 * once: the sink must not borrow it). `tls` is stolen. */
static int open_sink(const char *url, const char *format, const char *timeout, json_t *tls,
                     struct sink **ret, struct err_detail *d)
{
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", "t", "type", "syslog", "url", url,
                            "format", format, "timeout", timeout);
    assert_non_null(doc);
    if (tls)
        json_object_set_new(doc, "tls", tls);
    struct exporter_config cfg;
    memset(d, 0, sizeof(*d));
    int r = exporter_config_from_json(doc, NULL, &cfg, d);
    json_decref(doc);
    assert_int_equal(r, 0);
    r = sink_syslog_ops.open(&cfg, ret, d);
    exporter_config_done(&cfg);
    return r;
}

static struct sink *must_open(const char *url, const char *format, const char *timeout, json_t *tls)
{
    struct err_detail d;
    struct sink *s = NULL;
    int r = open_sink(url, format, timeout, tls, &s, &d);
    if (r != 0)
        print_error("open %s: %s\n", url, d.msg);
    assert_int_equal(r, 0);
    assert_non_null(s);
    return s;
}

static void url_of(char *out, size_t n, const char *scheme, int port)
{
    snprintf(out, n, "%s://127.0.0.1:%d", scheme, port);
}

static json_t *tls_files(const char *ca, const char *cert, const char *key)
{
    char p[256];
    json_t *t = json_object();
    if (ca) {
        path_of(p, sizeof(p), ca);
        json_object_set_new(t, "ca_file", json_string(p));
    }
    if (cert) {
        path_of(p, sizeof(p), cert);
        json_object_set_new(t, "cert_file", json_string(p));
    }
    if (key) {
        path_of(p, sizeof(p), key);
        json_object_set_new(t, "key_file", json_string(p));
    }
    return t;
}

/* Sends `n` events of `prefix` in batches of `per` and checks each reached rsyslog, in
 * order (`ordered`). */
static void deliver(struct sink *s, const char *prefix, size_t n, size_t per, enum audit_format f,
                    int ordered)
{
    long off = file_size("out.log");
    struct batch *all = batch_new(prefix, 0, n, f, 0);
    unsigned char *rej = calloc(per, 1);
    assert_non_null(rej);
    for (size_t i = 0; i < n; i += per) {
        struct batch part = *all;
        part.b.rec = all->rec + i;
        part.b.n = n - i < per ? n - i : per;
        struct sink_result res;
        int r = send_batch(s, &part, &res, rej);
        if (r != 0)
            print_error("send: %d %s\n", r, res.error);
        assert_int_equal(r, 0);
        assert_int_equal(res.acked, part.b.n);
        assert_string_equal(res.error, "");
    }
    free(rej);
    int ok = wait_ids(off, all, prefix, ordered, 5000);
    batch_free(all);
    assert_true(ok);
}

/* ---- tests ---- */

static void test_open_validation(void **state)
{
    (void)state;
    struct err_detail d;
    struct sink *s = NULL;
    /* exporter.c splits http:// for us; the syslog sink refuses it */
    assert_int_equal(open_sink("http://127.0.0.1:514", "json", "1s", NULL, &s, &d), ERR_INVAL);
    assert_non_null(strstr(d.msg, "udp://, tcp://, tls:// or relp://"));
    assert_int_equal(open_sink("tcp://127.0.0.1:514", "csv", "1s", NULL, &s, &d), ERR_UNSUPPORTED);
    assert_non_null(strstr(d.msg, "format"));
    assert_int_equal(open_sink("tcp://127.0.0.1:514/x", "json", "1s", NULL, &s, &d), ERR_INVAL);
    assert_int_equal(open_sink("tls://127.0.0.1:6514", "json", "1s",
                               json_pack("{s:s}", "ca_file", "/nonexistent/ca.pem"), &s, &d),
                     ERR_INVAL);
    assert_non_null(strstr(d.msg, "tls.ca_file: /nonexistent/ca.pem"));
    assert_int_equal(open_sink("tls://127.0.0.1:6514", "json", "1s",
                               json_pack("{s:s}", "key_file", "/etc/hostname"), &s, &d),
                     ERR_INVAL);
    assert_int_equal(open_sink("tcp://127.0.0.1:514", "json", "1s",
                               json_pack("{s:s}", "ca_file", "/etc/hostname"), &s, &d),
                     ERR_INVAL);
    assert_non_null(strstr(d.msg, "use tls://"));
    /* a file that is not a certificate */
    assert_int_equal(open_sink("tls://127.0.0.1:6514", "json", "1s",
                               json_pack("{s:s}", "cert_file", "/etc/hostname"), &s, &d),
                     ERR_INVAL);
    assert_null(s);
    /* every scheme and format that is offered opens, with no receiver anywhere */
    static const char *const urls[] = {"udp://127.0.0.1", "tcp://localhost:1", "tls://[::1]:1",
                                       "relp://127.0.0.1:1"};
    static const char *const fmts[] = {"json", "ocsf", "cef", "rfc5424"};
    for (size_t i = 0; i < 4; i++) {
        s = must_open(urls[i], fmts[i], "1s", NULL);
        sink_syslog_ops.close(s);
    }
    sink_syslog_ops.close(NULL);
}

static void test_tcp_delivers(void **state)
{
    (void)state;
    REQUIRE_RSYSLOG();
    char url[64];
    url_of(url, sizeof(url), "tcp", port_tcp);
    struct sink *s = must_open(url, "json", "2s", NULL);
    long off = file_size("out.log");
    deliver(s, "tcp", 300, 100, AUDIT_FMT_JSON, 1);
    sink_syslog_ops.close(s);

    /* the header put in front of a json payload */
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    char want[512];
    snprintf(want, sizeof(want), "<86>1 2026-11-22T09:14:03.512384Z %s mcpauth - token.request - {",
             host);
    char *out = read_from("out.log", off);
    int ok = strncmp(out, want, strlen(want)) == 0 && strstr(out, "\"id\":\"tcp-000000\"");
    if (!ok)
        print_error("first line: %.200s\nwant: %s\n", out, want);
    free(out);
    assert_true(ok);
}

static void test_udp_delivers(void **state)
{
    (void)state;
    REQUIRE_RSYSLOG();
    char url[64];
    url_of(url, sizeof(url), "udp", port_udp);
    struct sink *s = must_open(url, "cef", "2s", NULL);
    deliver(s, "udp", 60, 30, AUDIT_FMT_CEF, 0);
    sink_syslog_ops.close(s);
}

/* A record no datagram can carry is settled as rejected; the others go. */
static void test_udp_oversized_record(void **state)
{
    (void)state;
    REQUIRE_RSYSLOG();
    char url[64];
    url_of(url, sizeof(url), "udp", port_udp);
    struct sink *s = must_open(url, "json", "2s", NULL);
    long off = file_size("out.log");
    struct batch *t = batch_new("udpbig", 0, 3, AUDIT_FMT_JSON, 0);
    struct batch *big = batch_new("udphuge", 0, 1, AUDIT_FMT_JSON, 70000);
    /* swap the middle record for the huge one */
    struct export_record keep = t->rec[1];
    t->rec[1] = big->rec[0];
    unsigned char rej[3];
    struct sink_result res;
    int r = send_batch(s, t, &res, rej);
    t->rec[1] = keep;
    assert_int_equal(r, 0);
    assert_int_equal(res.acked, 3);
    assert_int_equal(rej[0], 0);
    assert_int_equal(rej[1], 1);
    assert_int_equal(rej[2], 0);
    assert_non_null(strstr(res.error, "too large for a UDP datagram"));
    /* ids 0 and 2 arrive */
    t->b.n = 1;
    assert_true(wait_ids(off, t, "udpbig", 0, 5000));
    t->b.n = 3;
    char *out = NULL;
    int64_t until = now_ms() + 5000;
    while (now_ms() < until) {
        free(out);
        out = read_from("out.log", off);
        if (strstr(out, "udpbig-000002"))
            break;
        sleep_ms(20);
    }
    int ok = strstr(out, "udpbig-000002") != NULL && strstr(out, "udphuge") == NULL;
    free(out);
    batch_free(t);
    batch_free(big);
    sink_syslog_ops.close(s);
    assert_true(ok);
}

static void test_tls_delivers(void **state)
{
    (void)state;
    REQUIRE_RSYSLOG();
    char url[64];
    url_of(url, sizeof(url), "tls", port_tls);
    /* an rfc5424 record goes as it is: the certificate's IP SAN checked */
    struct sink *s = must_open(url, "rfc5424", "2s", tls_files("ca.pem", NULL, NULL));
    long off = file_size("out.log");
    deliver(s, "tls", 200, 100, AUDIT_FMT_RFC5424, 1);
    sink_syslog_ops.close(s);
    char *out = read_from("out.log", off);
    static const char want[] = "<86>1 2026-11-22T09:14:03.512384Z host-a mcpauth - "
                               "token.request [mcpauth@32473 id=\"tls-000000\"";
    int ok = strncmp(out, want, sizeof(want) - 1) == 0;
    if (!ok)
        print_error("first line: %.200s\n", out);
    free(out);
    assert_true(ok);

    /* the DNS name checked when server_name says so */
    json_t *t = tls_files("ca.pem", NULL, NULL);
    json_object_set_new(t, "server_name", json_string("localhost"));
    s = must_open(url, "ocsf", "2s", t);
    deliver(s, "tlsname", 20, 20, AUDIT_FMT_OCSF, 1);
    sink_syslog_ops.close(s);
}

static void expect_tls_failure(json_t *tls, const char *want)
{
    char url[64];
    url_of(url, sizeof(url), "tls", port_tls);
    struct sink *s = must_open(url, "json", "2s", tls);
    struct batch *t = batch_new("tlsbad", 0, 5, AUDIT_FMT_JSON, 0);
    unsigned char rej[5];
    struct sink_result res;
    int r = send_batch(s, t, &res, rej);
    if (!strstr(res.error, want))
        print_error("error: %s\n", res.error);
    assert_int_equal(r, ERR_IO);
    assert_int_equal(res.acked, 0);
    assert_non_null(strstr(res.error, want));
    batch_free(t);
    sink_syslog_ops.close(s);
}

static void test_tls_verification_fails(void **state)
{
    (void)state;
    REQUIRE_RSYSLOG();
    /* a CA that did not sign the server's certificate */
    expect_tls_failure(tls_files("other.pem", NULL, NULL), "certificate verification failed");
    /* the right CA, the wrong name */
    json_t *t = tls_files("ca.pem", NULL, NULL);
    json_object_set_new(t, "server_name", json_string("siem.example.com"));
    expect_tls_failure(t, "verification failed: hostname mismatch");
    /* verify: false accepts any certificate */
    char url[64];
    url_of(url, sizeof(url), "tls", port_tls);
    t = tls_files("other.pem", NULL, NULL);
    json_object_set_new(t, "verify", json_false());
    struct sink *s = must_open(url, "json", "2s", t);
    deliver(s, "noverify", 5, 5, AUDIT_FMT_JSON, 1);
    sink_syslog_ops.close(s);
}

static void test_tls_client_certificate(void **state)
{
    (void)state;
    REQUIRE_RSYSLOG();
    char url[64];
    url_of(url, sizeof(url), "tls", port_mtls);
    struct sink *s = must_open(url, "json", "2s", tls_files("ca.pem", "client.pem", "client.key"));
    int64_t t0 = now_ms();
    deliver(s, "mtls", 50, 50, AUDIT_FMT_JSON, 1);
    print_message("    with a client certificate: connected and delivered in %lld ms\n",
                  (long long)(now_ms() - t0));
    sink_syslog_ops.close(s);

    /* without one, the receiver refuses us; the batch must not count as sent */
    s = must_open(url, "json", "2s", tls_files("ca.pem", NULL, NULL));
    struct batch *t = batch_new("nocert", 0, 5, AUDIT_FMT_JSON, 0);
    unsigned char rej[5];
    struct sink_result res;
    for (int i = 0; i < 2; i++) {
        int r = send_batch(s, t, &res, rej);
        print_message("    without a client certificate: %d (%s)\n", r, res.error);
        assert_int_equal(r, ERR_IO);
        assert_int_equal(res.acked, 0);
    }
    batch_free(t);
    sink_syslog_ops.close(s);
}

static void test_relp_delivers(void **state)
{
    (void)state;
    REQUIRE_RSYSLOG();
    char url[64];
    url_of(url, sizeof(url), "relp", port_relp);
    struct sink *s = must_open(url, "json", "2s", NULL);
    deliver(s, "relp", 600, 300, AUDIT_FMT_JSON, 1);
    deliver(s, "relp2", 10, 10, AUDIT_FMT_RFC5424, 1);
    sink_syslog_ops.close(s);
}

/* tcp and relp: down -> ERR_IO with acked 0; back -> the same sink delivers; and a
 * restart between two batches loses nothing for tcp (the dead connection is noticed). */
static void test_receiver_down_then_back(void **state)
{
    (void)state;
    REQUIRE_RSYSLOG();
    char tcp[64], relp[64], udp[64];
    url_of(tcp, sizeof(tcp), "tcp", port_tcp);
    url_of(relp, sizeof(relp), "relp", port_relp);
    url_of(udp, sizeof(udp), "udp", port_udp);
    struct sink *st = must_open(tcp, "json", "1s", NULL);
    struct sink *sr = must_open(relp, "json", "1s", NULL);
    struct sink *su = must_open(udp, "json", "1s", NULL);
    deliver(st, "before", 10, 10, AUDIT_FMT_JSON, 1);
    deliver(sr, "rbefore", 10, 10, AUDIT_FMT_JSON, 1);

    rs_stop();
    assert_int_equal(rs_start(), 0);
    deliver(st, "restarted", 10, 10, AUDIT_FMT_JSON, 1); /* on a new connection */

    rs_stop();
    struct batch *t = batch_new("down", 0, 10, AUDIT_FMT_JSON, 0);
    unsigned char rej[10];
    struct sink_result res;
    assert_int_equal(send_batch(st, t, &res, rej), ERR_IO);
    assert_int_equal(res.acked, 0);
    assert_non_null(strstr(res.error, "connect"));
    assert_int_equal(send_batch(sr, t, &res, rej), ERR_IO);
    assert_int_equal(res.acked, 0);
    print_message("    relp, receiver down: %s\n", res.error);
    assert_non_null(strstr(res.error, "relp://127.0.0.1"));
    /* udp cannot tell at once; the ICMP refusal shows up on a later send */
    int r1 = send_batch(su, t, &res, rej);
    sleep_ms(50);
    int r2 = send_batch(su, t, &res, rej);
    assert_true(r1 == 0 || r1 == ERR_IO);
    assert_true(r2 == 0 || r2 == ERR_IO);
    assert_true(r1 == ERR_IO || r2 == ERR_IO);
    batch_free(t);

    assert_int_equal(rs_start(), 0);
    deliver(st, "back", 10, 10, AUDIT_FMT_JSON, 1);
    deliver(sr, "rback", 10, 10, AUDIT_FMT_JSON, 1);
    deliver(su, "uback", 10, 10, AUDIT_FMT_JSON, 0);
    sink_syslog_ops.close(st);
    sink_syslog_ops.close(sr);
    sink_syslog_ops.close(su);
}

/* A listener that accepts (the kernel does) and never reads. Needs no rsyslogd. */
static int silent_listener(int *ret_port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    *ret_port = ntohs(a.sin_port);
    return fd;
}

static void expect_bounded(const char *scheme, int port, struct batch *t, int64_t max_ms)
{
    char url[64];
    url_of(url, sizeof(url), scheme, port);
    struct sink *s = must_open(url, "json", "500ms", NULL);
    unsigned char *rej = calloc(t->b.n, 1);
    assert_non_null(rej);
    struct sink_result res;
    int64_t t0 = now_ms();
    int r = send_batch(s, t, &res, rej);
    int64_t took = now_ms() - t0;
    print_message("    %s to a listener that never reads: %d after %lld ms (%s)\n", scheme, r,
                  (long long)took, res.error);
    free(rej);
    sink_syslog_ops.close(s);
    assert_int_equal(r, ERR_IO);
    assert_int_equal(res.acked, 0);
    assert_true(took < max_ms);
}

static void test_listener_never_reads(void **state)
{
    (void)state;
    int port;
    int lfd = silent_listener(&port);
    /* ~8 MB: more than both socket buffers can hold */
    struct batch *t = batch_new("stuck", 0, 4000, AUDIT_FMT_JSON, 1200);
    expect_bounded("tcp", port, t, 1500);
    expect_bounded("tls", port, t, 1500);  /* the handshake never completes */
    expect_bounded("relp", port, t, 3500); /* librelp: whole seconds, rounded up, + 1 */
    batch_free(t);
    close(lfd);
}

static void test_tcp_throughput(void **state)
{
    (void)state;
    REQUIRE_RSYSLOG();
    char url[64];
    url_of(url, sizeof(url), "tcp", port_tcp);
    struct sink *s = must_open(url, "json", "5s", NULL);
    enum { N = 20000, PER = 500 };
    struct batch *all = batch_new("perf", 0, N, AUDIT_FMT_JSON, 0);
    unsigned char rej[PER];
    long off = file_size("out.log");
    int64_t t0 = now_ms();
    for (size_t i = 0; i < N; i += PER) {
        struct batch part = *all;
        part.b.rec = all->rec + i;
        part.b.n = PER;
        struct sink_result res;
        assert_int_equal(send_batch(s, &part, &res, rej), 0);
    }
    int64_t sent = now_ms() - t0;
    int ok = wait_ids(off, all, "perf", 1, 60000);
    int64_t landed = now_ms() - t0;
    print_message("    tcp: %d events (%zu bytes each) sent in %lld ms (%.0f events/s), "
                  "all in rsyslog's file after %lld ms (%.0f events/s)\n",
                  N, all->rec[0].len, (long long)sent, N * 1000.0 / (double)(sent ? sent : 1),
                  (long long)landed, N * 1000.0 / (double)(landed ? landed : 1));
    batch_free(all);
    sink_syslog_ops.close(s);
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_validation),
        cmocka_unit_test_setup(test_tcp_delivers, need_rsyslog),
        cmocka_unit_test_setup(test_udp_delivers, need_rsyslog),
        cmocka_unit_test_setup(test_udp_oversized_record, need_rsyslog),
        cmocka_unit_test_setup(test_tls_delivers, need_rsyslog),
        cmocka_unit_test_setup(test_tls_verification_fails, need_rsyslog),
        cmocka_unit_test_setup(test_tls_client_certificate, need_rsyslog),
        cmocka_unit_test_setup(test_relp_delivers, need_rsyslog),
        cmocka_unit_test_setup(test_receiver_down_then_back, need_rsyslog),
        cmocka_unit_test(test_listener_never_reads),
        cmocka_unit_test_setup(test_tcp_throughput, need_rsyslog),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
