/* cli/commands.c — the client subcommands apply, get, delete and keys: parse
 * the command line, make one request through cli/client.h, and turn the answer
 * into text. Exit status follows cli/cli.h: 0 done, 1 the server refused (its
 * message on stderr), 2 bad usage or no server to talk to. Whatever comes from
 * the server is untrusted text: control characters are replaced before it
 * reaches the terminal, and the admin token is never printed. The helpers the
 * other subcommand files share are declared in cli/cli_priv.h. */
#include "cli/cli.h"
#include "cli/cli_priv.h"
#include "cli/client.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/timeutil.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define APPLY_MAX_FILE (1u * 1024 * 1024) /* the server caps admin bodies at 1 MiB */
#define MAX_COLS       8                  /* the widest kind's table */

/* ---- kinds and their table columns ---- */

enum col_fmt {
    COL_VALUE,          /* strings as they are, lists joined by ",", the rest as JSON */
    COL_TIME,           /* Unix seconds as RFC 3339 */
    COL_ENABLED_SCOPES, /* names of the scopes whose "enabled" is not false */
    COL_GRANT_TYPES,    /* grant type URNs shortened to their last part */
};

struct column {
    const char *header;
    const char *field;
    enum col_fmt fmt;
};

enum { KIND_NO_ID = 1, KIND_NO_DELETE = 2 };

struct kind {
    const char *plural;
    const char *singular;
    const char *path;
    const struct column *cols;
    size_t ncols;
    unsigned flags;
    const char *delete_hint;
};

static const struct column system_cols[] = {
    {"ID", "id", COL_VALUE},
    {"NAME", "name", COL_VALUE},
    {"AUDIENCE", "audience", COL_VALUE},
    {"PAUSED", "paused", COL_VALUE},
    {"ALG", "signing_alg", COL_VALUE},
    {"TOKEN TYPE", "token_type", COL_VALUE},
    {"SCOPES", "scopes", COL_ENABLED_SCOPES},
};
static const struct column client_cols[] = {
    {"ID", "id", COL_VALUE},
    {"NAME", "name", COL_VALUE},
    {"AUTH", "auth", COL_VALUE},
    {"GRANT TYPES", "grant_types", COL_GRANT_TYPES},
};
static const struct column policy_cols[] = {
    {"ID", "id", COL_VALUE},
    {"CLIENT", "client", COL_VALUE},
    {"SYSTEM", "system", COL_VALUE},
    {"ACTIVE", "active", COL_VALUE},
};
static const struct column grant_cols[] = {
    {"ID", "id", COL_VALUE},
    {"SUBJECT", "subject", COL_VALUE},
    {"SYSTEM", "system", COL_VALUE},
    {"SCOPES", "scopes", COL_VALUE},
};
static const struct column issuer_cols[] = {
    {"ID", "id", COL_VALUE},
    {"ISSUER", "issuer", COL_VALUE},
    {"AUDIENCE", "audience", COL_VALUE},
    {"ALGORITHMS", "algorithms", COL_VALUE},
};
static const struct column key_cols[] = {
    {"KID", "kid", COL_VALUE},
    {"ALG", "alg", COL_VALUE},
    {"STATUS", "status", COL_VALUE},
    {"CREATED", "created", COL_TIME},
};
static const struct column exporter_cols[] = {
    {"ID", "id", COL_VALUE},         {"TYPE", "type", COL_VALUE},     {"URL", "url", COL_VALUE},
    {"FORMAT", "format", COL_VALUE}, {"PAUSED", "paused", COL_VALUE},
};

#define COLS(a) a, sizeof(a) / sizeof(a[0])

static const struct kind kinds[] = {
    {"systems", "system", "/api/v1/systems", COLS(system_cols), 0, NULL},
    {"clients", "client", "/api/v1/clients", COLS(client_cols), 0, NULL},
    {"access-policies", "access-policy", "/api/v1/access-policies", COLS(policy_cols), 0, NULL},
    {"grants", "grant", "/api/v1/grants", COLS(grant_cols), 0, NULL},
    {"trusted-issuers", "trusted-issuer", "/api/v1/trusted-issuers", COLS(issuer_cols), 0, NULL},
    {"keys", "key", "/api/v1/keys", COLS(key_cols), KIND_NO_DELETE,
     "signing keys are not deleted: retire one with `mcpauth keys retire KID`"},
    {"exporters", "exporter", "/api/v1/exporters", COLS(exporter_cols), 0, NULL},
    {"settings", "setting", "/api/v1/settings", NULL, 0, KIND_NO_ID | KIND_NO_DELETE,
     "settings cannot be deleted"},
};

#define KIND_LIST "systems clients access-policies grants trusted-issuers keys exporters settings"

/* Plural or singular, and the policy file's spelling with "_" as well. */
static const struct kind *kind_find(const char *name)
{
    char norm[64];
    size_t n = strlen(name);
    if (n >= sizeof norm)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        norm[i] = name[i] == '_' ? '-' : name[i];
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(norm, kinds[i].plural) == 0 || strcmp(norm, kinds[i].singular) == 0)
            return &kinds[i];
    return NULL;
}

/* ---- usage ---- */

static const char usage_apply[] =
    "Usage: mcpauth apply -f FILE [--prune]\n"
    "\n"
    "Creates or updates every object the policy file names (spec/policy.md).\n"
    "FILE is YAML, or JSON when its name ends in .json; \"-\" reads standard input.\n"
    "\n"
    "Options:\n"
    "  -f, --filename FILE  the policy file (at most 1 MiB, the server's cap on admin bodies)\n"
    "      --prune          also delete the objects the file does not name\n"
    "  -h, --help           show this help\n" ENV_HELP;

static const char usage_get[] = "Usage: mcpauth get KIND [ID] [-o table|json]\n"
                                "\n"
                                "Lists the objects of one kind, or shows the one named ID.\n"
                                "KIND: " KIND_LIST "\n"
                                "(singular forms work too; settings take no ID)\n"
                                "\n"
                                "Options:\n"
                                "  -o, --output FORMAT  table (default) or json\n"
                                "  -h, --help           show this help\n" ENV_HELP;

static const char usage_delete[] =
    "Usage: mcpauth delete KIND ID\n"
    "\n"
    "Deletes one object.\n"
    "KIND: systems clients access-policies grants trusted-issuers exporters\n"
    "(singular forms work too)\n"
    "\n"
    "Options:\n"
    "  -h, --help  show this help\n" ENV_HELP;

static const char usage_keys[] =
    "Usage: mcpauth keys create --alg ALG\n"
    "       mcpauth keys activate KID\n"
    "       mcpauth keys retire KID\n"
    "       mcpauth keys list [-o table|json]\n"
    "\n"
    "Manages the signing keys. Only an active key signs; active and published\n"
    "keys are in the JWKS; a retired key leaves it.\n"
    "`keys list` is `get keys`.\n"
    "\n"
    "Options:\n"
    "  --alg ALG   algorithm of the new key (for example ES256, RS256, EdDSA)\n"
    "  -h, --help  show this help\n" ENV_HELP;

int cli_usage_error(const char *usage, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    const char *end = strstr(usage, "\n\n");
    int synopsis = end ? (int)(end - usage) : (int)strlen(usage);
    int top = (int)strcspn(cmd, " ");

    fprintf(stderr, "mcpauth %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%.*s\nRun 'mcpauth %.*s --help' for more.\n", synopsis, usage, top, cmd);
    return RC_USAGE;
}

int cli_help(const char *usage)
{
    fputs(usage, stdout);
    return fflush(stdout) == 0 ? RC_OK : RC_REFUSED;
}

int cli_bad_option(const char *usage, const char *cmd, int c, char **argv)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    if (c == ':')
        return cli_usage_error(usage, cmd, "option '%s' needs a value", arg);
    if (optopt)
        return cli_usage_error(usage, cmd, "unknown option '-%c'", optopt);
    return cli_usage_error(usage, cmd, "unknown option '%s'", arg);
}

/* ---- text from the server ---- */

void cli_sanitize(char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

void cli_put_clean(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

size_t cli_text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

static int put_json(struct buf *b, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT_FLAGS);
    if (!s)
        return ERR_NOMEM;
    int r = buf_puts(b, s);
    free(s);
    return r;
}

/* A scalar as text; arrays and objects as compact JSON. Appends nothing for
 * null and "". */
static int put_scalar(struct buf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return buf_append(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return buf_printf(b, "%g", json_real_value(v));
    case JSON_TRUE:
        return buf_puts(b, "true");
    case JSON_FALSE:
        return buf_puts(b, "false");
    case JSON_NULL:
        return 0;
    default:
        return put_json(b, v);
    }
}

/* Shortens "urn:ietf:params:oauth:grant-type:token-exchange" to "token-exchange". */
static const char *grant_type_short(const char *s)
{
    static const char prefix[] = "urn:ietf:params:oauth:grant-type:";
    if (strncmp(s, prefix, sizeof prefix - 1) == 0 && s[sizeof prefix - 1])
        return s + sizeof prefix - 1;
    return s;
}

static int put_list_item(struct buf *b, const char *s)
{
    int r = 0;
    if (b->len)
        r = buf_puts(b, ",");
    return r < 0 ? r : buf_puts(b, s);
}

static int put_cell(struct buf *b, const json_t *v, enum col_fmt fmt)
{
    size_t i;
    json_t *e;
    int r = 0;

    if (!v || json_is_null(v))
        return 0;
    /* Within years 1970..9999; anything else is shown as it came. */
    if (fmt == COL_TIME && json_is_number(v) && json_number_value(v) >= 0 &&
        json_number_value(v) < 253402300800.0) {
        char t[TIME_STR_LEN];
        time_format_s((int64_t)json_number_value(v), t);
        return buf_puts(b, t);
    }
    if (!json_is_array(v))
        return put_scalar(b, v);

    json_array_foreach(v, i, e)
    {
        if (fmt == COL_ENABLED_SCOPES && json_is_object(e)) {
            const json_t *name = json_object_get(e, "name");
            if (json_is_false(json_object_get(e, "enabled")) || !json_is_string(name))
                continue;
            r = put_list_item(b, json_string_value(name));
        } else if (fmt == COL_GRANT_TYPES && json_is_string(e)) {
            r = put_list_item(b, grant_type_short(json_string_value(e)));
        } else if (json_is_string(e)) {
            r = put_list_item(b, json_string_value(e));
        } else {
            if (b->len)
                r = buf_puts(b, ",");
            if (r == 0)
                r = put_scalar(b, e);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* An owned, sanitized cell: "-" for what is missing or empty. NULL when out of memory. */
static char *cell_new(const json_t *v, enum col_fmt fmt)
{
    struct buf b;
    buf_init(&b, 0);
    if (put_cell(&b, v, fmt) < 0 || (b.len == 0 && buf_puts(&b, "-") < 0)) {
        buf_done(&b);
        return NULL;
    }
    char *s = buf_take(&b, NULL);
    cli_sanitize(s);
    return s;
}

/* ---- tables ---- */

/* Row 0 holds the headers. Cells are owned. */
struct table {
    size_t ncols;
    size_t nrows;
    char **cells;
};

static int table_init(struct table *t, size_t ncols, size_t nrows)
{
    t->ncols = ncols;
    t->nrows = nrows;
    t->cells = calloc(ncols * nrows, sizeof *t->cells);
    return t->cells ? 0 : ERR_NOMEM;
}

static void table_done(struct table *t)
{
    if (t->cells)
        for (size_t i = 0; i < t->ncols * t->nrows; i++)
            free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
}

static int table_set(struct table *t, size_t row, size_t col, const char *s)
{
    char *d = strdup(s);
    if (!d)
        return ERR_NOMEM;
    t->cells[row * t->ncols + col] = d;
    return 0;
}

/* Columns as wide as their widest cell, two spaces apart, no trailing blanks. */
static void table_print(const struct table *t, FILE *f)
{
    size_t width[MAX_COLS] = {0};

    assert(t->ncols <= MAX_COLS);
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = cli_text_width(t->cells[r * t->ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            fputs(s, f);
            if (c + 1 == t->ncols) {
                fputc('\n', f);
                continue;
            }
            for (size_t w = cli_text_width(s); w < width[c] + 2; w++)
                fputc(' ', f);
        }
}

/* `get KIND`: one row per object, the kind's columns. */
static int print_objects(const struct kind *k, const json_t *answer)
{
    struct table t = {0};
    size_t n;
    int r;

    if (json_is_array(answer))
        n = json_array_size(answer);
    else if (json_is_object(answer))
        n = 1;
    else {
        fprintf(stderr, "mcpauth: unexpected answer from the server: not a list of %s\n",
                k->plural);
        return RC_REFUSED;
    }
    if (n == 0) {
        fprintf(stderr, "No %s found.\n", k->plural);
        return RC_OK;
    }
    r = table_init(&t, k->ncols, n + 1);
    for (size_t c = 0; r == 0 && c < k->ncols; c++)
        r = table_set(&t, 0, c, k->cols[c].header);
    for (size_t i = 0; r == 0 && i < n; i++) {
        const json_t *obj = json_is_array(answer) ? json_array_get(answer, i) : answer;
        for (size_t c = 0; c < k->ncols; c++) {
            const json_t *v = json_is_object(obj) ? json_object_get(obj, k->cols[c].field) : NULL;
            char *cell = cell_new(v, k->cols[c].fmt);
            if (!cell) {
                r = ERR_NOMEM;
                break;
            }
            t.cells[(i + 1) * t.ncols + c] = cell;
        }
    }
    if (r < 0) {
        table_done(&t);
        fprintf(stderr, "mcpauth: %s\n", err_message(r));
        return RC_REFUSED;
    }
    table_print(&t, stdout);
    table_done(&t);
    return RC_OK;
}

/* `get settings`: KEY and VALUE, in the server's order. */
static int print_settings(const json_t *answer)
{
    struct table t = {0};
    const char *key;
    json_t *v;
    size_t row = 1;
    int r;

    if (!json_is_object(answer)) {
        fputs("mcpauth: unexpected answer from the server: settings are not an object\n", stderr);
        return RC_REFUSED;
    }
    r = table_init(&t, 2, json_object_size(answer) + 1);
    if (r == 0)
        r = table_set(&t, 0, 0, "KEY");
    if (r == 0)
        r = table_set(&t, 0, 1, "VALUE");
    json_object_foreach((json_t *)answer, key, v)
    {
        if (r < 0)
            break;
        r = table_set(&t, row, 0, *key ? key : "-");
        if (r < 0)
            break;
        cli_sanitize(t.cells[row * 2]);
        char *cell = NULL;
        if (json_is_string(v)) {
            cell = cell_new(v, COL_VALUE);
        } else {
            cell = json_dumps(v, JSON_COMPACT_FLAGS);
            cli_sanitize(cell);
        }
        if (!cell)
            r = ERR_NOMEM;
        t.cells[row * 2 + 1] = cell;
        row++;
    }
    if (r < 0) {
        table_done(&t);
        fprintf(stderr, "mcpauth: %s\n", err_message(r));
        return RC_REFUSED;
    }
    table_print(&t, stdout);
    table_done(&t);
    return RC_OK;
}

/* ---- talking to the server ---- */

int cli_open_client(struct client **ret)
{
    int r = client_new(ret);
    switch (r) {
    case 0:
        return RC_OK;
    case ERR_UNAUTH:
        fputs("mcpauth: no admin token: set MCPAUTH_TOKEN or run from the directory holding "
              "var/admin.token\n",
              stderr);
        break;
    case ERR_INVAL:
        fputs("mcpauth: the admin token holds characters that cannot be sent in an HTTP header\n",
              stderr);
        break;
    case ERR_IO:
        fprintf(stderr, "mcpauth: cannot read ./%s: %s\n", CLIENT_TOKEN_FILE, strerror(errno));
        break;
    case ERR_TOOBIG:
        fprintf(stderr, "mcpauth: ./%s is too large to hold a token\n", CLIENT_TOKEN_FILE);
        break;
    default:
        fprintf(stderr, "mcpauth: cannot start the HTTP client: %s\n", err_message(r));
        break;
    }
    return RC_USAGE;
}

const char *cli_string_of(const json_t *obj, const char *field)
{
    const char *s = json_string_value(json_object_get(obj, field));
    return s && *s ? s : NULL;
}

void cli_report_refusal(const struct client_response *resp)
{
    json_t *root = json_loadb(resp->body, resp->len, 0, NULL);
    const json_t *e = json_object_get(root, "error");
    const char *code = NULL, *msg = NULL;

    if (json_is_object(e)) {
        code = cli_string_of(e, "code");
        msg = cli_string_of(e, "message");
    } else if (json_is_string(e)) {
        code = json_string_value(e);
        msg = cli_string_of(root, "error_description");
    }
    if (msg || code) {
        fputs("mcpauth: ", stderr);
        cli_put_clean(stderr, msg ? msg : code);
        fputs(" (", stderr);
        cli_put_clean(stderr, code ? code : "-");
        fprintf(stderr, ", HTTP %ld)\n", resp->status);
    } else {
        fprintf(stderr, "mcpauth: the server answered HTTP %ld\n", resp->status);
    }
    json_decref(root);
}

int cli_exchange(struct client *c, const char *method, const char *path, const char *ctype,
                 const char *body, size_t len, json_t **ret_json)
{
    struct client_response resp = {0};
    int rc = RC_REFUSED;
    int r = client_request(c, method, path, ctype, body, len, &resp);

    if (r == ERR_IO) {
        fprintf(stderr, "mcpauth: cannot reach %s: ", client_addr(c));
        cli_put_clean(stderr, client_error(c));
        fputc('\n', stderr);
        return RC_USAGE;
    }
    if (r == ERR_TOOBIG) {
        fprintf(stderr, "mcpauth: the server's answer is larger than %u MiB\n",
                CLIENT_MAX_RESPONSE >> 20);
        return RC_REFUSED;
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
    if (ret_json) {
        json_t *j = NULL;
        if (resp.len > 0) {
            json_error_t jerr;
            j = json_loadb(resp.body, resp.len, JSON_DECODE_ANY, &jerr);
            if (!j) {
                fprintf(stderr, "mcpauth: the server's answer is not JSON (line %d: ", jerr.line);
                cli_put_clean(stderr, jerr.text);
                fputs(")\n", stderr);
                goto out;
            }
        }
        *ret_json = j;
    }
    rc = RC_OK;
out:
    client_response_done(&resp);
    return rc;
}

/* "/api/v1/systems/<escaped id><suffix>". NULL when out of memory. */
static char *object_path(struct client *c, const char *base, const char *id, const char *suffix)
{
    struct buf b;
    char *esc = client_escape(c, id);
    if (!esc)
        return NULL;
    buf_init(&b, 0);
    if (buf_printf(&b, "%s/%s%s", base, esc, suffix ? suffix : "") < 0) {
        free(esc);
        buf_done(&b);
        return NULL;
    }
    free(esc);
    return buf_take(&b, NULL);
}

int cli_finish(int rc)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mcpauth: cannot write the output: %s\n", strerror(errno));
        return rc ? rc : RC_REFUSED;
    }
    return rc;
}

/* ---- apply ---- */

/* Reads FILE ("-": stdin) into b, which caps it. Prints what went wrong. */
static int read_input(const char *file, struct buf *b)
{
    char chunk[8192];
    int r = 0;
    bool std = strcmp(file, "-") == 0;
    FILE *f = std ? stdin : fopen(file, "re");

    if (!f) {
        fprintf(stderr, "mcpauth: %s: %s\n", file, strerror(errno));
        return RC_USAGE;
    }
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        r = buf_append(b, chunk, n);
        if (r < 0)
            break;
    }
    if (r == ERR_TOOBIG)
        fprintf(stderr, "mcpauth: %s: larger than %u MiB\n", std ? "standard input" : file,
                APPLY_MAX_FILE >> 20);
    else if (r < 0)
        fprintf(stderr, "mcpauth: %s\n", err_message(r));
    else if (ferror(f)) {
        fprintf(stderr, "mcpauth: %s: %s\n", std ? "standard input" : file, strerror(errno));
        r = ERR_IO;
    }
    if (!std)
        fclose(f);
    return r < 0 ? RC_USAGE : RC_OK;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

/* YAML unless the file says JSON: by its name, or for stdin by its first character. */
static const char *content_type_of(const char *file, const struct buf *b)
{
    size_t n = strlen(file);
    if (n > 5 && strcasecmp(file + n - 5, ".json") == 0)
        return "application/json";
    if (strcmp(file, "-") == 0) {
        for (size_t i = 0; i < b->len; i++) {
            char ch = b->data[i];
            if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')
                continue;
            if (ch == '{')
                return "application/json";
            break;
        }
    }
    return "application/yaml";
}

static const char *past_tense(const char *action)
{
    static const char *const map[][2] = {
        {"create", "created"}, {"update", "updated"},      {"delete", "deleted"},
        {"prune", "deleted"},  {"unchanged", "unchanged"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(action, map[i][0]) == 0)
            return map[i][1];
    return action;
}

/* "system:github" → "system/github" (only the first colon: ids hold colons),
 * "access_policy:x" → "access-policy/x", as `get` and `delete` spell kinds. */
static void print_change(const json_t *ch)
{
    const char *obj = cli_string_of(ch, "object");
    const char *action = cli_string_of(ch, "action");
    if (!obj)
        obj = "-";
    const char *colon = strchr(obj, ':');
    if (colon) {
        char kind[64];
        size_t n = (size_t)(colon - obj);
        snprintf(kind, sizeof kind, "%.*s", (int)(n < sizeof kind ? n : sizeof kind - 1), obj);
        for (char *p = kind; *p; p++) /* the CLI's spelling: access-policy */
            if (*p == '_')
                *p = '-';
        cli_put_clean(stdout, kind);
        fputc('/', stdout);
        cli_put_clean(stdout, colon + 1);
    } else {
        cli_put_clean(stdout, obj);
    }
    fputc(' ', stdout);
    cli_put_clean(stdout, action ? past_tense(action) : "changed");
    fputc('\n', stdout);
}

static json_int_t count_of(const json_t *obj, const char *field)
{
    return json_integer_value(json_object_get(obj, field));
}

enum { OPT_PRUNE = 256, OPT_ALG };

int cli_apply(int argc, char **argv)
{
    static const struct option opts[] = {
        {"filename", required_argument, NULL, 'f'},
        {"prune", no_argument, NULL, OPT_PRUNE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct client *c = NULL;
    json_t *answer = NULL;
    const char *file = NULL;
    bool prune = false;
    struct buf doc;
    int opt, rc;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":f:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'f':
            file = optarg;
            break;
        case OPT_PRUNE:
            prune = true;
            break;
        case 'h':
            return cli_help(usage_apply);
        default:
            return cli_bad_option(usage_apply, "apply", opt, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error(usage_apply, "apply", "unexpected argument '%s'", argv[optind]);
    if (!file || !*file)
        return cli_usage_error(usage_apply, "apply", "-f FILE is required");

    buf_init(&doc, APPLY_MAX_FILE);
    rc = read_input(file, &doc);
    if (rc != RC_OK)
        goto out;
    /* An empty document with --prune would delete everything: surely a mistake. */
    if (blank(doc.data, doc.len)) {
        fprintf(stderr, "mcpauth: %s is empty: nothing to apply\n",
                strcmp(file, "-") == 0 ? "standard input" : file);
        rc = RC_USAGE;
        goto out;
    }
    rc = cli_open_client(&c);
    if (rc != RC_OK)
        goto out;
    rc = cli_exchange(c, "POST", prune ? "/api/v1/apply?prune=true" : "/api/v1/apply",
                      content_type_of(file, &doc), doc.data, doc.len, &answer);
    if (rc != RC_OK)
        goto out;
    if (!json_is_object(answer)) {
        fputs("mcpauth: unexpected answer from the server: not an apply result\n", stderr);
        rc = RC_REFUSED;
        goto out;
    }

    size_t i;
    json_t *ch;
    json_array_foreach(json_object_get(answer, "changes"), i, ch) print_change(ch);
    printf("applied: %" JSON_INTEGER_FORMAT " created, %" JSON_INTEGER_FORMAT
           " updated, %" JSON_INTEGER_FORMAT " deleted, %" JSON_INTEGER_FORMAT " unchanged\n",
           count_of(answer, "created"), count_of(answer, "updated"), count_of(answer, "deleted"),
           count_of(answer, "unchanged"));
    rc = cli_finish(RC_OK);
out:
    json_decref(answer);
    client_free(c);
    buf_done(&doc);
    return rc;
}

/* ---- get ---- */

int cli_get(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct client *c = NULL;
    json_t *answer = NULL;
    char *path = NULL;
    bool json_out = false;
    int opt, rc;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            if (strcmp(optarg, "json") == 0)
                json_out = true;
            else if (strcmp(optarg, "table") == 0)
                json_out = false;
            else
                return cli_usage_error(usage_get, "get", "unknown output format '%s'", optarg);
            break;
        case 'h':
            return cli_help(usage_get);
        default:
            return cli_bad_option(usage_get, "get", opt, argv);
        }
    }
    int npos = argc - optind;
    if (npos < 1)
        return cli_usage_error(usage_get, "get", "KIND is required");
    if (npos > 2)
        return cli_usage_error(usage_get, "get", "unexpected argument '%s'", argv[optind + 2]);
    const struct kind *k = kind_find(argv[optind]);
    if (!k)
        return cli_usage_error(usage_get, "get", "unknown kind '%s' (one of: %s)", argv[optind],
                               KIND_LIST);
    const char *id = npos == 2 ? argv[optind + 1] : NULL;
    if (id && (k->flags & KIND_NO_ID))
        return cli_usage_error(usage_get, "get", "%s take no ID", k->plural);
    if (id && !*id)
        return cli_usage_error(usage_get, "get", "the ID is empty");

    rc = cli_open_client(&c);
    if (rc != RC_OK)
        return rc;
    path = id ? object_path(c, k->path, id, NULL) : strdup(k->path);
    if (!path) {
        fprintf(stderr, "mcpauth: %s\n", err_message(ERR_NOMEM));
        rc = RC_REFUSED;
        goto out;
    }
    rc = cli_exchange(c, "GET", path, NULL, NULL, 0, &answer);
    if (rc != RC_OK)
        goto out;
    if (!answer) {
        fputs("mcpauth: unexpected answer from the server: empty\n", stderr);
        rc = RC_REFUSED;
        goto out;
    }
    if (json_out) {
        json_dumpf(answer, stdout, JSON_OUT_FLAGS);
        fputc('\n', stdout);
        rc = RC_OK;
    } else {
        rc = k->cols ? print_objects(k, answer) : print_settings(answer);
    }
    rc = cli_finish(rc);
out:
    json_decref(answer);
    free(path);
    client_free(c);
    return rc;
}

/* ---- delete ---- */

int cli_delete(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct client *c = NULL;
    char *path = NULL;
    int opt, rc;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cli_help(usage_delete);
        return cli_bad_option(usage_delete, "delete", opt, argv);
    }
    int npos = argc - optind;
    if (npos < 2)
        return cli_usage_error(usage_delete, "delete",
                               npos ? "ID is required" : "KIND and ID are required");
    if (npos > 2)
        return cli_usage_error(usage_delete, "delete", "unexpected argument '%s'",
                               argv[optind + 2]);
    const struct kind *k = kind_find(argv[optind]);
    const char *id = argv[optind + 1];
    if (!k)
        return cli_usage_error(usage_delete, "delete", "unknown kind '%s' (one of: %s)",
                               argv[optind], KIND_LIST);
    if (k->flags & KIND_NO_DELETE)
        return cli_usage_error(usage_delete, "delete", "%s", k->delete_hint);
    if (!*id)
        return cli_usage_error(usage_delete, "delete", "the ID is empty");

    rc = cli_open_client(&c);
    if (rc != RC_OK)
        return rc;
    path = object_path(c, k->path, id, NULL);
    if (!path) {
        fprintf(stderr, "mcpauth: %s\n", err_message(ERR_NOMEM));
        rc = RC_REFUSED;
        goto out;
    }
    rc = cli_exchange(c, "DELETE", path, NULL, NULL, 0, NULL);
    if (rc != RC_OK)
        goto out;
    printf("%s/", k->singular);
    cli_put_clean(stdout, id);
    fputs(" deleted\n", stdout);
    rc = cli_finish(RC_OK);
out:
    free(path);
    client_free(c);
    return rc;
}

/* ---- keys ---- */

static int keys_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"alg", required_argument, NULL, OPT_ALG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct client *c = NULL;
    json_t *answer = NULL;
    char *body = NULL;
    const char *alg = NULL;
    int opt, rc;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_ALG:
            alg = optarg;
            break;
        case 'h':
            return cli_help(usage_keys);
        default:
            return cli_bad_option(usage_keys, "keys create", opt, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error(usage_keys, "keys create", "unexpected argument '%s'", argv[optind]);
    if (!alg || !*alg)
        return cli_usage_error(usage_keys, "keys create", "--alg ALG is required");

    json_t *req = json_pack("{s:s}", "alg", alg);
    body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) {
        /* json_pack also fails on an ALG that is not UTF-8. */
        return cli_usage_error(usage_keys, "keys create", "--alg: not a valid algorithm name");
    }
    rc = cli_open_client(&c);
    if (rc != RC_OK)
        goto out;
    rc = cli_exchange(c, "POST", "/api/v1/keys", "application/json", body, strlen(body), &answer);
    if (rc != RC_OK)
        goto out;
    const char *kid = cli_string_of(answer, "kid");
    const char *got_alg = cli_string_of(answer, "alg");
    const char *status = cli_string_of(answer, "status");
    fputs("key/", stdout);
    cli_put_clean(stdout, kid ? kid : "-");
    fputs(" created (", stdout);
    cli_put_clean(stdout, got_alg ? got_alg : alg);
    fputs(", ", stdout);
    cli_put_clean(stdout, status ? status : "-");
    fputs(")\n", stdout);
    rc = cli_finish(RC_OK);
out:
    json_decref(answer);
    free(body);
    client_free(c);
    return rc;
}

/* `keys activate KID` and `keys retire KID`: POST /api/v1/keys/KID/<verb>. */
static int keys_transition(int argc, char **argv, const char *verb, const char *done)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct client *c = NULL;
    char *path = NULL;
    char cmd[32], suffix[32];
    int opt, rc;

    snprintf(cmd, sizeof cmd, "keys %s", verb);
    snprintf(suffix, sizeof suffix, "/%s", verb);
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cli_help(usage_keys);
        return cli_bad_option(usage_keys, cmd, opt, argv);
    }
    if (argc - optind < 1)
        return cli_usage_error(usage_keys, cmd, "KID is required");
    if (argc - optind > 1)
        return cli_usage_error(usage_keys, cmd, "unexpected argument '%s'", argv[optind + 1]);
    const char *kid = argv[optind];
    if (!*kid)
        return cli_usage_error(usage_keys, cmd, "the KID is empty");

    rc = cli_open_client(&c);
    if (rc != RC_OK)
        return rc;
    path = object_path(c, "/api/v1/keys", kid, suffix);
    if (!path) {
        fprintf(stderr, "mcpauth: %s\n", err_message(ERR_NOMEM));
        rc = RC_REFUSED;
        goto out;
    }
    rc = cli_exchange(c, "POST", path, NULL, NULL, 0, NULL);
    if (rc != RC_OK)
        goto out;
    fputs("key/", stdout);
    cli_put_clean(stdout, kid);
    printf(" %s\n", done);
    rc = cli_finish(RC_OK);
out:
    free(path);
    client_free(c);
    return rc;
}

/* `keys list ARGS…` runs `get keys ARGS…`. */
static int keys_list(int argc, char **argv)
{
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (!args) {
        fprintf(stderr, "mcpauth: %s\n", err_message(ERR_NOMEM));
        return RC_REFUSED;
    }
    args[0] = "get";
    args[1] = "keys";
    for (int i = 1; i < argc; i++)
        args[i + 1] = argv[i];
    int rc = cli_get(argc + 1, args);
    free(args);
    return rc;
}

int cli_keys(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(usage_keys, "keys",
                               "a command is required: create, activate, retire or list");
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0)
        return cli_help(usage_keys);
    if (strcmp(cmd, "create") == 0)
        return keys_create(argc - 1, argv + 1);
    if (strcmp(cmd, "activate") == 0)
        return keys_transition(argc - 1, argv + 1, "activate", "activated");
    if (strcmp(cmd, "retire") == 0)
        return keys_transition(argc - 1, argv + 1, "retire", "retired");
    if (strcmp(cmd, "list") == 0)
        return keys_list(argc - 1, argv + 1);
    return cli_usage_error(usage_keys, "keys", "unknown command '%s'", cmd);
}

/* ---- explain ---- */

static const char usage_explain[] =
    "Usage: mcpauth explain --client C (--audience A | --resource URL) [--scope \"S ...\"]\n"
    "                       [--user U] [--groups G,...] [--grant-type T] [-o table|json]\n"
    "\n"
    "Runs steps 3 to 10 of the decision on a hypothetical request and prints each\n"
    "step's result. Issues nothing and records nothing.\n"
    "  --client C         the client that would ask\n"
    "  --audience A       the system's audience (token exchange)\n"
    "  --resource URL     the target URL (RFC 8707)\n"
    "  --scope \"S ...\"    requested scopes (default: every enabled scope held)\n"
    "  --user U           the user (omit for client credentials)\n"
    "  --groups G,...     the user's groups\n"
    "  --grant-type T     token-exchange | jwt-bearer | client_credentials\n"
    "                     (default: token-exchange with --user, else client_credentials)\n";

enum {
    OPT_CLIENT = 300,
    OPT_AUDIENCE,
    OPT_RESOURCE,
    OPT_SCOPE,
    OPT_USER,
    OPT_GROUPS,
    OPT_GT,
    OPT_TTL
};

static json_t *split_list(const char *s)
{
    json_t *a = json_array();
    char *copy = strdup(s ? s : "");
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (*t)
            json_array_append_new(a, json_string(t));
    free(copy);
    return a;
}

static const char *grant_type_urn(const char *t)
{
    if (!t)
        return NULL;
    if (strcmp(t, "token-exchange") == 0)
        return "urn:ietf:params:oauth:grant-type:token-exchange";
    if (strcmp(t, "jwt-bearer") == 0)
        return "urn:ietf:params:oauth:grant-type:jwt-bearer";
    return t;
}

int cli_explain(int argc, char **argv)
{
    static const struct option opts[] = {
        {"client", required_argument, NULL, OPT_CLIENT},
        {"audience", required_argument, NULL, OPT_AUDIENCE},
        {"resource", required_argument, NULL, OPT_RESOURCE},
        {"scope", required_argument, NULL, OPT_SCOPE},
        {"user", required_argument, NULL, OPT_USER},
        {"groups", required_argument, NULL, OPT_GROUPS},
        {"grant-type", required_argument, NULL, OPT_GT},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *client = NULL, *audience = NULL, *resource = NULL, *scope = NULL, *user = NULL,
               *groups = NULL, *gt = NULL, *out = "table";
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_CLIENT:
            client = optarg;
            break;
        case OPT_AUDIENCE:
            audience = optarg;
            break;
        case OPT_RESOURCE:
            resource = optarg;
            break;
        case OPT_SCOPE:
            scope = optarg;
            break;
        case OPT_USER:
            user = optarg;
            break;
        case OPT_GROUPS:
            groups = optarg;
            break;
        case OPT_GT:
            gt = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'h':
            return cli_help(usage_explain);
        default:
            return cli_bad_option(usage_explain, "explain", opt, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error(usage_explain, "explain", "unexpected argument '%s'", argv[optind]);
    if (!client)
        return cli_usage_error(usage_explain, "explain", "--client C is required");
    if (strcmp(out, "table") && strcmp(out, "json"))
        return cli_usage_error(usage_explain, "explain", "-o: expected table or json");
    json_t *req = json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?}", "client", client, "audience",
                            audience, "resource", resource, "scope", scope, "user", user,
                            "grant_type", grant_type_urn(gt));
    if (!req)
        return cli_usage_error(usage_explain, "explain", "arguments must be UTF-8");
    if (groups)
        json_object_set_new(req, "groups", split_list(groups));
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    struct client *c = NULL;
    json_t *answer = NULL;
    int rc = cli_open_client(&c);
    if (rc == RC_OK)
        rc = cli_exchange(c, "POST", "/api/v1/explain", "application/json", body, strlen(body),
                          &answer);
    if (rc == RC_OK && strcmp(out, "json") == 0) {
        char *s = json_dumps(answer, JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
    } else if (rc == RC_OK) {
        const json_t *steps = json_object_get(answer, "steps");
        struct table t;
        if (table_init(&t, 4, json_array_size(steps) + 1) == 0) { /* + the header row */
            static const char *hdr[] = {"STEP", "CHECK", "RESULT", "DETAIL"};
            for (size_t k = 0; k < 4; k++)
                table_set(&t, 0, k, hdr[k]);
            size_t i;
            const json_t *st;
            json_array_foreach(steps, i, st)
            {
                char num[16];
                snprintf(num, sizeof(num), "%lld", json_integer_value(json_object_get(st, "step")));
                table_set(&t, i + 1, 0, num);
                table_set(&t, i + 1, 1,
                          cli_string_of(st, "check") ? cli_string_of(st, "check") : "-");
                table_set(&t, i + 1, 2,
                          cli_string_of(st, "result") ? cli_string_of(st, "result") : "-");
                table_set(&t, i + 1, 3,
                          cli_string_of(st, "status_detail") ? cli_string_of(st, "status_detail")
                                                             : "");
            }
            table_print(&t, stdout);
            table_done(&t);
        }
        const char *outcome = cli_string_of(answer, "outcome");
        const char *reason = cli_string_of(answer, "reason");
        const char *detail = cli_string_of(answer, "status_detail");
        fputs("\noutcome: ", stdout);
        cli_put_clean(stdout, outcome ? outcome : "-");
        if (reason) {
            fputs(" (", stdout);
            cli_put_clean(stdout, reason);
            fputs(")", stdout);
        }
        if (detail) {
            fputs(": ", stdout);
            cli_put_clean(stdout, detail);
        }
        fputc('\n', stdout);
        const json_t *sc = json_object_get(answer, "scopes");
        size_t i;
        const json_t *s;
        json_array_foreach(sc, i, s)
        {
            fputs("  scope ", stdout);
            cli_put_clean(stdout, cli_string_of(s, "name") ? cli_string_of(s, "name") : "-");
            fputs(": ", stdout);
            cli_put_clean(stdout, cli_string_of(s, "outcome") ? cli_string_of(s, "outcome") : "-");
            if (cli_string_of(s, "reason")) {
                fputs(" (", stdout);
                cli_put_clean(stdout, cli_string_of(s, "reason"));
                fputs(")", stdout);
            }
            fputc('\n', stdout);
        }
    }
    if (rc == RC_OK)
        rc = cli_finish(RC_OK);
    json_decref(answer);
    free(body);
    client_free(c);
    return rc;
}

/* ---- dev ---- */

static const char usage_dev[] =
    "Usage: mcpauth dev id-token --user U [--groups G,...] [--ttl 10m]\n"
    "\n"
    "Prints an ID token signed by the development IdP of a server started with\n"
    "--dev, for use as a token exchange's subject_token. Development only.\n";

int cli_dev(int argc, char **argv)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, OPT_USER},
        {"groups", required_argument, NULL, OPT_GROUPS},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2 || strcmp(argv[1], "id-token") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
            return cli_help(usage_dev);
        return cli_usage_error(usage_dev, "dev", "expected the subcommand id-token");
    }
    argc--;
    argv++;
    const char *user = NULL, *groups = NULL, *ttl = "10m";
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_USER:
            user = optarg;
            break;
        case OPT_GROUPS:
            groups = optarg;
            break;
        case OPT_TTL:
            ttl = optarg;
            break;
        case 'h':
            return cli_help(usage_dev);
        default:
            return cli_bad_option(usage_dev, "dev id-token", opt, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error(usage_dev, "dev id-token", "unexpected argument '%s'", argv[optind]);
    if (!user || !*user)
        return cli_usage_error(usage_dev, "dev id-token", "--user U is required");
    json_t *req =
        json_pack("{s:s, s:s, s:o}", "user", user, "ttl", ttl, "groups", split_list(groups));
    if (!req)
        return cli_usage_error(usage_dev, "dev id-token", "arguments must be UTF-8");
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    struct client *c = NULL;
    json_t *answer = NULL;
    int rc = cli_open_client(&c);
    if (rc == RC_OK)
        rc = cli_exchange(c, "POST", "/api/v1/dev/id-token", "application/json", body, strlen(body),
                          &answer);
    if (rc == RC_OK) {
        const char *tok = cli_string_of(answer, "id_token");
        if (tok)
            puts(tok);
        rc = cli_finish(tok ? RC_OK : RC_REFUSED);
    }
    json_decref(answer);
    free(body);
    client_free(c);
    return rc;
}
