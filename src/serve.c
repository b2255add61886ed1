/* serve.c — `mcpauth serve`: reads the configuration, opens the store and the
 * KEK, builds the first policy snapshot, makes sure the signing keys the
 * settings call for exist, applies a configured policy file, and serves HTTP
 * until SIGINT or SIGTERM. The only place that wires the modules together. */
#include "serve.h"

#include "admin/admin.h"
#include "config/config.h"
#include "export/runner.h"
#include "logs/scim.h"
#include "trace/trace.h"
#include "core/b64.h"
#include "core/log.h"
#include "core/uuid.h"
#include "http/http.h"
#include "jose/crypto.h"
#include "jose/keys.h"
#include "oauth/oauth.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fputs("usage: mcpauth serve [--config FILE] [--dev] [--listen HOST:PORT] [--data-dir DIR]\n"
          "\n"
          "  --config FILE      read the server configuration (YAML or JSON)\n"
          "  --dev              embedded development defaults: SQLite in DIR, a generated\n"
          "                     ES256 key, an admin token in DIR/admin.token (printed)\n"
          "  --listen HOST:PORT address to listen on (default 127.0.0.1:8080)\n"
          "  --data-dir DIR     where the database, KEK and admin token live (default ./var)\n",
          f);
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    if (strlen(path) >= sizeof(tmp))
        return -1;
    strcpy(tmp, path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Reads the admin token file, or creates it (mode 0600) with a new token. On return
 * *created says which; the token is in `out`. */
static int admin_token(const char *path, char *out, size_t n, int *created)
{
    *created = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 && (st.st_mode & 077))
            log_warn("admin token file %s is readable by group or others; chmod 600 it", path);
        ssize_t r = read(fd, out, n - 1);
        close(fd);
        if (r <= 0)
            return -1;
        out[r] = '\0';
        out[strcspn(out, "\r\n \t")] = '\0';
        return strlen(out) >= 16 ? 0 : -1;
    }
    if (errno != ENOENT)
        return -1;
    unsigned char raw[32];
    core_random(raw, sizeof(raw));
    char enc[64];
    b64url_encode(raw, sizeof(raw), enc);
    crypto_wipe(raw, sizeof(raw));
    snprintf(out, n, "mcpa_%s", enc);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t len = strlen(out);
    int ok = write(fd, out, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    close(fd);
    *created = 1;
    return ok ? 0 : -1;
}

/* The development IdP: an ES256 key kept sealed in DATA_DIR/dev-idp.key, trusted as
 * the issuer ISSUER/dev/idp through a trusted-issuer object with its public key inline
 * (created once; unchanged on later starts, so no admin.change event each time). */
static int dev_idp(struct admin *a, const struct serve_config *cfg, const struct kek *kek,
                   char **ret_issuer, struct jose_key **ret_key)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/dev-idp.key", cfg->data_dir);
    struct jose_key *key = NULL;
    char sealed[8192];
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(sealed, 1, sizeof(sealed) - 1, f);
        fclose(f);
        sealed[n] = '\0';
        sealed[strcspn(sealed, "\r\n")] = '\0';
        if (jose_key_open(JOSE_ES256, "dev-idp", sealed, kek, &key) < 0) {
            log_error("%s does not open with the KEK; delete it to make a new development IdP",
                      path);
            return -1;
        }
    } else {
        char *s = NULL;
        if (jose_key_generate(JOSE_ES256, "dev-idp", &key) < 0 ||
            jose_key_seal(key, kek, &s) < 0) {
            jose_key_free(key);
            return -1;
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        int ok = fd >= 0 && write(fd, s, strlen(s)) == (ssize_t)strlen(s) && fsync(fd) == 0;
        if (fd >= 0)
            close(fd);
        free(s);
        if (!ok) {
            log_error("cannot write %s: %s", path, strerror(errno));
            jose_key_free(key);
            return -1;
        }
    }
    size_t il = strlen(cfg->issuer) + sizeof("/dev/idp");
    char *issuer = malloc(il);
    snprintf(issuer, il, "%s/dev/idp", cfg->issuer);
    json_t *jwk = jose_key_public_jwk(key);
    json_t *ti = json_pack("{s:s, s:s, s:{s:[o]}, s:s, s:[s]}", "id", "dev-idp", "issuer", issuer,
                           "jwks", "keys", jwk, "audience", cfg->issuer, "algorithms", "ES256");
    char rid[UUID_STR_LEN];
    uuid7_new(rid);
    struct audit_origin o = {.request_id = rid, .endpoint = "config", .actor = "dev"};
    struct err_detail d = {{0}};
    json_t *cur = NULL, *out = NULL;
    int r = admin_get(a, STORE_TRUSTED_ISSUERS, "dev-idp", &cur, NULL) == 0
                ? admin_replace(a, &o, STORE_TRUSTED_ISSUERS, "dev-idp", ti, &out, &d)
                : admin_create(a, &o, STORE_TRUSTED_ISSUERS, ti, &out, &d);
    json_decref(cur);
    json_decref(out);
    json_decref(ti);
    if (r < 0) {
        log_error("development IdP: %s", d.msg);
        free(issuer);
        jose_key_free(key);
        return -1;
    }
    *ret_issuer = issuer;
    *ret_key = key;
    return 0;
}

static int apply_file(struct admin *a, const char *path)
{
    struct err_detail d = {{0}};
    struct config_doc *doc = NULL;
    int r = config_doc_load(path, &doc, &d);
    if (r < 0) {
        log_error("policy file %s", d.msg); /* config_doc_load's message starts with the path */
        return r;
    }
    char rid[UUID_STR_LEN];
    uuid7_new(rid);
    struct audit_origin o = {.request_id = rid, .endpoint = "config", .actor = "config"};
    json_t *sum = NULL;
    r = admin_apply(a, &o, doc, 0, &sum, &d);
    config_doc_free(doc);
    if (r < 0) {
        log_error("policy file %s: %s", path, d.msg);
        return r;
    }
    log_info("policy file %s applied: %lld created, %lld updated, %lld unchanged", path,
             json_integer_value(json_object_get(sum, "created")),
             json_integer_value(json_object_get(sum, "updated")),
             json_integer_value(json_object_get(sum, "unchanged")));
    json_decref(sum);
    return 0;
}

static void wake_exporters(void *arg)
{
    export_manager_notify(arg);
}

/* The exporters of the config file: created, or replaced when they differ. */
static int declare_exporters(struct admin *a, const json_t *list)
{
    char rid[UUID_STR_LEN];
    uuid7_new(rid);
    struct audit_origin o = {.request_id = rid, .endpoint = "config", .actor = "config"};
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *id = json_string_value(json_object_get(e, "id"));
        struct err_detail d = {{0}};
        const char *filter = json_string_value(json_object_get(e, "filter"));
        struct store_filter *tree = NULL;
        if (filter && scim_parse(filter, strlen(filter), &tree, &d) < 0) {
            log_error("config: exporter %s: filter: %s", id, d.msg);
            return ERR_INVAL;
        }
        store_filter_free(tree);
        json_t *cur = NULL, *out = NULL;
        int r = admin_get(a, STORE_EXPORTERS, id, &cur, NULL) == 0
                    ? admin_replace(a, &o, STORE_EXPORTERS, id, e, &out, &d)
                    : admin_create(a, &o, STORE_EXPORTERS, e, &out, &d);
        json_decref(cur);
        json_decref(out);
        if (r < 0) {
            log_error("config: exporter %s: %s", id, d.msg);
            return r;
        }
    }
    return 0;
}

int serve_main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"dev", no_argument, NULL, 'd'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"data-dir", required_argument, NULL, 'D'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config_file = NULL, *listen = NULL, *data_dir = NULL;
    int dev = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:dl:D:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_file = optarg;
            break;
        case 'd':
            dev = 1;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'D':
            data_dir = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }

    struct serve_config cfg;
    struct err_detail d = {{0}};
    config_serve_defaults(&cfg);
    int rc = 1;
    struct store *store = NULL;
    struct kek *kek = NULL;
    struct policy_holder *holder = NULL;
    struct admin *admin = NULL;
    struct http_server *srv = NULL;
    struct audit_writer *writer = NULL;
    struct store *logs_store = NULL;
    struct export_manager *exporters = NULL;
    struct trace_hub *trace = NULL;
    struct oauth *oauth = NULL;
    struct jose_key *idp_key = NULL;
    char *idp_issuer = NULL;
    char token[256] = {0};

    if (config_file && config_serve_load(config_file, &cfg, &d) < 0) {
        fprintf(stderr, "mcpauth: %s\n", d.msg);
        rc = 2;
        goto out;
    }
    if (dev)
        cfg.dev = 1;
    if (listen && config_serve_set_listen(&cfg, listen, &d) < 0) {
        fprintf(stderr, "mcpauth: --listen: %s\n", d.msg);
        rc = 2;
        goto out;
    }
    if (data_dir && config_set_str(&cfg.data_dir, data_dir) < 0)
        goto out;
    if (config_serve_finish(&cfg) < 0)
        goto out;
    log_set_level(cfg.log_level);
    log_buffered_start(); /* unbuffered if the thread cannot start */

    if (mkdir_p(cfg.data_dir) < 0) {
        log_error("cannot create data dir %s: %s", cfg.data_dir, strerror(errno));
        goto out;
    }
    if (store_open(cfg.database, &store, &d) < 0) {
        log_error("store %s: %s", cfg.database, d.msg);
        goto out;
    }
    /* A new KEK is made only for a database that holds no keys yet: with keys stored,
     * a missing KEK file is an operator's mistake to report, not to paper over. */
    struct store_key *existing_keys = NULL;
    size_t n_existing = 0;
    if (store_key_list(store, &existing_keys, &n_existing) < 0) {
        log_error("store %s: cannot read signing keys", cfg.database);
        goto out;
    }
    store_keys_free(existing_keys, n_existing);
    if (kek_load(cfg.kek_file, n_existing == 0, &kek, &d) < 0) {
        if (n_existing)
            log_error("key-encryption key: %s (the database holds %zu sealed keys; restore the "
                      "KEK file that sealed them)",
                      d.msg, n_existing);
        else
            log_error("key-encryption key: %s", d.msg);
        goto out;
    }
    policy_set_kek(kek); /* exporter credentials are sealed with it */
    holder = policy_holder_new(NULL);
    struct admin_config acfg = {store, kek, holder, cfg.node};
    if (!holder || admin_new(&acfg, &admin) < 0)
        goto out;
    if (admin_reload(admin, &d) < 0) {
        log_error("%s (is %s the KEK these keys were sealed with?)", d.msg, cfg.kek_file);
        goto out;
    }
    char rid[UUID_STR_LEN];
    uuid7_new(rid);
    struct audit_origin sys = {.request_id = rid, .endpoint = "config", .actor = "system"};
    int made = admin_keys_ensure(admin, &sys, &d);
    if (made < 0) {
        log_error("signing keys: %s", d.msg);
        goto out;
    }
    if (made)
        log_info("created %d signing key(s) for the default and maintained algorithms", made);
    if (cfg.policy_file && apply_file(admin, cfg.policy_file) < 0)
        goto out;
    if (cfg.policy_file && (made = admin_keys_ensure(admin, &sys, &d)) < 0) {
        log_error("signing keys: %s", d.msg); /* the file may name new algorithms */
        goto out;
    }

    if (cfg.dev && dev_idp(admin, &cfg, kek, &idp_issuer, &idp_key) < 0)
        goto out;
    if (!cfg.dev) {
        /* a data dir once run with --dev must not keep trusting the development IdP */
        json_t *ti = NULL;
        if (admin_get(admin, STORE_TRUSTED_ISSUERS, "dev-idp", &ti, NULL) == 0) {
            char rid2[UUID_STR_LEN];
            uuid7_new(rid2);
            struct audit_origin o = {.request_id = rid2, .endpoint = "config", .actor = "system"};
            if (admin_delete(admin, &o, STORE_TRUSTED_ISSUERS, "dev-idp", &d) < 0) {
                log_error("removing the development IdP: %s", d.msg);
                json_decref(ti);
                goto out;
            }
            log_warn("removed the trusted issuer dev-idp: the development IdP is trusted only "
                     "with --dev");
        }
        json_decref(ti);
    }
    enum store_sync sync = cfg.durability_power ? STORE_SYNC_POWER : STORE_SYNC_PROCESS;
    if (store_set_sync(store, sync) < 0 ||
        audit_writer_start(cfg.database, sync, &writer, &d) < 0) {
        log_error("audit writer: %s", d.msg);
        goto out;
    }
    if (store_open(cfg.database, &logs_store, &d) < 0) {
        log_error("store %s (log reader): %s", cfg.database, d.msg);
        goto out;
    }
    if (cfg.exporters && declare_exporters(admin, cfg.exporters) < 0)
        goto out;
    struct export_manager_config ecfg = {cfg.database, kek, cfg.node};
    if (export_manager_new(&ecfg, &exporters, &d) < 0) {
        log_error("exporters: %s", d.msg);
        goto out;
    }
    audit_writer_on_commit(writer, wake_exporters, exporters);
    if (trace_hub_new_budgeted(4096, 0, "/proc/stat", &trace) < 0) {
        log_error("live trace: cannot start");
        goto out;
    }
    struct trace_stats tst;
    trace_hub_stats(trace, &tst);
    if (tst.priority_err < 0)
        log_debug("live trace: the sender keeps the normal CPU priority (%s)",
                  strerror(-tst.priority_err));
    json_t *declared = NULL;
    if (store_object_list(store, STORE_EXPORTERS, &declared) == 0)
        export_manager_sync(exporters, declared);
    json_decref(declared);
    struct oauth_config ocfg = {
        .issuer = cfg.issuer,
        .policy = holder,
        .store = store,
        .node = cfg.node,
        .dev = cfg.dev,
        .dev_idp_issuer = idp_issuer,
        .dev_idp_key = idp_key,
    };
    if (oauth_new(&ocfg, &oauth, &d) < 0) {
        log_error("oauth: %s", d.msg);
        goto out;
    }

    int created = 0;
    if (admin_token(cfg.admin_token_file, token, sizeof(token), &created) < 0) {
        log_error("admin token file %s: cannot read or create it", cfg.admin_token_file);
        goto out;
    }
    struct http_server_config hcfg = {
        .host = cfg.listen_host,
        .port = cfg.listen_port,
        .threads = cfg.threads,
        .oauth_body_max = cfg.oauth_body_max,
        .admin_body_max = cfg.admin_body_max,
        .issuer = cfg.issuer,
        .admin = admin,
        .policy = holder,
        .store = store,
        .oauth = oauth,
        .writer = writer,
        .logs_store = logs_store,
        .exporters = exporters,
        .trace = trace,
        .dev = cfg.dev,
    };
    kek_derive(kek, "mcpauth log cursor v1", hcfg.logs_key);
    crypto_sha256(token, strlen(token), hcfg.admin_token_sha256);

    /* Block the stop signals before any thread exists so every thread inherits the
     * mask and only sigwait below receives them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (http_server_start(&hcfg, &srv, &d) < 0) {
        log_error("%s", d.msg);
        goto out;
    }
    const char *br = strchr(cfg.listen_host, ':') ? "[" : "";
    const char *bl = *br ? "]" : "";
    printf("mcpauth %s%s listening on http://%s%s%s:%d\n", MCPAUTH_VERSION,
           cfg.dev ? " (development mode)" : "", br, cfg.listen_host, bl, cfg.listen_port);
    printf("  issuer:      %s\n  data dir:    %s\n", cfg.issuer, cfg.data_dir);
    if (cfg.dev || created)
        printf("  admin token: %s\n               (kept in %s, mode 0600)\n", token,
               cfg.admin_token_file);
    else
        printf("  admin token: in %s\n", cfg.admin_token_file);
    if (cfg.dev && strcmp(cfg.listen_host, "127.0.0.1") == 0 && cfg.listen_port == 8080 &&
        strcmp(cfg.admin_token_file, "./var/admin.token") == 0)
        printf("  try:         build/mcpauth get systems\n");
    else if (cfg.dev)
        printf("  try:         MCPAUTH_ADDR=http://%s%s%s:%d MCPAUTH_TOKEN=$(cat %s) "
               "build/mcpauth get systems\n",
               br, cfg.listen_host, bl, cfg.listen_port, cfg.admin_token_file);
    fflush(stdout);
    crypto_wipe(token, sizeof(token));

    int sig = 0;
    sigwait(&stop, &sig);
    log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_server_quiesce(srv);
    trace_hub_close(trace); /* live trace streams end; their connections are given back */
    writer = audit_writer_stop(writer); /* drains: every waiting request gets its answer */
    srv = http_server_stop(srv);
    exporters = export_manager_free(exporters); /* unsent batches go again after a restart */
    rc = 0;
out:
    crypto_wipe(token, sizeof(token));
    audit_writer_stop(writer);
    http_server_stop(srv);
    export_manager_free(exporters);
    trace_hub_close(trace);
    oauth_free(oauth);
    trace_hub_free(trace);
    store_close(logs_store);
    jose_key_free(idp_key);
    free(idp_issuer);
    admin_free(admin);
    policy_holder_free(holder);
    policy_set_kek(NULL);
    kek_free(kek);
    store_close(store);
    config_serve_done(&cfg);
    log_buffered_stop();
    return rc;
}
