/* cli/logs.c — `mcpauth logs`, `logs verify` and `token inspect`: the system
 * log read from a running server, and one token judged the way a resource
 * server would judge it.
 *
 * `logs` has two ways to read. A table or JSON lines come from pages of
 * GET /api/v1/logs, each page's `Link rel="next"` naming the next one; the
 * server binds that link's cursor to the query, so the CLI passes the link's
 * parameters back unchanged and only ever changes `limit`. Every other format
 * is a download from /api/v1/logs/export written to stdout as it arrives, so
 * memory stays constant whatever the size of the log. Either way the server
 * is always the configured address: the link's host is never contacted.
 *
 * `token inspect` never needs the admin token to reach a verdict; the token
 * and everything derived from it are untrusted, so they reach the terminal
 * only through JSON escaping or with control characters replaced. */
#include "cli/cli.h"
#include "cli/cli_priv.h"
#include "cli/client.h"
#include "core/b64.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/timeutil.h"
#include "jose/jws.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define PAGE_TABLE       100  /* rows per page for a person (the server's default) */
#define PAGE_JSONL       1000 /* lines per page for a program: fewer round trips */
#define PAGE_MAX         1000 /* the server's cap on limit */
#define PROGRESS_LINES   10000
#define JWKS_TIMEOUT_S   5L
#define JWKS_MAX         (256u * 1024)
#define TOKEN_INPUT_MAX  (JWS_MAX_TOKEN + 1024) /* room for whitespace and "Bearer " */
#define NS_PER_S         1000000000LL
#define NUMERIC_DATE_MAX 253402300799.0 /* 9999-12-31T23:59:59Z */

/* ---- usage ---- */

static const char usage_logs[] =
    "Usage: mcpauth logs [--since D] [--until D] [--filter EXPR] [-q WORDS] [--limit N]\n"
    "                    [--format table|jsonl|csv|cef|ocsf|rfc5424] [--follow]\n"
    "       mcpauth logs verify [--since D] [--until D]\n"
    "\n"
    "Prints the system log: a table on a terminal, JSON lines when piped. csv, cef,\n"
    "ocsf and rfc5424 are downloads, streamed to standard output with progress on\n"
    "standard error. `logs verify` recomputes the hash chain and names the first\n"
    "event that does not hold.\n"
    "\n"
    "Options:\n"
    "      --since D        from D: RFC 3339 (2026-11-22T09:14:03Z) or relative (-15m, -1h, -7d)\n"
    "      --until D        up to D (same forms)\n"
    "      --filter EXPR    SCIM filter, e.g. 'outcome eq \"denied\" and user sw \"alice\"'\n"
    "  -q, --query WORDS    keywords, all of which must appear\n"
    "      --limit N        print at most N events in all\n"
    "      --format F       table, jsonl, csv, cef, ocsf or rfc5424\n"
    "  -f, --follow         keep printing new events as they are written (table or jsonl;\n"
    "                       Ctrl-C ends)\n"
    "  -h, --help           show this help\n" ENV_HELP;

static const char usage_token[] =
    "Usage: mcpauth token inspect TOKEN [--jwks URL|FILE] [--expect-alg ALG] [--audience A]\n"
    "\n"
    "Decodes a JWT's header and claims, finds the audit event of its jti (with the\n"
    "admin token, when there is one), checks the signature against a JWK Set and\n"
    "prints one verdict line: why a resource server would reject the token, or\n"
    "that it would accept it. TOKEN \"-\" reads standard input.\n"
    "\n"
    "Options:\n"
    "      --jwks URL|FILE   the JWK Set (default: MCPAUTH_ADDR/oauth/jwks)\n"
    "      --expect-alg ALG  the only algorithm the resource server accepts\n"
    "      --audience A      the audience the resource server expects\n"
    "  -h, --help            show this help\n"
    "\n"
    "Exit status: 0 accepted, 1 rejected, 2 bad usage, an unreadable token or no JWK Set.\n";

/* ---- small formatting ---- */

/* 12345 → "12,345". */
static void fmt_count(uint64_t n, char out[32])
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%" PRIu64, n);
    int o = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* MCPAUTH_ADDR as client_new() reads it, for what needs no admin token. Owned. */
static char *server_addr(void)
{
    const char *env = getenv("MCPAUTH_ADDR");
    char *a = strdup(env && *env ? env : CLIENT_DEFAULT_ADDR);
    for (size_t n = a ? strlen(a) : 0; n > 0 && a[n - 1] == '/'; n--)
        a[n - 1] = '\0';
    return a;
}

static void oom(void)
{
    fprintf(stderr, "mcpauth: %s\n", err_message(ERR_NOMEM));
}

/* Appends "&name=value" (or without "&" first), value percent-escaped by
 * libcurl. Nothing for a NULL value. */
static int put_param(struct client *c, struct buf *b, const char *name, const char *value)
{
    if (!value)
        return 0;
    char *e = client_escape(c, value);
    if (!e)
        return ERR_NOMEM;
    int r = buf_printf(b, "%s%s=%s", b->len ? "&" : "", name, e);
    free(e);
    return r;
}

/* ---- progress on stderr ---- */

/* Counts events in the bytes that pass and says how fast they go, every
 * second: on a terminal always, elsewhere only past PROGRESS_LINES, so that a
 * small download into a file does not fill a CI log. A finished download
 * always ends with the count. A CSV record may hold line breaks inside
 * quotes, and its first line is the column row. */
struct progress {
    bool tty;
    bool csv;
    bool in_quotes;
    bool shown;
    uint64_t lines;
    int64_t start, last;
};

static void progress_init(struct progress *p, bool csv)
{
    *p = (struct progress){.tty = isatty(STDERR_FILENO) == 1, .csv = csv};
    p->start = p->last = mono_ns();
}

static uint64_t progress_events(const struct progress *p)
{
    return p->csv ? (p->lines ? p->lines - 1 : 0) : p->lines;
}

static void progress_print(struct progress *p, int64_t now, bool final)
{
    char n[32], rate[32];
    double secs = (double)(now - p->start) / (double)NS_PER_S;
    uint64_t events = progress_events(p);
    fmt_count(events, n);
    fmt_count(secs > 0.001 ? (uint64_t)((double)events / secs) : events, rate);
    if (p->tty)
        fprintf(stderr, "\r%s events, %s events/s\033[K%s", n, rate, final ? "\n" : "");
    else
        fprintf(stderr, "%s events, %s events/s\n", n, rate);
    p->shown = true;
    p->last = now;
}

static bool progress_wanted(const struct progress *p)
{
    return p->tty || p->lines > PROGRESS_LINES;
}

static void progress_tick(struct progress *p)
{
    int64_t now = mono_ns();
    if (now - p->last >= NS_PER_S && progress_wanted(p))
        progress_print(p, now, false);
}

static void progress_bytes(struct progress *p, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p->csv && data[i] == '"')
            p->in_quotes = !p->in_quotes;
        else if (data[i] == '\n' && !p->in_quotes)
            p->lines++;
    }
    progress_tick(p);
}

/* The last word: when progress was wanted, or `always` (a download says how
 * much it wrote, even a small one into a file). */
static void progress_end(struct progress *p, bool always)
{
    if (always || progress_wanted(p))
        progress_print(p, mono_ns(), true);
}

/* ---- logs: options ---- */

enum fmt { FMT_TABLE, FMT_JSONL, FMT_CSV, FMT_CEF, FMT_OCSF, FMT_RFC5424 };

static const char *const fmt_names[] = {"table", "jsonl", "csv", "cef", "ocsf", "rfc5424"};

struct logs_opts {
    const char *since, *until, *filter, *q;
    uint64_t limit; /* 0: no limit */
    enum fmt fmt;
    bool follow;
    bool help; /* --help was printed: nothing else to do */
};

enum {
    OPT_SINCE = 400,
    OPT_UNTIL,
    OPT_FILTER,
    OPT_LIMIT,
    OPT_FORMAT,
    OPT_JWKS,
    OPT_EXPECT_ALG,
    OPT_AUDIENCE
};

static int parse_limit(const char *s, uint64_t *ret)
{
    char *end = NULL;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < 1 || v > (1ull << 53))
        return -1;
    *ret = v;
    return 0;
}

/* `logs` and `logs verify` options; `verify` takes only --since and --until. */
static int parse_logs_opts(int argc, char **argv, bool verify, struct logs_opts *o)
{
    static const struct option opts[] = {
        {"since", required_argument, NULL, OPT_SINCE},
        {"until", required_argument, NULL, OPT_UNTIL},
        {"filter", required_argument, NULL, OPT_FILTER},
        {"query", required_argument, NULL, 'q'},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"follow", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = verify ? "logs verify" : "logs";
    const char *format = NULL;
    int opt;

    *o = (struct logs_opts){.fmt = isatty(STDOUT_FILENO) == 1 ? FMT_TABLE : FMT_JSONL};
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":q:fh", opts, NULL)) != -1) {
        if (verify && opt != OPT_SINCE && opt != OPT_UNTIL && opt != 'h' && opt != '?' &&
            opt != ':')
            return cli_usage_error(usage_logs, cmd, "only --since and --until apply to verify");
        switch (opt) {
        case OPT_SINCE:
            o->since = optarg;
            break;
        case OPT_UNTIL:
            o->until = optarg;
            break;
        case OPT_FILTER:
            o->filter = optarg;
            break;
        case 'q':
            o->q = optarg;
            break;
        case OPT_LIMIT:
            if (parse_limit(optarg, &o->limit) < 0)
                return cli_usage_error(usage_logs, cmd, "--limit: expected a positive integer");
            break;
        case OPT_FORMAT:
            format = optarg;
            break;
        case 'f':
            o->follow = true;
            break;
        case 'h':
            o->help = true;
            return cli_help(usage_logs);
        default:
            return cli_bad_option(usage_logs, cmd, opt, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error(usage_logs, cmd, "unexpected argument '%s'", argv[optind]);
    if (o->since && !*o->since)
        return cli_usage_error(usage_logs, cmd, "--since: the value is empty");
    if (o->until && !*o->until)
        return cli_usage_error(usage_logs, cmd, "--until: the value is empty");
    if (format) {
        size_t i;
        for (i = 0; i < sizeof fmt_names / sizeof fmt_names[0]; i++)
            if (strcmp(format, fmt_names[i]) == 0)
                break;
        if (strcmp(format, "json") == 0)
            i = FMT_JSONL;
        if (i == sizeof fmt_names / sizeof fmt_names[0])
            return cli_usage_error(usage_logs, cmd,
                                   "--format: expected table, jsonl, csv, cef, ocsf or rfc5424");
        o->fmt = (enum fmt)i;
    }
    if (o->follow && o->fmt != FMT_TABLE && o->fmt != FMT_JSONL)
        return cli_usage_error(usage_logs, cmd,
                               "--follow prints a table or JSON lines; %s is a download",
                               fmt_names[o->fmt]);
    if (o->follow && o->until)
        return cli_usage_error(usage_logs, cmd, "--follow and --until do not go together");
    return RC_OK;
}

/* since, until, filter and q as a query string (no leading '?'). */
static int selection_query(struct client *c, const struct logs_opts *o, struct buf *b)
{
    int r = put_param(c, b, "since", o->since);
    if (r == 0)
        r = put_param(c, b, "until", o->until);
    if (r == 0)
        r = put_param(c, b, "filter", o->filter);
    if (r == 0)
        r = put_param(c, b, "q", o->q);
    return r;
}

/* ---- logs: the table ---- */

enum { COL_TIME, COL_OUTCOME, COL_USER, COL_CLIENT, COL_SYSTEM, COL_SCOPES, COL_DETAIL, NCOLS };

static const char *const col_headers[NCOLS] = {"TIME",   "OUTCOME", "USER",  "CLIENT",
                                               "SYSTEM", "SCOPES",  "DETAIL"};

/* Printed page by page, so columns cannot be sized from every row: each page
 * widens them to its own widest cell, and they never narrow again. */
struct log_table {
    size_t width[NCOLS];
    bool header_done;
    uint64_t rows;
};

/* "2026-11-22T09:14:03.512384Z" → "2026-11-22T09:14:03Z": seconds are enough
 * on a screen; the zone stays as the event has it. */
static int put_time(struct buf *b, const char *t)
{
    const char *dot = strchr(t, '.');
    if (!dot)
        return buf_puts(b, t);
    const char *zone = dot + 1;
    while (*zone >= '0' && *zone <= '9')
        zone++;
    int r = buf_append(b, t, (size_t)(dot - t));
    return r < 0 ? r : buf_puts(b, zone);
}

/* Granted scopes as they are, denied ones with '!': "repo:read !repo:write". */
static int put_scopes(struct buf *b, const json_t *scopes)
{
    size_t i;
    const json_t *s;
    int r = 0;

    json_array_foreach(scopes, i, s)
    {
        const char *name = json_is_string(s) ? json_string_value(s) : cli_string_of(s, "name");
        const char *outcome = cli_string_of(s, "outcome");
        if (!name)
            continue;
        if (b->len)
            r = buf_puts(b, " ");
        if (r == 0 && outcome && strcmp(outcome, "denied") == 0)
            r = buf_puts(b, "!");
        if (r == 0)
            r = buf_puts(b, name);
        if (r < 0)
            return r;
    }
    return 0;
}

/* status_detail; for an admin change (or a key rotation, which is told the
 * same way) "ACTION OBJECT by ACTOR". */
static int put_detail(struct buf *b, const json_t *ev)
{
    const char *type = cli_string_of(ev, "type");
    const char *detail = cli_string_of(ev, "status_detail");
    const char *action = cli_string_of(ev, "action");
    const char *object = cli_string_of(ev, "object");
    if ((type && strcmp(type, "admin.change") == 0) || (!detail && action && object)) {
        const char *actor = cli_string_of(ev, "actor");
        return buf_printf(b, "%s %s by %s", action ? action : "-", object ? object : "-",
                          actor ? actor : "-");
    }
    return detail ? buf_puts(b, detail) : 0;
}

/* The cells of one event, owned and sanitized; "-" for what is missing. */
static int event_cells(const json_t *ev, char *cells[NCOLS])
{
    static const char *const fields[NCOLS] = {[COL_OUTCOME] = "outcome",
                                              [COL_USER] = "user",
                                              [COL_CLIENT] = "client",
                                              [COL_SYSTEM] = "system"};
    struct buf b;
    int r = 0;

    for (size_t c = 0; c < NCOLS && r == 0; c++) {
        buf_init(&b, 0);
        if (c == COL_TIME) {
            const char *t = cli_string_of(ev, "time");
            r = t ? put_time(&b, t) : 0;
        } else if (c == COL_SCOPES) {
            r = put_scopes(&b, json_object_get(ev, "scopes"));
        } else if (c == COL_DETAIL) {
            r = put_detail(&b, ev);
        } else {
            const char *s = cli_string_of(ev, fields[c]);
            r = s ? buf_puts(&b, s) : 0;
        }
        if (r == 0 && b.len == 0)
            r = buf_puts(&b, "-");
        cells[c] = r == 0 ? buf_take(&b, NULL) : NULL;
        buf_done(&b);
        if (r == 0 && !cells[c])
            r = ERR_NOMEM;
        cli_sanitize(cells[c]);
    }
    return r;
}

static void print_row(const struct log_table *t, char *const cells[NCOLS])
{
    for (size_t c = 0; c < NCOLS; c++) {
        fputs(cells[c], stdout);
        if (c + 1 == NCOLS) {
            fputc('\n', stdout);
            break;
        }
        for (size_t w = cli_text_width(cells[c]); w < t->width[c] + 2; w++)
            fputc(' ', stdout);
    }
}

/* Prints events[0..n) of a page as rows. */
static int table_page(struct log_table *t, const json_t *events, size_t n)
{
    char *(*rows)[NCOLS] = calloc(n ? n : 1, sizeof *rows);
    int r = 0;

    if (!rows)
        return ERR_NOMEM;
    if (!t->header_done)
        for (size_t c = 0; c < NCOLS; c++)
            t->width[c] = strlen(col_headers[c]);
    for (size_t i = 0; i < n && r == 0; i++) {
        r = event_cells(json_array_get(events, i), rows[i]);
        for (size_t c = 0; r == 0 && c < NCOLS; c++) {
            size_t w = cli_text_width(rows[i][c]);
            if (w > t->width[c])
                t->width[c] = w;
        }
    }
    if (r == 0 && n && !t->header_done) {
        print_row(t, (char *const *)col_headers);
        t->header_done = true;
    }
    for (size_t i = 0; i < n && r == 0; i++)
        print_row(t, rows[i]);
    t->rows += r == 0 ? n : 0;
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < NCOLS; c++)
            free(rows[i][c]);
    free(rows);
    return r;
}

/* ---- logs: pages ---- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Sleeps about one second; returns early when interrupted. */
static void pause_1s(void)
{
    struct timespec ts = {.tv_sec = 1, .tv_nsec = 0};
    while (!interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The query of the `rel="next"` URL in a Link header value (RFC 8288), owned;
 * NULL when there is none or it is not usable. */
static char *next_query(const char *link)
{
    const char *p = link;
    while (p && (p = strchr(p, '<')) != NULL) {
        const char *end = strchr(p, '>');
        if (!end)
            return NULL;
        const char *params = end + 1;
        const char *stop = strchr(params, ',');
        size_t plen = stop ? (size_t)(stop - params) : strlen(params);
        bool next = false;
        for (const char *rel = params; (rel = strstr(rel, "rel=")) && rel < params + plen;
             rel += 4) {
            const char *v = rel + 4;
            if (*v == '"')
                v++;
            /* rel may hold several space-separated types */
            for (const char *w = v; w < params + plen && *w != '"' && *w != ';';) {
                size_t wl = strcspn(w, " \";,");
                if (wl == 4 && strncasecmp(w, "next", 4) == 0)
                    next = true;
                w += wl;
                while (*w == ' ')
                    w++;
            }
        }
        if (next) {
            const char *q = memchr(p + 1, '?', (size_t)(end - p - 1));
            if (!q)
                return NULL;
            size_t qlen = (size_t)(end - q - 1);
            for (size_t i = 0; i < qlen; i++) /* the server percent-encodes */
                if ((unsigned char)q[1 + i] <= 0x20 || (unsigned char)q[1 + i] >= 0x7f ||
                    q[1 + i] == '#')
                    return NULL;
            return strndup(q + 1, qlen);
        }
        p = stop;
    }
    return NULL;
}

/* "/api/v1/logs?" + `query` with its limit replaced by `limit`. Owned or NULL. */
static char *page_path(const char *query, uint64_t limit)
{
    struct buf b;
    int r;

    buf_init(&b, 0);
    r = buf_puts(&b, "/api/v1/logs?");
    for (const char *p = query; r == 0 && *p;) {
        size_t n = strcspn(p, "&");
        if (n && !(n >= 6 && strncmp(p, "limit=", 6) == 0))
            r = buf_printf(&b, "%.*s&", (int)n, p);
        p += n;
        if (*p == '&')
            p++;
    }
    if (r == 0)
        r = buf_printf(&b, "limit=%" PRIu64, limit);
    if (r < 0) {
        buf_done(&b);
        return NULL;
    }
    return buf_take(&b, NULL);
}

/* get_page() when the server could not be reached and the caller would
 * rather wait for it than stop. */
#define PAGE_UNREACHABLE (-1)

/* One page: the array of events and the next page's query (NULL when there is
 * none). Prints what went wrong and returns the exit status; with `patient`,
 * an unreachable server is PAGE_UNREACHABLE and left to the caller to tell. */
static int get_page(struct client *c, const char *path, bool patient, json_t **ret_events,
                    char **ret_next)
{
    struct client_response resp = {0};
    char *link = NULL;
    int rc = RC_REFUSED;
    int r = client_request_h(c, "GET", path, NULL, NULL, 0, "Link", &link, &resp);

    if (r == ERR_IO && patient)
        return PAGE_UNREACHABLE;
    if (r == ERR_IO) {
        fprintf(stderr, "mcpauth: cannot reach %s: ", client_addr(c));
        cli_put_clean(stderr, client_error(c));
        fputc('\n', stderr);
        return RC_USAGE;
    }
    if (r < 0) {
        fprintf(stderr, "mcpauth: %s\n", err_message(r));
        return RC_REFUSED;
    }
    if (resp.status == 401) {
        fputs("mcpauth: the server refused the admin token (HTTP 401)\n", stderr);
        goto out;
    }
    if (resp.status < 200 || resp.status > 299) {
        cli_report_refusal(&resp);
        goto out;
    }
    json_t *events = json_loadb(resp.body, resp.len, 0, NULL);
    if (!json_is_array(events)) {
        json_decref(events);
        fputs("mcpauth: unexpected answer from the server: not a list of events\n", stderr);
        goto out;
    }
    *ret_next = link ? next_query(link) : NULL;
    *ret_events = events;
    rc = RC_OK;
out:
    free(link);
    client_response_done(&resp);
    return rc;
}

static int print_jsonl(const json_t *events, size_t n, struct progress *p)
{
    for (size_t i = 0; i < n; i++) {
        char *s = json_dumps(json_array_get(events, i), JSON_COMPACT_FLAGS);
        if (!s)
            return ERR_NOMEM;
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
        if (p)
            p->lines++;
    }
    if (p)
        progress_tick(p);
    return 0;
}

static int logs_pages(struct client *c, const struct logs_opts *o)
{
    struct log_table table = {0};
    struct progress prog;
    struct sigaction sa = {.sa_handler = on_sigint}, old_sa;
    struct buf q;
    char *path = NULL;
    uint64_t printed = 0;
    uint64_t per_page = o->fmt == FMT_TABLE ? PAGE_TABLE : PAGE_JSONL;
    bool show_progress = o->fmt == FMT_JSONL && !o->follow;
    bool answered = false, lost = false; /* following: the server answered once, went away */
    int rc = RC_OK;

    buf_init(&q, 0);
    if (selection_query(c, o, &q) < 0 || !(path = page_path(q.data ? q.data : "", 1))) {
        buf_done(&q);
        oom();
        return RC_REFUSED;
    }
    buf_done(&q);
    progress_init(&prog, false);
    if (o->follow) {
        /* No SA_RESTART: Ctrl-C cuts the one-second sleep short. */
        sigemptyset(&sa.sa_mask);
        interrupted = 0;
        sigaction(SIGINT, &sa, &old_sa);
    }

    for (;;) {
        uint64_t want = per_page;
        if (o->limit && o->limit - printed < want)
            want = o->limit - printed;
        if (want > PAGE_MAX)
            want = PAGE_MAX;
        char *p = page_path(strchr(path, '?') + 1, want);
        free(path);
        path = p;
        if (!path) {
            oom();
            rc = RC_REFUSED;
            break;
        }

        json_t *events = NULL;
        char *next = NULL;
        rc = get_page(c, path, o->follow && answered, &events, &next);
        if (rc == PAGE_UNREACHABLE) {
            /* The cursor outlives a restart of the server: wait for it. */
            if (!lost) {
                fprintf(stderr, "mcpauth: lost %s (", client_addr(c));
                cli_put_clean(stderr, client_error(c));
                fputs("); retrying every second\n", stderr);
                lost = true;
            }
            rc = RC_OK;
            pause_1s();
            if (interrupted)
                break;
            continue;
        }
        if (rc != RC_OK)
            break;
        answered = true;
        if (lost) {
            fprintf(stderr, "mcpauth: %s answers again\n", client_addr(c));
            lost = false;
        }
        size_t n = json_array_size(events);
        if (o->limit && n > o->limit - printed) /* a server that ignored limit */
            n = (size_t)(o->limit - printed);
        int r = o->fmt == FMT_TABLE ? table_page(&table, events, n)
                                    : print_jsonl(events, n, show_progress ? &prog : NULL);
        json_decref(events);
        printed += n;
        if (r < 0) {
            free(next);
            fprintf(stderr, "mcpauth: %s\n", err_message(r));
            rc = RC_REFUSED;
            break;
        }
        if (fflush(stdout) != 0) {
            free(next);
            rc = cli_finish(RC_OK);
            break;
        }
        if (!next || (o->limit && printed >= o->limit) || (n == 0 && !o->follow) || interrupted) {
            free(next);
            break;
        }
        free(path);
        path = page_path(next, 1); /* the limit is set at the top of the loop */
        free(next);
        if (!path) {
            oom();
            rc = RC_REFUSED;
            break;
        }
        if (n == 0)
            pause_1s();
        if (interrupted)
            break;
    }

    if (o->follow)
        sigaction(SIGINT, &old_sa, NULL);
    free(path);
    if (rc == RC_OK && o->fmt == FMT_TABLE && table.rows == 0 && !o->follow)
        fputs("No events found.\n", stderr);
    if (show_progress && rc == RC_OK)
        progress_end(&prog, false);
    return cli_finish(rc);
}

/* ---- logs: downloads ---- */

struct download {
    struct progress prog;
    int write_errno;
    bool started;
};

static int on_chunk(const char *data, size_t len, void *userdata)
{
    struct download *d = userdata;
    d->started = true;
    if (fwrite(data, 1, len, stdout) != len) {
        d->write_errno = errno;
        return ERR_IO;
    }
    progress_bytes(&d->prog, data, len);
    return 0;
}

static int logs_download(struct client *c, const struct logs_opts *o)
{
    struct client_response resp = {0};
    struct download d = {0};
    struct buf path;
    int rc = RC_REFUSED;
    int r;

    buf_init(&path, 0);
    r = buf_printf(&path, "/api/v1/logs/export?format=%s", fmt_names[o->fmt]);
    if (r == 0) {
        struct buf q;
        buf_init(&q, 0);
        r = selection_query(c, o, &q);
        if (r == 0 && q.len)
            r = buf_printf(&path, "&%s", q.data);
        buf_done(&q);
    }
    if (r == 0 && o->limit)
        r = buf_printf(&path, "&limit=%" PRIu64, o->limit);
    if (r < 0) {
        buf_done(&path);
        oom();
        return RC_REFUSED;
    }

    progress_init(&d.prog, o->fmt == FMT_CSV);
    r = client_stream(c, path.data, on_chunk, &d, &resp);
    buf_done(&path);
    if (fflush(stdout) != 0 && r == 0) {
        d.write_errno = errno;
        r = ERR_IO;
    }
    if (r < 0 && d.prog.shown && d.prog.tty)
        fputc('\n', stderr); /* the message goes below the progress line */

    if (d.write_errno) {
        fprintf(stderr, "mcpauth: cannot write the output: %s\n", strerror(d.write_errno));
        goto out;
    }
    if (r == ERR_IO && d.started) {
        char n[32];
        fmt_count(progress_events(&d.prog), n);
        fprintf(stderr, "mcpauth: the download was cut short after %s events: ", n);
        cli_put_clean(stderr, client_error(c));
        fputc('\n', stderr);
        goto out;
    }
    if (r == ERR_IO) {
        fprintf(stderr, "mcpauth: cannot reach %s: ", client_addr(c));
        cli_put_clean(stderr, client_error(c));
        fputc('\n', stderr);
        rc = RC_USAGE;
        goto out;
    }
    if (r < 0) {
        fprintf(stderr, "mcpauth: %s\n", err_message(r));
        goto out;
    }
    if (resp.status == 401) {
        fputs("mcpauth: the server refused the admin token (HTTP 401)\n", stderr);
    } else if (resp.status < 200 || resp.status > 299) {
        cli_report_refusal(&resp);
    } else {
        progress_end(&d.prog, true);
        rc = RC_OK;
    }
out:
    client_response_done(&resp);
    return cli_finish(rc);
}

/* ---- logs verify ---- */

static int logs_verify(int argc, char **argv)
{
    struct logs_opts o;
    struct client *c = NULL;
    json_t *answer = NULL;
    struct buf path;
    int rc = parse_logs_opts(argc, argv, true, &o);

    if (rc != RC_OK || o.help)
        return rc;
    rc = cli_open_client(&c);
    if (rc != RC_OK)
        return rc;
    buf_init(&path, 0);
    int r = buf_puts(&path, "/api/v1/logs/verify?");
    if (r == 0)
        r = put_param(c, &path, "since", o.since);
    if (r == 0)
        r = put_param(c, &path, "until", o.until);
    if (r < 0) {
        oom();
        rc = RC_REFUSED;
        goto out;
    }
    rc = cli_exchange(c, "GET", path.data, NULL, NULL, 0, &answer);
    if (rc != RC_OK)
        goto out;
    const json_t *ok = json_object_get(answer, "ok");
    json_int_t verified = json_integer_value(json_object_get(answer, "verified"));
    if (json_is_true(ok)) {
        printf("chain intact: %" JSON_INTEGER_FORMAT " events", verified);
        if (verified > 0)
            printf(" (seq %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT ")",
                   json_integer_value(json_object_get(answer, "first_seq")),
                   json_integer_value(json_object_get(answer, "last_seq")));
        fputc('\n', stdout);
        rc = RC_OK;
    } else if (json_is_false(ok)) {
        const char *reason = cli_string_of(answer, "reason");
        printf("chain broken at seq %" JSON_INTEGER_FORMAT ": ",
               json_integer_value(json_object_get(answer, "broken_seq")));
        cli_put_clean(stdout, reason ? reason : "no reason given");
        fputc('\n', stdout);
        rc = RC_REFUSED;
    } else {
        fputs("mcpauth: unexpected answer from the server: no \"ok\" in the verification\n",
              stderr);
        rc = RC_REFUSED;
    }
    rc = cli_finish(rc);
out:
    json_decref(answer);
    buf_done(&path);
    client_free(c);
    return rc;
}

int cli_logs(int argc, char **argv)
{
    struct logs_opts o;
    struct client *c = NULL;

    if (argc >= 2 && strcmp(argv[1], "verify") == 0)
        return logs_verify(argc - 1, argv + 1);
    int rc = parse_logs_opts(argc, argv, false, &o);
    if (rc != RC_OK || o.help)
        return rc;
    rc = cli_open_client(&c);
    if (rc != RC_OK)
        return rc;
    rc = o.fmt == FMT_TABLE || o.fmt == FMT_JSONL ? logs_pages(c, &o) : logs_download(c, &o);
    client_free(c);
    return rc;
}

/* ---- token inspect ---- */

/* A token as given: decoded for display before anything is trusted. */
struct token {
    char *compact; /* owned, trimmed */
    json_t *header, *claims;
};

static void token_done(struct token *t)
{
    free(t->compact);
    json_decref(t->header);
    json_decref(t->claims);
    *t = (struct token){0};
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Reads TOKEN, or standard input for "-", into an owned string without
 * surrounding whitespace or a "Bearer " prefix. Prints what went wrong. */
static int read_token(const char *arg, char **ret)
{
    struct buf b;
    int r = 0;

    buf_init(&b, TOKEN_INPUT_MAX);
    if (strcmp(arg, "-") == 0) {
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0 && r == 0)
            r = buf_append(&b, chunk, n);
        if (r == 0 && ferror(stdin)) {
            fprintf(stderr, "mcpauth token inspect: standard input: %s\n", strerror(errno));
            buf_done(&b);
            return RC_USAGE;
        }
    } else {
        r = buf_puts(&b, arg);
    }
    if (r < 0) {
        fprintf(stderr, "mcpauth token inspect: %s\n",
                r == ERR_TOOBIG ? "the token is too long to be a JWT" : err_message(r));
        buf_done(&b);
        return RC_USAGE;
    }
    const char *s = b.data ? b.data : "";
    size_t len = b.len;
    while (len && is_blank(*s)) {
        s++;
        len--;
    }
    while (len && is_blank(s[len - 1]))
        len--;
    if (memchr(s, '\0', len)) {
        fputs("mcpauth token inspect: not a JWT: the input holds a NUL byte\n", stderr);
        buf_done(&b);
        return RC_USAGE;
    }
    if (len > 7 && strncasecmp(s, "Bearer ", 7) == 0) {
        s += 7;
        len -= 7;
        while (len && *s == ' ') {
            s++;
            len--;
        }
    }
    char *t = strndup(s, len);
    buf_done(&b);
    if (!t) {
        oom();
        return RC_USAGE;
    }
    *ret = t;
    return RC_OK;
}

/* One base64url segment as a JSON object. */
static json_t *decode_segment(const char *s, size_t n, const char *what)
{
    unsigned char *raw = malloc(n * 3 / 4 + 1);
    size_t len = 0;
    json_error_t jerr;

    if (!raw) {
        oom();
        return NULL;
    }
    if (b64url_decode(s, n, raw, &len) < 0) {
        fprintf(stderr, "mcpauth token inspect: not a JWT: the %s is not base64url\n", what);
        free(raw);
        return NULL;
    }
    json_t *j = json_loadb((const char *)raw, len, 0, &jerr);
    free(raw);
    if (!json_is_object(j)) {
        fprintf(stderr, "mcpauth token inspect: not a JWT: the %s is not a JSON object\n", what);
        json_decref(j);
        return NULL;
    }
    return j;
}

static int token_decode(const char *arg, struct token *t)
{
    int rc = read_token(arg, &t->compact);
    if (rc != RC_OK)
        return rc;
    const char *s = t->compact;
    const char *d1 = strchr(s, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!*s) {
        fputs("mcpauth token inspect: the token is empty\n", stderr);
        return RC_USAGE;
    }
    if (!d2 || strchr(d2 + 1, '.')) {
        size_t dots = 0;
        for (const char *p = s; *p; p++)
            dots += *p == '.';
        fprintf(stderr, "mcpauth token inspect: not a JWT: %s\n",
                dots == 4 ? "five segments, an encrypted token (JWE)"
                          : "expected three segments separated by '.'");
        return RC_USAGE;
    }
    t->header = decode_segment(s, (size_t)(d1 - s), "header");
    if (t->header)
        t->claims = decode_segment(d1 + 1, (size_t)(d2 - d1 - 1), "payload");
    return t->header && t->claims ? RC_OK : RC_USAGE;
}

/* "4m 57s" for a duration in seconds. */
static void fmt_duration(int64_t secs, char out[48])
{
    int64_t d = secs / 86400, h = secs % 86400 / 3600, m = secs % 3600 / 60, s = secs % 60;
    if (d)
        snprintf(out, 48, "%" PRId64 "d %" PRId64 "h", d, h);
    else if (h)
        snprintf(out, 48, "%" PRId64 "h %" PRId64 "m", h, m);
    else if (m)
        snprintf(out, 48, "%" PRId64 "m %" PRId64 "s", m, s);
    else
        snprintf(out, 48, "%" PRId64 "s", s);
}

/* A NumericDate claim as RFC 3339; false when absent or out of range. */
static bool claim_time(const json_t *claims, const char *name, int64_t *ret_s,
                       char out[TIME_STR_LEN])
{
    const json_t *v = json_object_get(claims, name);
    if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > NUMERIC_DATE_MAX)
        return false;
    *ret_s = (int64_t)json_number_value(v);
    time_format_s(*ret_s, out);
    return true;
}

static void print_json(const char *label, const json_t *v)
{
    char *s = json_dumps(v, JSON_OUT_FLAGS);
    printf("%s:\n%s\n", label, s ? s : "(out of memory)");
    free(s);
}

static void print_times(const json_t *claims, int64_t now)
{
    static const char *const names[] = {"iat", "nbf", "exp", "auth_time"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char t[TIME_STR_LEN], d[48];
        int64_t s;
        if (!claim_time(claims, names[i], &s, t))
            continue;
        fmt_duration(s > now ? s - now : now - s, d);
        printf("  %-9s %s (%s%s%s)\n", names[i], t, s > now ? "in " : "", d, s > now ? "" : " ago");
    }
}

static void print_field(const char *label, const char *value, const char *differs)
{
    printf("  %-13s ", label);
    cli_put_clean(stdout, value ? value : "-");
    if (differs && value && strcmp(value, differs) != 0) {
        fputs(" (the token says ", stdout);
        cli_put_clean(stdout, differs);
        fputc(')', stdout);
    }
    fputc('\n', stdout);
}

/* Finds the token.request event that issued `jti` and prints it. Never
 * decides the verdict: any failure is one line saying why. */
static void print_audit_event(const struct token *t)
{
    const char *jti = cli_string_of(t->claims, "jti");
    struct client *c = NULL;
    struct client_response resp = {0};
    json_t *events = NULL;
    struct buf path;
    char *filter = NULL;

    if (!jti) {
        puts("audit event: not looked up (the token has no jti)");
        return;
    }
    int r = client_new(&c);
    if (r == ERR_UNAUTH) {
        puts("audit event: not looked up (no admin token)");
        return;
    }
    if (r < 0) {
        printf("audit event: not looked up (%s)\n",
               r == ERR_INVAL ? "the admin token cannot be sent in an HTTP header"
                              : err_message(r));
        return;
    }
    buf_init(&path, 0);
    /* The filter's string is JSON string syntax: a jti cannot break out of it. */
    json_t *js = json_string(jti);
    char *quoted = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
    json_decref(js);
    struct buf f;
    buf_init(&f, 0);
    r = quoted ? buf_printf(&f, "token.id eq %s", quoted) : ERR_NOMEM;
    free(quoted);
    filter = r == 0 ? buf_take(&f, NULL) : NULL;
    buf_done(&f);
    r = filter ? buf_puts(&path, "/api/v1/logs?limit=1&") : ERR_NOMEM;
    if (r == 0)
        r = put_param(c, &path, "filter", filter);
    if (r == 0)
        r = client_request(c, "GET", path.data, NULL, NULL, 0, &resp);
    if (r == ERR_IO) {
        printf("audit event: not looked up (cannot reach %s: ", client_addr(c));
        cli_put_clean(stdout, client_error(c));
        puts(")");
        goto out;
    }
    if (r < 0) {
        printf("audit event: not looked up (%s)\n", err_message(r));
        goto out;
    }
    if (resp.status == 401) {
        puts("audit event: not looked up (the server refused the admin token)");
        goto out;
    }
    if (resp.status < 200 || resp.status > 299) {
        printf("audit event: not looked up (the server answered HTTP %ld)\n", resp.status);
        goto out;
    }
    events = json_loadb(resp.body, resp.len, 0, NULL);
    const json_t *ev = json_array_get(events, 0);
    if (!json_is_object(ev)) {
        fputs("audit event: none for jti ", stdout);
        cli_put_clean(stdout, jti);
        puts(" (not issued by this server, or no longer in its log)");
        goto out;
    }
    const json_t *tok = json_object_get(ev, "token");
    puts("audit event:");
    printf("  %-13s %" JSON_INTEGER_FORMAT "\n", "seq",
           json_integer_value(json_object_get(ev, "seq")));
    print_field("time", cli_string_of(ev, "time"), NULL);
    print_field("outcome", cli_string_of(ev, "outcome"), NULL);
    print_field("token.key_id", cli_string_of(tok, "key_id"), cli_string_of(t->header, "kid"));
    print_field("token.alg", cli_string_of(tok, "alg"), cli_string_of(t->header, "alg"));
    print_field("client", cli_string_of(ev, "client"), NULL);
    print_field("system", cli_string_of(ev, "system"), NULL);
out:
    json_decref(events);
    free(filter);
    buf_done(&path);
    client_response_done(&resp);
    client_free(c);
}

/* Reads the JWK Set from a URL or a file into *ret (a JWK Set object; a single
 * JWK is wrapped into one). Prints what went wrong; RC_USAGE then. */
static int load_jwks(const char *source, json_t **ret)
{
    struct client_response resp = {0};
    json_error_t jerr;
    json_t *j = NULL;
    char *def = NULL;
    int rc = RC_USAGE;

    if (!source) {
        char *addr = server_addr();
        struct buf b;
        buf_init(&b, 0);
        if (addr && buf_printf(&b, "%s/oauth/jwks", addr) == 0)
            def = buf_take(&b, NULL);
        buf_done(&b);
        free(addr);
        if (!def) {
            oom();
            return RC_USAGE;
        }
        source = def;
    }
    if (strncasecmp(source, "http://", 7) == 0 || strncasecmp(source, "https://", 8) == 0) {
        char why[256];
        int r = client_fetch(source, JWKS_TIMEOUT_S, JWKS_MAX, &resp, why, sizeof why);
        if (r < 0) {
            fputs("mcpauth token inspect: cannot get the JWK Set from ", stderr);
            cli_put_clean(stderr, source);
            fputs(": ", stderr);
            cli_put_clean(stderr, r == ERR_IO       ? why
                                  : r == ERR_TOOBIG ? "larger than 256 KiB"
                                                    : err_message(r));
            fputc('\n', stderr);
            goto out;
        }
        if (resp.status != 200) {
            fputs("mcpauth token inspect: ", stderr);
            cli_put_clean(stderr, source);
            fprintf(stderr, " answered HTTP %ld\n", resp.status);
            goto out;
        }
        j = json_loadb(resp.body, resp.len, 0, &jerr);
    } else {
        FILE *f = fopen(source, "re");
        struct buf b;
        char chunk[8192];
        size_t n;
        int r = 0;
        if (!f) {
            fprintf(stderr, "mcpauth token inspect: %s: %s\n", source, strerror(errno));
            goto out;
        }
        buf_init(&b, JWKS_MAX);
        while (r == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
            r = buf_append(&b, chunk, n);
        if (r == 0 && ferror(f))
            r = ERR_IO;
        fclose(f);
        if (r < 0) {
            fprintf(stderr, "mcpauth token inspect: %s: %s\n", source,
                    r == ERR_TOOBIG ? "larger than 256 KiB"
                    : r == ERR_IO   ? strerror(errno)
                                    : err_message(r));
            buf_done(&b);
            goto out;
        }
        j = json_loadb(b.data ? b.data : "", b.len, 0, &jerr);
        buf_done(&b);
    }
    if (json_is_object(j) && json_object_get(j, "kty") && !json_object_get(j, "keys")) {
        json_t *set = json_pack("{s:[O]}", "keys", j);
        json_decref(j);
        j = set;
    }
    if (!json_is_object(j) || !json_is_array(json_object_get(j, "keys"))) {
        fputs("mcpauth token inspect: ", stderr);
        cli_put_clean(stderr, source);
        fputs(": not a JWK Set (expected {\"keys\": [...]})\n", stderr);
        goto out;
    }
    *ret = j;
    j = NULL;
    rc = RC_OK;
out:
    json_decref(j);
    client_response_done(&resp);
    free(def);
    return rc;
}

static bool jwks_has_kid(const json_t *jwks, const char *kid)
{
    size_t i;
    const json_t *k;
    json_array_foreach(json_object_get(jwks, "keys"), i, k)
    {
        const char *v = json_string_value(json_object_get(k, "kid"));
        if (v && strcmp(v, kid) == 0)
            return true;
    }
    return false;
}

/* "aud" as text: a string, the members of an array joined by ", ", or "(none)". */
static int put_audience(struct buf *b, const json_t *aud)
{
    if (json_is_string(aud))
        return buf_puts(b, json_string_value(aud));
    if (json_is_array(aud) && json_array_size(aud) > 0) {
        size_t i;
        const json_t *a;
        int r = 0;
        json_array_foreach(aud, i, a)
        {
            if (r == 0 && i)
                r = buf_puts(b, ", ");
            if (r == 0 && json_is_string(a)) {
                r = buf_puts(b, json_string_value(a));
            } else if (r == 0) {
                char *j = json_dumps(a, JSON_COMPACT_FLAGS);
                r = j ? buf_puts(b, j) : ERR_NOMEM;
                free(j);
            }
        }
        return r;
    }
    return buf_puts(b, "(none)");
}

static bool audience_has(const json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    const json_t *a;
    json_array_foreach(aud, i, a)
    {
        if (json_is_string(a) && strcmp(json_string_value(a), want) == 0)
            return true;
    }
    return false;
}

/* RFC 9068 and the ID-JAG draft; media types compare case-insensitively and
 * may carry the "application/" prefix (RFC 7515 §4.1.9). */
static bool typ_accepted(const char *typ)
{
    if (!typ)
        return false;
    if (strncasecmp(typ, "application/", 12) == 0)
        typ += 12;
    return strcasecmp(typ, "at+jwt") == 0 || strcasecmp(typ, "oauth-id-jag+jwt") == 0;
}

struct inspect_opts {
    const char *jwks, *expect_alg, *audience;
};

/* The checks a resource server makes, in the order of spec/cli.md; the first
 * that fails is the verdict. Writes the verdict line into `v`. Returns RC_OK
 * (accept), RC_REFUSED (reject), or RC_USAGE when the JWK Set cannot be had. */
static int judge(const struct token *t, const struct inspect_opts *o, int64_t now, struct buf *v)
{
    struct jws jws = {0};
    struct err_detail d = {{0}};
    struct jose_pubkey *key = NULL;
    json_t *jwks = NULL;
    const char *alg = cli_string_of(t->header, "alg");
    enum jose_alg a;
    int rc = RC_REFUSED;
    int r;

    if (o->expect_alg && (!alg || strcmp(alg, o->expect_alg) != 0)) {
        buf_printf(v, "REJECT: algorithm %s is not accepted (expected %s)", alg ? alg : "(none)",
                   o->expect_alg);
        return RC_REFUSED;
    }
    if (!alg || jose_alg_parse(alg, &a) < 0) {
        buf_printf(v, "REJECT: algorithm %s is not accepted", alg ? alg : "(none)");
        return RC_REFUSED;
    }
    r = jws_parse(t->compact, strlen(t->compact), &jws, &d);
    if (r < 0) {
        buf_printf(v, "REJECT: %s", d.msg[0] ? d.msg : err_message(r));
        return RC_REFUSED;
    }
    rc = load_jwks(o->jwks, &jwks);
    if (rc != RC_OK)
        goto out;
    rc = RC_REFUSED;
    if (jws.kid && !jwks_has_kid(jwks, jws.kid)) {
        buf_printf(v, "REJECT: kid %s is not in the JWKS", jws.kid);
        goto out;
    }
    r = jose_jwks_select(jwks, &jws, &key, &d);
    if (r < 0) {
        buf_printf(v, "REJECT: %s", d.msg[0] ? d.msg : err_message(r));
        goto out;
    }
    r = jws_verify(&jws, key);
    if (r == ERR_INVAL) {
        buf_printf(v, "REJECT: signature does not verify (the key cannot verify %s)", alg);
        goto out;
    }
    if (r < 0) {
        buf_puts(v, "REJECT: signature does not verify");
        goto out;
    }

    char when[TIME_STR_LEN];
    int64_t s;
    if (!claim_time(t->claims, "exp", &s, when)) {
        buf_puts(v, "REJECT: the token has no valid exp claim");
        goto out;
    }
    if (now >= s) {
        buf_printf(v, "REJECT: expired at %s", when);
        goto out;
    }
    if (claim_time(t->claims, "nbf", &s, when) && now < s) {
        buf_printf(v, "REJECT: not valid before %s", when);
        goto out;
    }
    const json_t *aud = json_object_get(t->claims, "aud");
    if (o->audience && !audience_has(aud, o->audience)) {
        buf_puts(v, "REJECT: audience is ");
        put_audience(v, aud);
        buf_printf(v, ", expected %s", o->audience);
        goto out;
    }
    if (!typ_accepted(jws.typ)) {
        buf_printf(v, "REJECT: typ is %s, expected at+jwt or oauth-id-jag+jwt",
                   jws.typ ? jws.typ : "(none)");
        goto out;
    }
    buf_printf(v, "ACCEPT: signature valid (%s, ", alg);
    if (jws.kid)
        buf_printf(v, "kid %s", jws.kid);
    else
        buf_puts(v, "no kid");
    buf_puts(v, "), not expired, audience ");
    put_audience(v, aud);
    rc = RC_OK;
out:
    jose_pubkey_free(key);
    json_decref(jwks);
    jws_done(&jws);
    return rc;
}

static int token_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"jwks", required_argument, NULL, OPT_JWKS},
        {"expect-alg", required_argument, NULL, OPT_EXPECT_ALG},
        {"audience", required_argument, NULL, OPT_AUDIENCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct inspect_opts o = {0};
    struct token t = {0};
    struct buf verdict;
    int opt;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_JWKS:
            o.jwks = optarg;
            break;
        case OPT_EXPECT_ALG:
            o.expect_alg = optarg;
            break;
        case OPT_AUDIENCE:
            o.audience = optarg;
            break;
        case 'h':
            return cli_help(usage_token);
        default:
            return cli_bad_option(usage_token, "token inspect", opt, argv);
        }
    }
    if (argc - optind < 1)
        return cli_usage_error(usage_token, "token inspect", "TOKEN is required");
    if (argc - optind > 1)
        return cli_usage_error(usage_token, "token inspect", "unexpected argument '%s'",
                               argv[optind + 1]);
    if (o.jwks && !*o.jwks)
        return cli_usage_error(usage_token, "token inspect", "--jwks: the value is empty");
    if (o.expect_alg && !*o.expect_alg)
        return cli_usage_error(usage_token, "token inspect", "--expect-alg: the value is empty");

    int rc = token_decode(argv[optind], &t);
    if (rc != RC_OK) {
        token_done(&t);
        return rc;
    }
    int64_t now = time_now_us() / 1000000;
    print_json("header", t.header);
    print_json("claims", t.claims);
    print_times(t.claims, now);
    print_audit_event(&t);
    fflush(stdout);

    buf_init(&verdict, 0);
    rc = judge(&t, &o, now, &verdict);
    if (verdict.len) {
        cli_sanitize(verdict.data);
        puts(verdict.data);
    } else if (rc != RC_USAGE) {
        oom();
        rc = RC_USAGE;
    }
    buf_done(&verdict);
    token_done(&t);
    return cli_finish(rc);
}

int cli_token(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(usage_token, "token", "a command is required: inspect");
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
        return cli_help(usage_token);
    if (strcmp(argv[1], "inspect") == 0)
        return token_inspect(argc - 1, argv + 1);
    return cli_usage_error(usage_token, "token", "unknown command '%s'", argv[1]);
}
