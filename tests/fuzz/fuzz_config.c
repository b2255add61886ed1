/* tests/fuzz/fuzz_config.c — libFuzzer driver for the YAML/JSON reader that takes
 * operators' config and policy files and admin uploads: any byte string must parse
 * or fail cleanly, never crash, hang or leak. On success it also walks the tree and
 * asks for every line, so the line tables are exercised with real pointers. */
#include <stddef.h>
#include <stdint.h>

#include "config/yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct config_doc *doc, json_t *node, int depth)
{
    const char *key;
    json_t *v;
    size_t i;
    (void)config_doc_line(doc, node);
    if (depth > 80) /* the parser caps depth at 64: deeper would be a bug */
        __builtin_trap();
    if (json_is_object(node)) {
        json_object_foreach (node, key, v) {
            if (config_doc_key_line(doc, node, key) <= 0)
                __builtin_trap(); /* every parsed key has a line */
            walk(doc, v, depth + 1);
        }
    } else if (json_is_array(node)) {
        json_array_foreach (node, i, v)
            walk(doc, v, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config_doc *doc = NULL;
    struct err_detail d;
    if (config_doc_parse((const char *)data, size, &doc, &d) == 0) {
        walk(doc, config_doc_root(doc), 0);
        doc = config_doc_free(doc);
    }
    return 0;
}
