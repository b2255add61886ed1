/* cli/exporters.c — `mcpauth exporters`: add, list, status, test, pause, resume
 * and remove the system log's exporters through /api/v1/exporters. Secrets
 * (tokens, HMAC secrets, passwords) are read from files or stdin, never from
 * the command line, where `ps` would show them. */
#include "cli/cli.h"
#include "cli/cli_priv.h"
#include "core/buf.h"
#include "jose/crypto.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_exporters[] =
    "Usage: mcpauth exporters add --type TYPE --url URL [--name ID] [options]\n"
    "       mcpauth exporters list [-o table|json]\n"
    "       mcpauth exporters status ID [-o text|json]\n"
    "       mcpauth exporters test ID | pause ID | resume ID | remove ID\n"
    "\n"
    "Streams the system log to a SIEM or log store. Every exporter reads the log\n"
    "from its own cursor and delivers each event at least once, in order; the\n"
    "receiver drops duplicates by the event id. See docs/exporters.md.\n"
    "\n"
    "add options:\n"
    "  --type TYPE            syslog | http | kafka | nats | file\n"
    "  --url URL              syslog: udp:// tcp:// tls:// relp://HOST:PORT;\n"
    "                         http: http(s)://...; kafka://BROKERS/TOPIC;\n"
    "                         nats://HOST:PORT/SUBJECT; file:///PATH\n"
    "  --name ID              the exporter's id (default: TYPE)\n"
    "  --profile P            http: webhook | splunk_hec | loki | elastic\n"
    "  --format F             json (default) | ocsf | cef | rfc5424\n"
    "  --filter EXPR          SCIM filter of the events to send (as `mcpauth logs`)\n"
    "  --start now|beginning  where a new exporter starts (default now)\n"
    "  --paused               create it paused\n"
    "  --max-events N         events per batch (default 500)\n"
    "  --max-wait D           longest wait to fill a batch (default 1s; 250ms works)\n"
    "  --timeout D            bound on every network operation (default 10s)\n"
    "  --token-file F         bearer / Splunk HEC token, read from F (- = stdin)\n"
    "  --hmac-secret-file F   webhook signing secret, read from F\n"
    "  --username U           user for HTTP basic, Kafka SASL/PLAIN or NATS\n"
    "  --password-file F      its password, read from F\n"
    "  --ca-file F, --cert-file F, --key-file F, --server-name N, --no-verify   TLS\n"
    "  --index NAME           elastic / splunk_hec index\n"
    "  --label K=V            loki stream label (repeatable)\n"
    "  -h, --help             show this help\n" ENV_HELP;

enum {
    O_TYPE = 256,
    O_URL,
    O_NAME,
    O_PROFILE,
    O_FORMAT,
    O_FILTER,
    O_START,
    O_PAUSED,
    O_MAX_EVENTS,
    O_MAX_WAIT,
    O_TIMEOUT,
    O_TOKEN_FILE,
    O_HMAC_FILE,
    O_USERNAME,
    O_PASSWORD_FILE,
    O_CA,
    O_CERT,
    O_KEY,
    O_SNI,
    O_NO_VERIFY,
    O_INDEX,
    O_LABEL,
};

/* The first line of FILE ("-": stdin), without its newline; NULL with a message. */
static char *read_secret(const char *file)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "re");
    if (!f) {
        fprintf(stderr, "mcpauth: %s: %s\n", file, strerror(errno));
        return NULL;
    }
    char line[4200];
    char *s = fgets(line, sizeof(line), f) ? line : NULL;
    if (f != stdin)
        fclose(f);
    if (!s || !*s) {
        fprintf(stderr, "mcpauth: %s: empty\n", file);
        return NULL;
    }
    line[strcspn(line, "\r\n")] = '\0';
    char *out = strdup(line);
    crypto_wipe(line, sizeof(line));
    return out;
}

static json_t *sub(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!v) {
        v = json_object();
        json_object_set_new(o, k, v);
    }
    return v;
}

static int set_secret(json_t *body, const char *key, const char *file)
{
    char *s = read_secret(file);
    if (!s)
        return -1;
    json_object_set_new(sub(body, "auth"), key, json_string(s));
    crypto_wipe(s, strlen(s));
    free(s);
    return 0;
}

static int send_body(const char *method, const char *path, json_t *body, json_t **ret)
{
    struct client *c = NULL;
    int rc = cli_open_client(&c);
    if (rc != RC_OK)
        return rc;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    rc = cli_exchange(c, method, path, text ? "application/json" : NULL, text,
                      text ? strlen(text) : 0, ret);
    if (text) {
        crypto_wipe(text, strlen(text));
        free(text);
    }
    client_free(c);
    return rc;
}

static int add(int argc, char **argv)
{
    static const struct option opts[] = {
        {"type", required_argument, NULL, O_TYPE},
        {"url", required_argument, NULL, O_URL},
        {"name", required_argument, NULL, O_NAME},
        {"profile", required_argument, NULL, O_PROFILE},
        {"format", required_argument, NULL, O_FORMAT},
        {"filter", required_argument, NULL, O_FILTER},
        {"start", required_argument, NULL, O_START},
        {"paused", no_argument, NULL, O_PAUSED},
        {"max-events", required_argument, NULL, O_MAX_EVENTS},
        {"max-wait", required_argument, NULL, O_MAX_WAIT},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"token-file", required_argument, NULL, O_TOKEN_FILE},
        {"hmac-secret-file", required_argument, NULL, O_HMAC_FILE},
        {"username", required_argument, NULL, O_USERNAME},
        {"password-file", required_argument, NULL, O_PASSWORD_FILE},
        {"ca-file", required_argument, NULL, O_CA},
        {"cert-file", required_argument, NULL, O_CERT},
        {"key-file", required_argument, NULL, O_KEY},
        {"server-name", required_argument, NULL, O_SNI},
        {"no-verify", no_argument, NULL, O_NO_VERIFY},
        {"index", required_argument, NULL, O_INDEX},
        {"label", required_argument, NULL, O_LABEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    json_t *body = json_object();
    int opt, rc = RC_USAGE;
    const char *type = NULL, *name = NULL;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            json_decref(body);
            return cli_help(usage_exporters);
        case O_TYPE:
            type = optarg;
            json_object_set_new(body, "type", json_string(optarg));
            break;
        case O_URL:
            json_object_set_new(body, "url", json_string(optarg));
            break;
        case O_NAME:
            name = optarg;
            break;
        case O_PROFILE:
            json_object_set_new(body, "profile", json_string(optarg));
            break;
        case O_FORMAT:
            json_object_set_new(body, "format", json_string(optarg));
            break;
        case O_FILTER:
            json_object_set_new(body, "filter", json_string(optarg));
            break;
        case O_START:
            json_object_set_new(body, "start", json_string(optarg));
            break;
        case O_PAUSED:
            json_object_set_new(body, "paused", json_true());
            break;
        case O_MAX_EVENTS: {
            char *end = NULL;
            long n = strtol(optarg, &end, 10);
            if (!*optarg || *end) {
                rc = cli_usage_error(usage_exporters, "exporters add",
                                     "--max-events wants a number");
                goto out;
            }
            json_object_set_new(sub(body, "batch"), "max_events", json_integer(n));
            break;
        }
        case O_MAX_WAIT:
            json_object_set_new(sub(body, "batch"), "max_wait", json_string(optarg));
            break;
        case O_TIMEOUT:
            json_object_set_new(body, "timeout", json_string(optarg));
            break;
        case O_TOKEN_FILE:
        case O_HMAC_FILE:
        case O_PASSWORD_FILE:
            if (set_secret(body,
                           opt == O_TOKEN_FILE  ? "token"
                           : opt == O_HMAC_FILE ? "hmac_secret"
                                                : "password",
                           optarg) < 0) {
                rc = RC_USAGE;
                goto out;
            }
            break;
        case O_USERNAME:
            json_object_set_new(sub(body, "auth"), "username", json_string(optarg));
            break;
        case O_CA:
            json_object_set_new(sub(body, "tls"), "ca_file", json_string(optarg));
            break;
        case O_CERT:
            json_object_set_new(sub(body, "tls"), "cert_file", json_string(optarg));
            break;
        case O_KEY:
            json_object_set_new(sub(body, "tls"), "key_file", json_string(optarg));
            break;
        case O_SNI:
            json_object_set_new(sub(body, "tls"), "server_name", json_string(optarg));
            break;
        case O_NO_VERIFY:
            json_object_set_new(sub(body, "tls"), "verify", json_false());
            break;
        case O_INDEX:
            json_object_set_new(body, "index", json_string(optarg));
            break;
        case O_LABEL: {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                rc = cli_usage_error(usage_exporters, "exporters add", "--label wants K=V");
                goto out;
            }
            char k[80];
            snprintf(k, sizeof(k), "%.*s", (int)(eq - optarg), optarg);
            json_object_set_new(sub(body, "labels"), k, json_string(eq + 1));
            break;
        }
        default:
            rc = cli_bad_option(usage_exporters, "exporters add", opt, argv);
            goto out;
        }
    }
    if (optind < argc) {
        rc = cli_usage_error(usage_exporters, "exporters add", "unexpected argument '%s'",
                             argv[optind]);
        goto out;
    }
    if (!type || !json_object_get(body, "url")) {
        rc = cli_usage_error(usage_exporters, "exporters add", "--type and --url are required");
        goto out;
    }
    json_object_set_new(body, "id", json_string(name ? name : type));
    json_t *out = NULL;
    rc = send_body("POST", "/api/v1/exporters", body, &out);
    if (rc == RC_OK) {
        printf("exporter %s added (%s)\n", cli_string_of(out, "id"), cli_string_of(out, "url"));
        json_decref(out);
    }
out:
    json_decref(body);
    return cli_finish(rc);
}

static void print_status(const json_t *s)
{
    static const char *const keys[] = {
        "id",         "type",     "state",    "cursor",           "last_seq",
        "lag_events", "lag_seconds", "delivered", "retries",       "failures",
        "dead_letters", "last_error", "last_error_at", "last_delivery_at",
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const json_t *v = json_object_get(s, keys[i]);
        printf("%-17s ", keys[i]);
        if (json_is_string(v))
            cli_put_clean(stdout, json_string_value(v));
        else if (json_is_integer(v))
            printf("%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
            printf("%.3f", json_real_value(v));
        else
            fputs("-", stdout);
        putchar('\n');
    }
    size_t i;
    const json_t *d;
    json_array_foreach(json_object_get(s, "recent_dead_letters"), i, d)
    {
        printf("dead letter       seq %lld  %s  ", (long long)json_integer_value(json_object_get(d, "seq")),
               json_string_value(json_object_get(d, "event_id")));
        cli_put_clean(stdout, json_string_value(json_object_get(d, "error")));
        putchar('\n');
    }
}

int cli_exporters(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
        return argc < 2 ? cli_usage_error(usage_exporters, "exporters", "a subcommand is required")
                        : cli_help(usage_exporters);
    const char *sub_cmd = argv[1];
    if (strcmp(sub_cmd, "add") == 0)
        return add(argc - 1, argv + 1);
    if (strcmp(sub_cmd, "list") == 0) {
        char *gargv[8] = {"get", "exporters"};
        int n = 2;
        for (int i = 2; i < argc && n < 7; i++)
            gargv[n++] = argv[i];
        return cli_get(n, gargv);
    }
    static const char *const with_id[] = {"status", "test", "pause", "resume", "remove", NULL};
    int known = 0;
    for (const char *const *w = with_id; *w; w++)
        known |= strcmp(*w, sub_cmd) == 0;
    if (!known)
        return cli_usage_error(usage_exporters, "exporters", "unknown subcommand '%s'", sub_cmd);
    int json_out = 0;
    const char *id = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            json_out = strcmp(argv[++i], "json") == 0;
        } else if (!id && argv[i][0] != '-') {
            id = argv[i];
        } else {
            return cli_usage_error(usage_exporters, "exporters", "unexpected argument '%s'",
                                   argv[i]);
        }
    }
    if (!id || !*id || strchr(id, '/') || strchr(id, '?'))
        return cli_usage_error(usage_exporters, "exporters", "an exporter ID is required");
    char path[300];
    json_t *out = NULL, *body = NULL;
    int rc;
    if (strcmp(sub_cmd, "status") == 0) {
        snprintf(path, sizeof(path), "/api/v1/exporters/%s/status", id);
        rc = send_body("GET", path, NULL, &out);
        if (rc == RC_OK) {
            if (json_out) {
                char *t = json_dumps(out, JSON_OUT_FLAGS);
                puts(t ? t : "{}");
                free(t);
            } else {
                print_status(out);
            }
        }
    } else if (strcmp(sub_cmd, "test") == 0) {
        snprintf(path, sizeof(path), "/api/v1/exporters/%s/test", id);
        rc = send_body("POST", path, NULL, &out);
        if (rc == RC_OK) {
            int ok = json_is_true(json_object_get(out, "delivered"));
            printf("%s: test event %s %s", id, cli_string_of(out, "event_id"),
                   ok ? "delivered\n" : "NOT delivered: ");
            if (!ok) {
                cli_put_clean(stdout, cli_string_of(out, "error"));
                putchar('\n');
                rc = RC_REFUSED;
            }
        }
    } else if (strcmp(sub_cmd, "remove") == 0) {
        snprintf(path, sizeof(path), "/api/v1/exporters/%s", id);
        rc = send_body("DELETE", path, NULL, NULL);
        if (rc == RC_OK)
            printf("exporter %s removed\n", id);
    } else { /* pause, resume */
        int pause = strcmp(sub_cmd, "pause") == 0;
        snprintf(path, sizeof(path), "/api/v1/exporters/%s", id);
        body = json_pack("{sb}", "paused", pause);
        rc = send_body("PATCH", path, body, NULL);
        if (rc == RC_OK)
            printf("exporter %s %s\n", id, pause ? "paused" : "resumed");
    }
    json_decref(out);
    json_decref(body);
    return cli_finish(rc);
}
