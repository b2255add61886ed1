/* export/sink.c — the sink registry. */
#include "export/sink.h"

#include <string.h>

const struct sink_ops *sink_ops_for(const char *type)
{
    static const struct sink_ops *const all[] = {&sink_syslog_ops, &sink_http_ops, &sink_kafka_ops,
                                                 &sink_nats_ops, &sink_file_ops};
    for (size_t i = 0; type && i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->type, type) == 0)
            return all[i];
    return NULL;
}
