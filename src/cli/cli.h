/* cli/cli.h — the client subcommands of spec/cli.md that talk to a running
 * server over its HTTP API (libcurl): apply, get, delete, keys. The server
 * address comes from MCPAUTH_ADDR (default http://127.0.0.1:8080), the admin
 * token from MCPAUTH_TOKEN or else ./var/admin.token. Also explain, dev id-token,
 * logs and token inspect.
 * Exit status: 0 success, 1 refused by the server (its message printed on
 * stderr), 2 bad usage or the server unreachable. */
#pragma once

/* argv[0] is the subcommand name ("apply", "get", ...). Returns the exit status. */
int cli_apply(int argc, char **argv);
int cli_get(int argc, char **argv);
int cli_delete(int argc, char **argv);
int cli_keys(int argc, char **argv);
int cli_explain(int argc, char **argv);
int cli_dev(int argc, char **argv);
/* logs [verify]: pages, downloads and chain verification of the system log. */
int cli_logs(int argc, char **argv);
/* token inspect: decodes a JWT, finds its audit event and judges it as a
 * resource server would: 0 accepted, 1 rejected, 2 bad usage or unreadable. */
int cli_token(int argc, char **argv);
/* `mcpauth exporters add|list|status|test|pause|resume|remove` (cli/exporters.c). */
int cli_exporters(int argc, char **argv);
/* `mcpauth trace` (cli/trace.c). */
int cli_trace(int argc, char **argv);
