/* cli/cli_priv.h — what the client subcommands share (defined in
 * cli/commands.c): exit statuses, usage messages, text from the server made
 * safe for a terminal, and one request judged the same way everywhere. Every
 * helper prints its own message on stderr, so a subcommand only returns the
 * status it is given. Private to cli/; not thread-safe (stdio, getopt). */
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "cli/client.h"

/* Exit statuses of spec/cli.md. */
enum { RC_OK = 0, RC_REFUSED = 1, RC_USAGE = 2 };

#define JSON_OUT_FLAGS     (JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER)
#define JSON_COMPACT_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER)

/* The tail of every client subcommand's --help. */
#define ENV_HELP                                                                                   \
    "\nEnvironment:\n"                                                                             \
    "  MCPAUTH_ADDR   server address (default " CLIENT_DEFAULT_ADDR ")\n"                          \
    "  MCPAUTH_TOKEN  admin token (default: the contents of ./" CLIENT_TOKEN_FILE ")\n"            \
    "\nExit status: 0 done, 1 refused by the server, 2 bad usage or server unreachable.\n"

/* Prints "mcpauth CMD: problem", the synopsis of `usage` (its text up to the
 * first blank line) and where the rest is, on stderr. Returns RC_USAGE. */
int cli_usage_error(const char *usage, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints `usage` on stdout. RC_OK, or RC_REFUSED when stdout cannot be written. */
int cli_help(const char *usage);
/* Turns one getopt failure ('?' or ':', with optstring starting with ':')
 * into a usage error. Returns RC_USAGE. */
int cli_bad_option(const char *usage, const char *cmd, int c, char **argv);

/* Replaces control characters (terminal escapes included) in place; NULL-safe. */
void cli_sanitize(char *s);
/* Writes `s` with its control characters replaced. */
void cli_put_clean(FILE *f, const char *s);
/* Display width of UTF-8 text, one column per code point. */
size_t cli_text_width(const char *s);
/* The member `field` of `obj` if it is a non-empty string, else NULL. Borrowed. */
const char *cli_string_of(const json_t *obj, const char *field);

/* client_new() with the reason for a failure printed. RC_OK and an owned *ret,
 * or RC_USAGE. */
int cli_open_client(struct client **ret);
/* Prints the refusal in a non-2xx answer: the admin API's {"error": {"code",
 * "message"}}, OAuth's {"error", "error_description"}, or the bare status. */
void cli_report_refusal(const struct client_response *resp);
/* Sends one request and judges the answer. A refusal or a failure is printed
 * here and its exit status returned (RC_REFUSED, or RC_USAGE when the server
 * cannot be reached). On a 2xx returns RC_OK and, if ret_json is given, the
 * parsed body in *ret_json (owned; NULL when the body is empty). */
int cli_exchange(struct client *c, const char *method, const char *path, const char *ctype,
                 const char *body, size_t len, json_t **ret_json);
/* Checks that what was printed reached stdout: `rc`, or RC_REFUSED (with a
 * message) when it did not and rc was RC_OK. */
int cli_finish(int rc);
