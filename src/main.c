/* main.c — argument dispatch. `serve` runs the server; every other
 * subcommand is a client of a running server's HTTP API (cli/). */
#include "cli/cli.h"
#include "serve.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: mcpauth COMMAND [ARGS]\n"
          "\n"
          "  serve      run the server (--dev for embedded defaults)\n"
          "  apply      declare policy from a YAML or JSON file\n"
          "  get        list or show policy objects, keys and settings\n"
          "  delete     delete a policy object\n"
          "  keys       create, activate or retire signing keys\n"
          "  explain    show how a hypothetical token request would be decided\n"
          "  logs       read, download, follow or verify the system log\n"
          "  exporters  stream the system log to SIEMs: add, list, status, test, remove\n"
          "  trace      follow inbound authorization requests live, with what they matched\n"
          "  token      inspect a token: claims, audit event, would it be accepted\n"
          "  dev        development helpers (dev id-token: a subject token)\n"
          "  version    print the version\n"
          "\n"
          "Client commands talk to MCPAUTH_ADDR (default http://127.0.0.1:8080) with the admin\n"
          "token from MCPAUTH_TOKEN or ./var/admin.token. `mcpauth COMMAND --help` for more.\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"serve", serve_main},  {"apply", cli_apply}, {"get", cli_get},
        {"delete", cli_delete}, {"keys", cli_keys},   {"explain", cli_explain},
        {"dev", cli_dev},       {"logs", cli_logs},   {"token", cli_token},
        {"exporters", cli_exporters}, {"trace", cli_trace},
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(cmd, cmds[i].name) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("mcpauth %s\n", MCPAUTH_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "mcpauth: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
