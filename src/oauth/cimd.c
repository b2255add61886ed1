/* oauth/cimd.c — client ID metadata documents (placeholder until the fetch lands). */
#include "oauth/oauth_priv.h"

#include <stdio.h>
#include <stdlib.h>

struct cimd_cache {
    int unused;
};

int cimd_cache_new(struct cimd_cache **ret)
{
    *ret = calloc(1, sizeof(**ret));
    return *ret ? 0 : ERR_NOMEM;
}

struct cimd_cache *cimd_cache_free(struct cimd_cache *c)
{
    free(c);
    return NULL;
}

int cimd_client(struct oauth *o, const char *url, struct policy_client *ret, json_t **ret_doc,
                char *why, size_t n)
{
    (void)o;
    (void)ret;
    (void)ret_doc;
    snprintf(why, n, "client ID metadata documents are not supported yet (%.200s)", url);
    return ERR_UNSUPPORTED;
}
