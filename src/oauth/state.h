/* oauth/state.h — the small amount of memory the OAuth endpoints keep between
 * requests: a cache of verified client secrets and sets of token ids (jti)
 * with expiry, used to refuse replayed assertions and revoked tokens.
 * All thread-safe; all bounded. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Verified client secrets, kept as HMAC-SHA256 digests under a per-process random
 * key (never the secret itself), so the 210,000-iteration PBKDF2 runs once per
 * client and secret rather than once per request. A changed secret_hash misses. */
struct secret_cache;
int secret_cache_new(size_t slots, struct secret_cache **ret);
struct secret_cache *secret_cache_free(struct secret_cache *c);
/* 0 when `secret` matches `hash` (from the cache or by secret_verify), ERR_UNAUTH when
 * not, ERR_INVAL for a malformed hash. Constant-time comparisons throughout. */
int secret_cache_verify(struct secret_cache *c, const char *client_id, const char *hash,
                        const char *secret);

/* A set of token ids, each remembered until its expiry (unix seconds). */
struct jti_set;
int jti_set_new(size_t max, struct jti_set **ret);
struct jti_set *jti_set_free(struct jti_set *s);
/* Adds jti until exp. Returns 0, ERR_EXISTS if it is already there (a replay),
 * ERR_IO when the set is full of unexpired ids (fail closed). */
int jti_set_add(struct jti_set *s, const char *jti, int64_t exp, int64_t now);
/* 1 when jti is in the set and not expired. */
int jti_set_has(struct jti_set *s, const char *jti, int64_t now);
size_t jti_set_len(struct jti_set *s);
