/* store/query.c — the engine-independent half of store/query.h: the attribute
 * names a filter may use (the one table logs/scim.c parses against and the
 * docs list) and the filter tree's destructor. The destructor is iterative, so
 * freeing a tree never costs stack in proportion to its depth, whoever built it. */
#include "store/query.h"

#include <stdlib.h>

const char *const store_attr_names[ATTR_COUNT_] = {
    [ATTR_ID] = "id",
    [ATTR_SEQ] = "seq",
    [ATTR_TYPE] = "type",
    [ATTR_OUTCOME] = "outcome",
    [ATTR_SEVERITY] = "severity",
    [ATTR_REASON] = "reason",
    [ATTR_USER] = "user",
    [ATTR_CLIENT] = "client",
    [ATTR_SYSTEM] = "system",
    [ATTR_AUDIENCE] = "audience",
    [ATTR_ACCESS_POLICY] = "access_policy",
    [ATTR_TOKEN_ID] = "token.id",
    [ATTR_TOKEN_KEY_ID] = "token.key_id",
    [ATTR_TOKEN_ALG] = "token.alg",
    [ATTR_REQUEST_CLIENT_IP] = "request.client_ip",
    [ATTR_REQUEST_GRANT_TYPE] = "request.grant_type",
    [ATTR_SCOPES_NAME] = "scopes.name",
};

struct store_filter *store_filter_free(struct store_filter *f)
{
    /* Rotate each left child up until the node has none, then free it and go
     * right: every node is visited a bounded number of times, no recursion. */
    while (f) {
        struct store_filter *l = f->left;
        if (l) {
            f->left = l->right;
            l->right = f;
            f = l;
        } else {
            struct store_filter *r = f->right;
            free(f->str);
            free(f);
            f = r;
        }
    }
    return NULL;
}
