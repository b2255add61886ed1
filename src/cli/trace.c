/* cli/trace.c — `mcpauth trace`: follows GET /api/v1/trace (Server-Sent
 * Events) and prints one line per entry, colored by severity on a terminal,
 * or the entries' JSON, one per line, with --json. Lost entries (the server
 * drops them for a reader that falls behind) are reported on stderr. Entries
 * are live only: what happened before the command started is in `mcpauth logs`. */
#include "cli/cli.h"
#include "cli/cli_priv.h"
#include "core/buf.h"
#include "core/err.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_trace[] =
    "Usage: mcpauth trace [--severity info|warning|error] [--client-ip IP] [--client C]\n"
    "                     [--system S] [--json]\n"
    "\n"
    "Prints every inbound authorization request (token, authorize, register) the\n"
    "moment mcpauth decides it: client IP, the client workload, the server workload\n"
    "and access policy it matched, a severity and what happened. Live only: for\n"
    "history use `mcpauth logs`. Stops with Ctrl-C.\n"
    "\n"
    "Options:\n"
    "  --severity S    minimum severity shown (default info)\n"
    "  --client-ip IP  only requests from this address\n"
    "  --client C      only this client\n"
    "  --system S      only this system (server workload)\n"
    "  --json          one JSON entry per line (the default when stdout is not a terminal\n"
    "                  is still the text line; use --json for machines)\n"
    "  -h, --help      show this help\n" ENV_HELP;

struct tstate {
    struct buf line;  /* the SSE line being assembled */
    char event[32];   /* the current frame's event name */
    struct buf data;  /* the current frame's data */
    bool json, color;
    unsigned long long shown, dropped;
};

static const char *field(const json_t *o, const char *k, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : dflt;
}

static void print_entry(struct tstate *t, const char *data, size_t len)
{
    if (t->json) {
        fwrite(data, 1, len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        t->shown++;
        return;
    }
    json_t *e = json_loadb(data, len, 0, NULL);
    if (!e)
        return;
    const char *sev = field(e, "severity", "info");
    const char *color = !t->color                     ? ""
                        : strcmp(sev, "error") == 0   ? "\033[31m"
                        : strcmp(sev, "warning") == 0 ? "\033[33m"
                                                      : "\033[32m";
    const json_t *ap = json_object_get(e, "access_policy");
    char time[32];
    snprintf(time, sizeof(time), "%.23s", field(e, "time", "-")); /* to the millisecond */
    char line[2048];
    snprintf(line, sizeof(line), "%s %-7s %-9s %-15s %s -> %s  policy=%s%s  %s", time, sev,
             field(e, "endpoint", "-"), field(e, "client_ip", "-"),
             field(e, "client_workload", "(no client workload)"),
             field(e, "server_workload", "(no server workload)"),
             json_is_object(ap) ? field(ap, "id", "-") : "none",
             json_is_object(ap) && !json_is_true(json_object_get(ap, "active")) ? " (inactive)"
                                                                                 : "",
             field(e, "message", ""));
    cli_sanitize(line);
    printf("%s%s%s\n", color, line, t->color ? "\033[0m" : "");
    fflush(stdout);
    json_decref(e);
    t->shown++;
}

/* One complete SSE line (without its newline). */
static void on_line(struct tstate *t, const char *l, size_t n)
{
    if (n == 0) { /* end of a frame */
        if (strcmp(t->event, "dropped") == 0) {
            json_t *d = json_loadb(t->data.data ? t->data.data : "", t->data.len, 0, NULL);
            unsigned long long c = (unsigned long long)json_integer_value(json_object_get(d, "count"));
            json_decref(d);
            t->dropped += c;
            fprintf(stderr, "mcpauth trace: %llu entries dropped (this reader fell behind)\n",
                    c);
        } else if (t->data.len) {
            print_entry(t, t->data.data, t->data.len);
        }
        t->event[0] = '\0';
        buf_reset(&t->data);
        return;
    }
    if (l[0] == ':')
        return; /* comment: keep-alive */
    if (n >= 6 && strncmp(l, "event:", 6) == 0) {
        const char *v = l + 6 + (n > 6 && l[6] == ' ');
        snprintf(t->event, sizeof(t->event), "%.*s", (int)(n - (size_t)(v - l)), v);
    } else if (n >= 5 && strncmp(l, "data:", 5) == 0) {
        const char *v = l + 5 + (n > 5 && l[5] == ' ');
        buf_append(&t->data, v, n - (size_t)(v - l));
    }
}

static int on_chunk(const char *p, size_t len, void *arg)
{
    struct tstate *t = arg;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n') {
            size_t n = t->line.len;
            if (n && t->line.data[n - 1] == '\r')
                n--;
            on_line(t, t->line.data ? t->line.data : "", n);
            buf_reset(&t->line);
        } else if (buf_append(&t->line, &p[i], 1) < 0) {
            return ERR_TOOBIG; /* a line longer than any entry: not our server */
        }
    }
    return 0;
}

int cli_trace(int argc, char **argv)
{
    enum { O_SEV = 256, O_IP, O_CLIENT, O_SYSTEM, O_JSON };
    static const struct option opts[] = {
        {"severity", required_argument, NULL, O_SEV}, {"client-ip", required_argument, NULL, O_IP},
        {"client", required_argument, NULL, O_CLIENT}, {"system", required_argument, NULL, O_SYSTEM},
        {"json", no_argument, NULL, O_JSON},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *q[4] = {NULL, NULL, NULL, NULL};
    static const char *const names[4] = {"severity", "client_ip", "client", "system"};
    struct tstate t = {.color = isatty(STDOUT_FILENO) == 1 && !getenv("NO_COLOR")};
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            return cli_help(usage_trace);
        case O_SEV:
            if (strcmp(optarg, "info") && strcmp(optarg, "warning") && strcmp(optarg, "error"))
                return cli_usage_error(usage_trace, "trace",
                                       "--severity is info, warning or error");
            q[0] = optarg;
            break;
        case O_IP:
        case O_CLIENT:
        case O_SYSTEM:
            q[opt - O_SEV] = optarg;
            break;
        case O_JSON:
            t.json = true;
            break;
        default:
            return cli_bad_option(usage_trace, "trace", opt, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error(usage_trace, "trace", "unexpected argument '%s'", argv[optind]);
    struct client *c = NULL;
    int rc = cli_open_client(&c);
    if (rc != RC_OK)
        return rc;
    struct buf path;
    buf_init(&path, 4096);
    buf_puts(&path, "/api/v1/trace");
    for (int i = 0, first = 1; i < 4; i++) {
        if (!q[i])
            continue;
        char *esc = client_escape(c, q[i]);
        buf_printf(&path, "%c%s=%s", first ? '?' : '&', names[i], esc ? esc : "");
        free(esc);
        first = 0;
    }
    buf_init(&t.line, 1024 * 1024);
    buf_init(&t.data, 1024 * 1024);
    if (!t.json)
        fprintf(stderr, "mcpauth trace: following %s (live only; Ctrl-C stops)\n",
                client_addr(c));
    struct client_response resp = {0};
    int r = client_stream(c, path.data, on_chunk, &t, &resp);
    if (r == ERR_IO) {
        fprintf(stderr, "mcpauth trace: the stream from %s ended: ", client_addr(c));
        cli_put_clean(stderr, client_error(c));
        fputc('\n', stderr);
        rc = RC_USAGE;
    } else if (r < 0) {
        fprintf(stderr, "mcpauth trace: %s\n", err_message(r));
        rc = RC_REFUSED;
    } else if (resp.status == 401) {
        fputs("mcpauth: the server refused the admin token (HTTP 401)\n", stderr);
        rc = RC_REFUSED;
    } else if (resp.status < 200 || resp.status > 299) {
        cli_report_refusal(&resp);
        rc = RC_REFUSED;
    } else {
        fprintf(stderr, "mcpauth trace: the server closed the stream (%llu shown, %llu dropped)\n",
                t.shown, t.dropped);
    }
    client_response_done(&resp);
    buf_done(&t.line);
    buf_done(&t.data);
    buf_done(&path);
    client_free(c);
    return cli_finish(rc);
}
