/* oauth/jwks_fetch.h — remote JWK Sets (a trusted issuer's or a client's
 * jwks_uri) fetched with libcurl and cached.
 *
 * A set is fetched on first use, kept for JWKS_TTL seconds, and fetched again
 * early when a token names a kid the cached set lacks — at most once per
 * JWKS_COOLDOWN seconds per URL, so a flood of tokens with made-up kids cannot
 * turn mcpauth into a request amplifier. Bounded everywhere: JWKS_MAX_BYTES per
 * response, JWKS_TIMEOUT_MS per fetch, JWKS_MAX_URLS cached sets (least
 * recently used evicted), redirects not followed, http:// only to loopback
 * hosts (https:// otherwise). Thread-safe; a fetch happens outside the cache
 * lock and concurrent callers for one URL share the result of one fetch. */
#pragma once
#include <jansson.h>

#include "core/err.h"

#define JWKS_TTL 600
#define JWKS_COOLDOWN 30
#define JWKS_MAX_BYTES (256 * 1024)
#define JWKS_TIMEOUT_MS 5000
#define JWKS_MAX_URLS 256

struct jwks_cache;

int jwks_cache_new(struct jwks_cache **ret);
struct jwks_cache *jwks_cache_free(struct jwks_cache *c); /* NULL-safe */

/* Returns 0 and a new reference to the JWK Set for `url` ({"keys": [...]}), fetching
 * it when absent or stale, or when `kid` is given and not in the cached set (subject to
 * the cooldown). Errors: ERR_IO (unreachable, timeout, HTTP status not 200; d says
 * which), ERR_INVAL (not a JWK Set, http:// to a non-loopback host), ERR_TOOBIG. */
int jwks_cache_get(struct jwks_cache *c, const char *url, const char *kid, json_t **ret,
                   struct err_detail *d);
