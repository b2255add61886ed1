/* export/sink_syslog.c — placeholder until the syslog sink lands: open() refuses. */
#include "export/sink.h"

static int open_(const struct exporter_config *cfg, struct sink **ret, struct err_detail *d)
{
    (void)cfg;
    *ret = NULL;
    return err_set(d, ERR_UNSUPPORTED, "the syslog sink is not built into this mcpauth");
}

static int send_(struct sink *s, const struct export_batch *b, struct sink_result *res)
{
    (void)s;
    (void)b;
    (void)res;
    return ERR_UNSUPPORTED;
}

static void close_(struct sink *s)
{
    (void)s;
}

const struct sink_ops sink_syslog_ops = {"syslog", open_, send_, close_};
