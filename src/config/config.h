/* config/config.h — the server's configuration (`mcpauth serve --config FILE`):
 * defaults, the file's keys, then command-line overrides. Unknown keys are an
 * error that names the key and its line.
 *
 * Keys (all optional):
 *   listen: "127.0.0.1:8080"          HOST:PORT ([v6]:port accepted)
 *   issuer: "https://auth.example.com" default http://HOST:PORT of listen
 *   data_dir: "./var"                 store, KEK and admin token live here by default
 *   database: "sqlite:./var/mcpauth.db"  (sqlite:PATH; postgres later)
 *   admin_token_file: PATH            default DATA_DIR/admin.token
 *   kek_file: PATH                    default DATA_DIR/kek
 *   policy_file: PATH                 applied at start (like `mcpauth apply -f`)
 *   dev: false                        embedded development defaults (see spec/cli.md)
 *   threads: 4                        HTTP worker threads (1..256)
 *   log_level: info                   debug | info | warn | error
 *   durability: process               process: an audit event is committed to the
 *                                     database (WAL) before its token leaves, surviving
 *                                     a crash of mcpauth; power: also fsynced, surviving
 *                                     power loss, at one fsync per commit batch
 *   node: hostname                    this node's name in audit events
 *   limits: {oauth_body: 64KiB, admin_body: 1MiB} (bytes, integers)
 *   exporters: [ {id: siem, type: syslog, url: ..., ...} ]  exporter objects
 *                                     (spec/http-api.md) created or replaced at start
 * Relative paths are relative to the working directory. */
#pragma once
#include <jansson.h>
#include <stddef.h>

#include "core/err.h"
#include "core/log.h"

struct serve_config {
    char *listen_host; /* owned strings, never NULL after config_serve_defaults */
    int listen_port;
    char *issuer;      /* NULL = derived from listen */
    char *data_dir;
    char *database;    /* NULL = sqlite:DATA_DIR/mcpauth.db */
    char *admin_token_file; /* NULL = DATA_DIR/admin.token */
    char *kek_file;         /* NULL = DATA_DIR/kek */
    char *policy_file;      /* NULL = none */
    char *node;             /* NULL = gethostname() */
    int dev;
    int threads;
    enum log_level log_level;
    int durability_power; /* 1: fsync every commit (synchronous=FULL) */
    size_t oauth_body_max;
    size_t admin_body_max;
    json_t *exporters; /* owned array of objects, NULL = none declared */
};

void config_serve_defaults(struct serve_config *c);
/* Reads FILE over the current values. ERR_INVAL with "FILE: line L: key: message". */
int config_serve_load(const char *path, struct serve_config *c, struct err_detail *d);
/* Parses "HOST:PORT" into the config. ERR_INVAL on a bad address. */
int config_serve_set_listen(struct serve_config *c, const char *hostport, struct err_detail *d);
/* Replaces an owned string member: config_set_str(&c->data_dir, "x"). 0 or ERR_NOMEM. */
int config_set_str(char **field, const char *value);
/* Fills NULL derived members (issuer, database, admin_token_file, kek_file, node). */
int config_serve_finish(struct serve_config *c);
void config_serve_done(struct serve_config *c);
