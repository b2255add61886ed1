/* export/sink_syslog.c — the syslog sink: audit records to a syslog receiver
 * (rsyslog, syslog-ng, a SIEM collector) over UDP (RFC 5426), TCP with octet
 * counting (RFC 6587), TLS (RFC 5425) or RELP (librelp).
 *
 * Each record becomes one RFC 5424 message: an rfc5424 record already is one
 * (audit/encode.c) and is sent as it is; json, ocsf and cef payloads get the
 * header `<PRI>1 TIMESTAMP HOSTNAME mcpauth - MSGID - ` in front, with facility
 * 10 (authpriv, the facility the rfc5424 encoder uses, so one receiver rule
 * matches every format), the event's severity, its time and its type as MSGID.
 *
 * The invariant is the sink contract's (sink.h): send() returns 0 only when every
 * record of the batch is as delivered as the transport can tell, and every wait is
 * bounded by cfg->timeout_ms. What "delivered" means differs per transport:
 * - udp: handed to the kernel. Best effort: a datagram lost on the way, or refused
 *   by a receiver that is down, is lost silently (an ICMP refusal surfaces as
 *   ERR_IO on a later send). A record too large for a datagram is rejected.
 * - tcp, tls: the whole batch, framed into one buffer, was written on the
 *   connection. Syslog over TCP has no application acknowledgement; a connection
 *   the receiver has closed is noticed before writing (it turns readable) and
 *   replaced; on every new connection the previous batch is written again before
 *   the next one, since it may have died in the socket buffers with the receiver
 *   (at least once; receivers drop duplicates by event id). Any error closes the connection and
 *   returns ERR_IO with acked = 0 (the runner sends the batch again). TLS checks
 *   the certificate chain and name by default; in TLS 1.3 a server refuses a
 *   client certificate only after the handshake, so when it asked for one the
 *   sink waits briefly for its verdict before writing (tls_verdict()).
 * - relp: every frame was answered "200 OK". librelp exposes no call that waits
 *   for outstanding answers, except the graceful close of a session, which
 *   returns once the server has answered every frame before its "close"; so each
 *   batch runs in a session of its own (engine kept per sink) and any error
 *   librelp reports in between fails the batch with acked = 0. librelp counts its
 *   timeouts in whole seconds and compares only the seconds of the wall clock
 *   (a 1 s wait may end after 1 ms), so timeout_ms is rounded up, plus 1 s.
 * open() refuses csv (its records may hold line breaks) and tls settings on a
 * non-tls URL (they would silently not apply). Name resolution (getaddrinfo) is
 * the system resolver's and not bounded here.
 * A write on a connection the peer reset raises SIGPIPE; send() and close()
 * block it in the calling thread for their duration (libpq's technique), so a
 * host program that does not ignore SIGPIPE survives too. Not thread-safe: one
 * sink per exporter worker. */
#include "export/sink.h"
#include "core/buf.h"
#include "core/timeutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <librelp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define FACILITY         10  /* authpriv, as audit/encode.c's RFC 5424 encoder */
#define HEADER_MAX       400 /* "<PRI>1 " + TIMESTAMP + HOSTNAME (255) + APP-NAME... + MSGID (32) */
#define UDP_CHUNK        64  /* datagrams per sendmmsg() */
#define TLS13_VERDICT_MS 500 /* see tls_verdict() */
#define KEEP_MAX         (8u << 20) /* a frame buffer larger than this is freed after the batch */

enum transport { T_UDP, T_TCP, T_TLS, T_RELP };

static const struct {
    const char *scheme;
    enum transport t;
    int port;
} transports[] = {
    {"udp", T_UDP, 514},
    {"tcp", T_TCP, 514},
    {"tls", T_TLS, 6514},
    {"relp", T_RELP, 2514},
};

struct span {
    size_t off, len;
};

struct sink {
    enum transport t;
    enum audit_format format;
    char *host;
    char port[8];
    const char *scheme;
    int timeout_ms;
    char hostname[256]; /* HOSTNAME of the header: gethostname(), sanitised; "-" if none */

    int fd; /* udp, tcp, tls; -1 when not connected */
    SSL_CTX *ctx;
    SSL *ssl;
    char *tls_name; /* name the certificate must carry (server_name or host) */
    int verify;
    bool cert_requested; /* the server asked for our certificate in this handshake */

    relpEngine_t *relp;
    unsigned relp_errors; /* errors librelp reported during the current batch */
    char relp_error[160]; /* the first of them */

    struct buf out;     /* the batch: messages back to back, framed for tcp and tls */
    struct buf prev;    /* tcp, tls: the last batch written, sent again on a new connection */
    struct span *spans; /* each record's message (udp, relp) */
    size_t spans_cap;
};

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes "syslog SCHEME://HOST:PORT: ..." into res->error; returns `err`. */
static int fail(const struct sink *s, struct sink_result *res, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(const struct sink *s, struct sink_result *res, int err, const char *fmt, ...)
{
    int n = snprintf(res->error, sizeof(res->error), "syslog %s://%s:%s: ", s->scheme, s->host,
                     s->port);
    if (n < 0 || (size_t)n >= sizeof(res->error))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error + n, sizeof(res->error) - (size_t)n, fmt, ap);
    va_end(ap);
    return err;
}

/* Waits until `fd` is ready for `events` or `deadline` passes. 0, or -1 on timeout with
 * errno = ETIMEDOUT (or poll's errno). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 0; /* ready, or an error the next call will report */
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

struct sigpipe_guard {
    sigset_t old;
    bool pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
    g->pending = sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE) == 1;
}

/* Consumes a SIGPIPE our writes raised (not one that was pending before), then restores
 * the mask. */
static void sigpipe_unblock(struct sigpipe_guard *g)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    if (!g->pending && sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE) == 1) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static bool is_ip_literal(const char *s)
{
    unsigned char a[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* HOSTNAME and MSGID: PRINTUSASCII only (others become '_'), at most `max` octets, NILVALUE
 * when empty (RFC 5424 6.2.4, 6.2.7). */
static size_t syslog_token(char *dst, const char *s, size_t max)
{
    if (!s || !*s) {
        *dst = '-';
        return 1;
    }
    size_t n = 0;
    for (; s[n] && n < max; n++)
        dst[n] = (unsigned char)s[n] >= 33 && (unsigned char)s[n] <= 126 ? s[n] : '_';
    return n;
}

static int syslog_severity(const char *sev)
{
    if (sev && strcmp(sev, "warning") == 0)
        return 4;
    if (sev && strcmp(sev, "error") == 0)
        return 3;
    return 6; /* info, and unknown values as audit/encode.c does */
}

/* The RFC 5424 header put in front of a json, ocsf or cef payload. */
static size_t header(const struct sink *s, const struct export_record *r, char out[HEADER_MAX])
{
    int n = snprintf(out, HEADER_MAX, "<%d>1 ", FACILITY * 8 + syslog_severity(r->severity));
    size_t len = n > 0 ? (size_t)n : 0;
    int64_t us;
    if (r->time && time_parse_rfc3339(r->time, &us) == 0) {
        char ts[TIME_STR_LEN];
        time_format_us(us, ts); /* RFC 5424's subset: UTC, 'T', 'Z', 6 digits */
        size_t tl = strlen(ts);
        memcpy(out + len, ts, tl);
        len += tl;
    } else {
        out[len++] = '-';
    }
    out[len++] = ' ';
    len += syslog_token(out + len, s->hostname, 255);
    memcpy(out + len, " mcpauth - ", 11);
    len += 11;
    len += syslog_token(out + len, r->type, 32);
    memcpy(out + len, " - ", 3);
    return len + 3;
}

/* Fills s->out with every record's message, each preceded by "LEN " when `framed`
 * (octet counting, RFC 6587 3.4.1 / RFC 5425 4.3), and s->spans with where each message
 * sits. 0 or ERR_NOMEM. */
static int build(struct sink *s, const struct export_batch *b, bool framed)
{
    if (b->n > s->spans_cap) {
        struct span *sp = realloc(s->spans, b->n * sizeof(*sp));
        if (!sp)
            return ERR_NOMEM;
        s->spans = sp;
        s->spans_cap = b->n;
    }
    buf_reset(&s->out);
    for (size_t i = 0; i < b->n; i++) {
        const struct export_record *r = &b->rec[i];
        char hdr[HEADER_MAX];
        /* an empty record would make an empty frame, which octet counting cannot carry */
        size_t hl = s->format != AUDIT_FMT_RFC5424 || r->len == 0 ? header(s, r, hdr) : 0;
        int err = 0;
        if (framed) {
            char len[24];
            int ln = snprintf(len, sizeof(len), "%zu ", hl + r->len);
            err = buf_append(&s->out, len, (size_t)ln);
        }
        s->spans[i].off = s->out.len;
        if (!err)
            err = buf_append(&s->out, hdr, hl);
        if (!err && r->len)
            err = buf_append(&s->out, r->data, r->len);
        if (err)
            return err;
        s->spans[i].len = s->out.len - s->spans[i].off;
    }
    return 0;
}

static void drop_conn(struct sink *s)
{
    if (s->ssl) {
        SSL_shutdown(s->ssl); /* close_notify if the socket takes it now; no waiting */
        SSL_free(s->ssl);
        s->ssl = NULL;
        ERR_clear_error();
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

/* ---- connections: udp, tcp, tls ---- */

/* Connects s->fd (nonblocking) to the first address of host:port that answers before
 * `deadline`. */
static int sock_connect(struct sink *s, int socktype, int64_t deadline, struct sink_result *res)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = socktype};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(s->host, s->port, &hints, &ai);
    if (g != 0)
        return fail(s, res, ERR_IO, "cannot resolve: %s",
                    g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
    int err = 0;
    for (const struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd =
            socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int rc = connect(fd, a->ai_addr, a->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS) {
            if (wait_fd(fd, POLLOUT, deadline) == 0) {
                socklen_t el = sizeof(err);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                    err = errno;
                rc = err ? -1 : 0;
            } else {
                err = errno;
            }
        } else if (rc < 0) {
            err = errno;
        }
        if (rc == 0) {
            if (socktype == SOCK_STREAM) {
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            }
            s->fd = fd;
            freeaddrinfo(ai);
            return 0;
        }
        close(fd);
        if (err == ETIMEDOUT)
            break; /* the deadline is gone for the other addresses too */
    }
    freeaddrinfo(ai);
    if (err == ETIMEDOUT)
        return fail(s, res, ERR_IO, "connect: timed out after %d ms", s->timeout_ms);
    return fail(s, res, ERR_IO, "connect: %s", strerror(err ? err : ECONNREFUSED));
}

/* The reason of the last OpenSSL failure, for an error message. */
static const char *ssl_reason(int ssl_err)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    if (why)
        return why;
    if (ssl_err == SSL_ERROR_SYSCALL)
        return errno ? strerror(errno) : "connection closed by the receiver";
    if (ssl_err == SSL_ERROR_ZERO_RETURN)
        return "connection closed by the receiver";
    return "unknown error";
}

/* A syslog receiver never writes to us, so a connection that turns readable was closed
 * (EOF, RST) or carries TLS housekeeping (TLS 1.3 session tickets), which is read here.
 * On false, *why (if given) says what ended it. */
static bool stream_alive(struct sink *s, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = "connection closed by the receiver";
    for (int round = 0; round < 64; round++) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        int n = poll(&p, 1, 0);
        if (n == 0)
            return true;
        if (n < 0)
            return errno == EINTR;
        if (p.revents & POLLNVAL)
            return false;
        char tmp[512];
        if (!s->ssl) {
            ssize_t k = recv(s->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
            if (k == 0)
                return false;
            if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                *why = strerror(errno);
                return false;
            }
            if (k < 0)
                return true;
            continue; /* unexpected bytes: dropped */
        }
        ERR_clear_error();
        errno = 0;
        int k = SSL_read(s->ssl, tmp, sizeof(tmp));
        if (k > 0)
            continue;
        int e = SSL_get_error(s->ssl, k);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            ERR_clear_error();
            return true;
        }
        if (e != SSL_ERROR_ZERO_RETURN)
            *why = ssl_reason(e);
        ERR_clear_error();
        return false;
    }
    return true;
}

static int on_cert_request(SSL *ssl, void *arg)
{
    (void)ssl;
    ((struct sink *)arg)->cert_requested = true;
    return 1; /* go on, with our certificate if there is one */
}

/* In TLS 1.3 the server judges the client's certificate after the client has finished
 * the handshake: a refusal comes as an alert a round trip later, and unchecked, every
 * batch would be written into a connection the server is closing, and lost. So when the
 * server asked for a certificate, wait a moment (at most TLS13_VERDICT_MS) for its
 * verdict: session tickets (OpenSSL servers send them at once) or an alert. */
static int tls_verdict(struct sink *s, int64_t deadline, struct sink_result *res)
{
    if (!s->cert_requested || SSL_version(s->ssl) != TLS1_3_VERSION)
        return 0;
    int64_t until = now_ms() + TLS13_VERDICT_MS;
    const char *why = NULL;
    if (wait_fd(s->fd, POLLIN, until < deadline ? until : deadline) == 0 && !stream_alive(s, &why))
        return fail(s, res, ERR_IO,
                    "TLS: the receiver refused the connection after the "
                    "handshake (client certificate?): %s",
                    why);
    return 0;
}

static int tls_handshake(struct sink *s, int64_t deadline, struct sink_result *res)
{
    ERR_clear_error();
    s->ssl = SSL_new(s->ctx);
    if (!s->ssl || SSL_set_fd(s->ssl, s->fd) != 1)
        return fail(s, res, ERR_IO, "TLS: cannot create a session");
    bool ip = is_ip_literal(s->tls_name);
    if (!ip)
        SSL_set_tlsext_host_name(s->ssl, s->tls_name); /* SNI never carries an address */
    if (s->verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(s->ssl);
        int ok;
        if (ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(vp, s->tls_name);
        } else {
            X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = X509_VERIFY_PARAM_set1_host(vp, s->tls_name, 0);
        }
        if (ok != 1)
            return fail(s, res, ERR_IO, "TLS: cannot set the name to verify");
    }
    s->cert_requested = false;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int k = SSL_connect(s->ssl);
        if (k == 1)
            return tls_verdict(s, deadline, res);
        int e = SSL_get_error(s->ssl, k);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (wait_fd(s->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) == 0)
                continue;
            return fail(s, res, ERR_IO, "TLS handshake: timed out after %d ms", s->timeout_ms);
        }
        long v = SSL_get_verify_result(s->ssl);
        if (s->verify && v != X509_V_OK)
            return fail(s, res, ERR_IO, "TLS handshake: certificate verification failed: %s",
                        X509_verify_cert_error_string(v));
        return fail(s, res, ERR_IO, "TLS handshake failed: %s", ssl_reason(e));
    }
}

/* Writes all of s->out before `deadline`. */
static int stream_write(struct sink *s, const char *p, size_t left, int64_t deadline,
                        struct sink_result *res)
{
    while (left) {
        short want;
        if (s->ssl) {
            size_t w = 0;
            ERR_clear_error();
            errno = 0;
            if (SSL_write_ex(s->ssl, p, left, &w) == 1) {
                p += w;
                left -= w;
                continue;
            }
            int e = SSL_get_error(s->ssl, 0);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return fail(s, res, ERR_IO, "TLS write: %s", ssl_reason(e));
            want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        } else {
            ssize_t w = send(s->fd, p, left, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w >= 0) {
                p += w;
                left -= (size_t)w;
                continue;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return fail(s, res, ERR_IO, "write: %s", strerror(errno));
            want = POLLOUT;
        }
        if (wait_fd(s->fd, want, deadline) < 0)
            return fail(s, res, ERR_IO, "write: timed out after %d ms (%zu of %zu bytes sent)",
                        s->timeout_ms, s->out.len - left, s->out.len);
    }
    return 0;
}

static int stream_send(struct sink *s, const struct export_batch *b, struct sink_result *res)
{
    if (build(s, b, true) < 0)
        return fail(s, res, ERR_IO, "out of memory framing %zu records", b->n);
    if (s->fd >= 0 && !stream_alive(s, NULL))
        drop_conn(s);
    /* Syslog over a stream has no acknowledgement: the last batch, written to a connection
     * that has since been closed or failed, may have died in the socket buffers with the
     * receiver. On every new connection it goes again first (at least once: receivers
     * drop duplicates by event id), so a receiver restart loses nothing that was written. */
    bool resend = s->fd < 0 && s->prev.len > 0;
    if (s->fd < 0) {
        int64_t deadline = now_ms() + s->timeout_ms;
        int r = sock_connect(s, SOCK_STREAM, deadline, res);
        if (r == 0 && s->t == T_TLS)
            r = tls_handshake(s, deadline, res);
        if (r < 0) {
            drop_conn(s);
            return r;
        }
    }
    int r = resend ? stream_write(s, s->prev.data, s->prev.len, now_ms() + s->timeout_ms, res) : 0;
    if (r == 0)
        r = stream_write(s, s->out.data, s->out.len, now_ms() + s->timeout_ms, res);
    if (r < 0) {
        drop_conn(s);
        return r;
    }
    buf_reset(&s->prev);
    if (buf_append(&s->prev, s->out.data, s->out.len) < 0)
        buf_reset(&s->prev); /* cannot keep it: a later reconnect resends nothing */
    res->acked = b->n;
    return 0;
}

/* ---- udp ---- */

static int udp_send(struct sink *s, const struct export_batch *b, struct sink_result *res)
{
    if (build(s, b, false) < 0)
        return fail(s, res, ERR_IO, "out of memory building %zu records", b->n);
    int64_t deadline = now_ms() + s->timeout_ms;
    if (s->fd < 0) {
        int r = sock_connect(s, SOCK_DGRAM, deadline, res);
        if (r < 0)
            return r;
    }
    size_t i = 0;
    while (i < b->n) {
        struct mmsghdr mm[UDP_CHUNK];
        struct iovec iov[UDP_CHUNK];
        unsigned cnt = 0;
        for (; cnt < UDP_CHUNK && i + cnt < b->n; cnt++) {
            const struct span *sp = &s->spans[i + cnt];
            iov[cnt] = (struct iovec){s->out.data + sp->off, sp->len};
            mm[cnt] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[cnt], .msg_iovlen = 1}};
        }
        int k = sendmmsg(s->fd, mm, cnt, MSG_DONTWAIT);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(s->fd, POLLOUT, deadline) == 0)
                continue;
            res->acked = i;
            drop_conn(s);
            return fail(s, res, ERR_IO, "send: timed out after %d ms", s->timeout_ms);
        }
        if (k < 0 && errno == EMSGSIZE) { /* never fits a datagram: settled as refused */
            if (res->rejected)
                res->rejected[i] = 1;
            fail(s, res, 0, "record seq %lld (%zu bytes) is too large for a UDP datagram",
                 (long long)b->rec[i].seq, s->spans[i].len);
            i++;
            continue;
        }
        /* ECONNREFUSED: an earlier datagram met a closed port (ICMP) */
        int e = k < 0 ? errno : EIO;
        res->acked = i;
        drop_conn(s);
        return fail(s, res, ERR_IO, "send: %s", strerror(e));
    }
    res->acked = b->n;
    return 0;
}

/* ---- relp ---- */

static void relp_on_err(void *usr, char *objinfo, char *errmsg, relpRetVal code)
{
    (void)objinfo; /* "conn to srvr HOST:PORT": already in our prefix */
    struct sink *s = usr;
    if (!s)
        return;
    if (s->relp_errors++ == 0)
        snprintf(s->relp_error, sizeof(s->relp_error), "%s (librelp %d)", errmsg ? errmsg : "error",
                 (int)code);
}

static const char *relp_reason(const struct sink *s, relpRetVal rr)
{
    if (s->relp_error[0])
        return s->relp_error;
    switch (rr) {
    case RELP_RET_TIMED_OUT:
        return "timed out";
    case RELP_RET_IO_ERR:
        return "I/O error";
    case RELP_RET_SESSION_BROKEN:
        return "session broken";
    case RELP_RET_OUT_OF_MEMORY:
        return "out of memory";
    default:
        return "error";
    }
}

static int relp_send(struct sink *s, const struct export_batch *b, struct sink_result *res)
{
    if (build(s, b, false) < 0)
        return fail(s, res, ERR_IO, "out of memory building %zu records", b->n);
    s->relp_errors = 0;
    s->relp_error[0] = '\0';
    /* connect polls for exactly connTimeout s; the other waits end when the wall clock's
     * second passes start + timeout, hence the extra second (see the file comment) */
    unsigned secs = (unsigned)((s->timeout_ms + 999) / 1000);
    relpClt_t *clt = NULL;
    relpRetVal rr = relpEngineCltConstruct(s->relp, &clt);
    if (rr != RELP_RET_OK)
        return fail(s, res, ERR_IO, "cannot create a RELP client (librelp %d)", (int)rr);
    relpCltSetUsrPtr(clt, s);
    relpCltSetTimeout(clt, secs + 1);
    relpCltSetConnTimeout(clt, (int)secs);
    rr = relpCltConnect(clt, AF_UNSPEC, (unsigned char *)s->port, (unsigned char *)s->host);
    if (rr != RELP_RET_OK) {
        relpEngineCltDestruct(s->relp, &clt);
        return fail(s, res, ERR_IO, "connect: %s", relp_reason(s, rr));
    }
    size_t sent = 0;
    for (; sent < b->n && rr == RELP_RET_OK && s->relp_errors == 0; sent++)
        rr = relpCltSendSyslog(clt, (unsigned char *)s->out.data + s->spans[sent].off,
                               s->spans[sent].len);
    /* The graceful close waits for the answer to "close", which the server sends after
     * answering every earlier frame: past it, no error reported means all were 200. */
    relpEngineCltDestruct(s->relp, &clt);
    if (rr != RELP_RET_OK || s->relp_errors)
        return fail(s, res, ERR_IO, "%s", relp_reason(s, rr));
    res->acked = b->n;
    return 0;
}

/* ---- the sink ---- */

/* OpenSSL's default password callback reads the terminal; this one refuses, so an
 * encrypted key fails to load instead of blocking the worker. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static int tls_setup(struct sink *s, const struct exporter_config *cfg, struct err_detail *d)
{
    const char *cert = cfg->tls.cert_file, *key = cfg->tls.key_file;
    if (key && !cert)
        return err_set(d, ERR_INVAL, "tls.key_file: set without tls.cert_file");
    if (!key)
        key = cert; /* a PEM bundle with both */
    const char *files[][2] = {
        {"tls.ca_file", cfg->tls.ca_file}, {"tls.cert_file", cert}, {"tls.key_file", key}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (files[i][1] && access(files[i][1], R_OK) != 0)
            return err_set(d, ERR_INVAL, "%s: %s: %s", files[i][0], files[i][1], strerror(errno));
    ERR_clear_error();
    s->ctx = SSL_CTX_new(TLS_client_method());
    if (!s->ctx)
        return err_set(d, ERR_NOMEM, "tls: cannot create a TLS context");
    SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION); /* RFC 9662 */
    SSL_CTX_set_mode(s->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_default_passwd_cb(s->ctx, no_password);
    SSL_CTX_set_cert_cb(s->ctx, on_cert_request, s);
    int r = 0;
    if (s->verify) {
        SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER, NULL);
        int ok = cfg->tls.ca_file ? SSL_CTX_load_verify_locations(s->ctx, cfg->tls.ca_file, NULL)
                                  : SSL_CTX_set_default_verify_paths(s->ctx);
        if (ok != 1)
            r = err_set(d, ERR_INVAL, "tls.ca_file: %s: no usable certificate",
                        cfg->tls.ca_file ? cfg->tls.ca_file : "(system CAs)");
    } else {
        SSL_CTX_set_verify(s->ctx, SSL_VERIFY_NONE, NULL);
    }
    if (!r && cert && SSL_CTX_use_certificate_chain_file(s->ctx, cert) != 1)
        r = err_set(d, ERR_INVAL, "tls.cert_file: %s: not a PEM certificate", cert);
    if (!r && cert && SSL_CTX_use_PrivateKey_file(s->ctx, key, SSL_FILETYPE_PEM) != 1)
        r = err_set(d, ERR_INVAL, "tls.key_file: %s: not an unencrypted PEM private key", key);
    if (!r && cert && SSL_CTX_check_private_key(s->ctx) != 1)
        r = err_set(d, ERR_INVAL, "tls.key_file: %s: does not match tls.cert_file", key);
    ERR_clear_error();
    return r;
}

static void close_(struct sink *s)
{
    if (!s)
        return;
    struct sigpipe_guard g;
    sigpipe_block(&g);
    drop_conn(s);
    sigpipe_unblock(&g);
    SSL_CTX_free(s->ctx);
    if (s->relp)
        relpEngineDestruct(&s->relp);
    free(s->host);
    free(s->tls_name);
    free(s->spans);
    buf_done(&s->out);
    buf_done(&s->prev);
    free(s);
}

static int open_(const struct exporter_config *cfg, struct sink **ret, struct err_detail *d)
{
    size_t ti = 0;
    while (ti < sizeof(transports) / sizeof(transports[0]) &&
           (!cfg->scheme || strcmp(cfg->scheme, transports[ti].scheme) != 0))
        ti++;
    if (ti == sizeof(transports) / sizeof(transports[0]))
        return err_set(d, ERR_INVAL,
                       "url: a syslog exporter's url is udp://, tcp://, tls:// or "
                       "relp://HOST:PORT");
    if (!cfg->host || !*cfg->host)
        return err_set(d, ERR_INVAL, "url: no host");
    if (cfg->path)
        return err_set(d, ERR_INVAL, "url: a syslog url has no path (%s://HOST:PORT)",
                       transports[ti].scheme);
    if (cfg->format != AUDIT_FMT_JSON && cfg->format != AUDIT_FMT_OCSF &&
        cfg->format != AUDIT_FMT_CEF && cfg->format != AUDIT_FMT_RFC5424)
        return err_set(d, ERR_UNSUPPORTED, "format: syslog carries json, ocsf, cef or rfc5424");
    if (transports[ti].t != T_TLS &&
        (cfg->tls.ca_file || cfg->tls.cert_file || cfg->tls.key_file || cfg->tls.server_name))
        return err_set(d, ERR_INVAL, "tls: set, but %s:// does not use TLS (use tls://)",
                       transports[ti].scheme);

    struct sink *s = calloc(1, sizeof(*s));
    if (!s)
        return err_set(d, ERR_NOMEM, "out of memory");
    s->fd = -1;
    s->t = transports[ti].t;
    s->scheme = transports[ti].scheme;
    s->format = cfg->format;
    s->verify = cfg->tls.verify;
    s->timeout_ms = cfg->timeout_ms > 0 && cfg->timeout_ms < 3600000 ? (int)cfg->timeout_ms : 10000;
    snprintf(s->port, sizeof(s->port), "%d", cfg->port > 0 ? cfg->port : transports[ti].port);
    buf_init(&s->out, 0);
    buf_init(&s->prev, 0);
    int r = 0;
    s->host = strdup(cfg->host);
    if (!s->host) {
        r = err_set(d, ERR_NOMEM, "out of memory");
        goto fail;
    }
    char hn[256] = "";
    if (gethostname(hn, sizeof(hn) - 1) != 0)
        hn[0] = '\0';
    hn[sizeof(hn) - 1] = '\0';
    s->hostname[syslog_token(s->hostname, hn, 255)] = '\0';

    if (s->t == T_TLS) {
        s->tls_name = strdup(cfg->tls.server_name ? cfg->tls.server_name : cfg->host);
        if (!s->tls_name) {
            r = err_set(d, ERR_NOMEM, "out of memory");
            goto fail;
        }
        if ((r = tls_setup(s, cfg, d)) < 0)
            goto fail;
    } else if (s->t == T_RELP) {
        if (relpEngineConstruct(&s->relp) != RELP_RET_OK) {
            r = err_set(d, ERR_NOMEM, "cannot create a RELP engine");
            goto fail;
        }
        relpEngineSetDbgprint(s->relp, NULL); /* installs its no-op printer; unset is a crash */
        relpEngineSetEnableCmd(s->relp, (unsigned char *)"syslog", eRelpCmdState_Required);
        relpEngineSetOnErr(s->relp, relp_on_err);
    }
    *ret = s;
    return 0;
fail:
    close_(s);
    return r;
}

static int send_(struct sink *s, const struct export_batch *b, struct sink_result *res)
{
    res->acked = 0;
    res->error[0] = '\0';
    if (b->n == 0)
        return 0;
    struct sigpipe_guard g;
    sigpipe_block(&g);
    int r;
    switch (s->t) {
    case T_UDP:
        r = udp_send(s, b, res);
        break;
    case T_RELP:
        r = relp_send(s, b, res);
        break;
    default:
        r = stream_send(s, b, res);
        break;
    }
    sigpipe_unblock(&g);
    if (s->out.cap > KEEP_MAX) { /* a rare huge batch does not pin its memory */
        buf_done(&s->out);
        buf_init(&s->out, 0);
    }
    return r;
}

const struct sink_ops sink_syslog_ops = {"syslog", open_, send_, close_};
