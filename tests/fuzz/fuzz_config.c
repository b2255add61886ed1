/* tests/fuzz/fuzz_config.c — libFuzzer driver for the YAML/JSON reader that takes
 * operators' config and policy files and admin uploads: any byte string must parse
 * or fail cleanly, never crash, hang or leak. On success it also walks the tree and
 * asks for every line, so the line tables are exercised with real pointers, and runs
 * the policy validator on every object of every section, as `apply` would (client
 * secrets are skipped: hashing them costs 0.1 s and tests nothing about parsing). */
#include <stddef.h>
#include <stdint.h>

#include "config/yaml.h"
#include "policy/policy.h"

#include <stdlib.h>

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
        json_object_foreach(node, key, v)
        {
            if (config_doc_key_line(doc, node, key) <= 0)
                __builtin_trap(); /* every parsed key has a line */
            walk(doc, v, depth + 1);
        }
    } else if (json_is_array(node)) {
        json_array_foreach(node, i, v) walk(doc, v, depth + 1);
    }
}

static void validate(const json_t *root)
{
    static const enum store_kind kinds[] = {STORE_SYSTEMS, STORE_ACCESS_POLICIES, STORE_GRANTS,
                                            STORE_TRUSTED_ISSUERS, STORE_CLIENTS};
    if (!json_is_object(root))
        return;
    json_t *settings = json_object_get(root, "settings");
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        const struct policy_kind_info *ki = policy_kind_info(kinds[k]);
        const json_t *list = json_object_get(root, ki->section);
        size_t i;
        const json_t *item;
        json_array_foreach(list, i, item)
        {
            if (kinds[k] == STORE_CLIENTS && json_object_get(item, "secret"))
                continue;
            json_t *out = NULL;
            char *id = NULL;
            struct policy_error e;
            if (policy_normalize(kinds[k], item, NULL, "x", &out, &id, &e) == 0) {
                json_t *pub = policy_public_view(kinds[k], out);
                json_decref(pub);
                json_decref(out);
                free(id);
            }
        }
    }
    if (settings) {
        json_t *out = NULL;
        char *id = NULL;
        struct policy_error e;
        if (policy_normalize(STORE_SETTINGS, settings, NULL, "settings", &out, &id, &e) == 0) {
            json_decref(out);
            free(id);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config_doc *doc = NULL;
    struct err_detail d;
    if (config_doc_parse((const char *)data, size, &doc, &d) == 0) {
        walk(doc, config_doc_root(doc), 0);
        validate(config_doc_root(doc));
        doc = config_doc_free(doc);
    }
    return 0;
}
