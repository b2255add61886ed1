/* jose/keys.h — signing keys: generation for every JOSE algorithm mcpauth
 * signs with, the public JWK, and sealing the private key under the KEK for
 * storage. A struct jose_key is immutable once made and may be shared between
 * threads (signing in a later module keeps per-thread EVP contexts). */
#pragma once
#include <jansson.h>

#include "core/err.h"
#include "jose/crypto.h"

enum jose_alg { JOSE_ES256, JOSE_ES384, JOSE_RS256, JOSE_PS256, JOSE_EDDSA, JOSE_ALG_COUNT };

/* Parses a JWS "alg" name ("ES256", "ES384", "RS256", "PS256", "EdDSA"). Anything else,
 * "none" and every HMAC algorithm included, is ERR_UNSUPPORTED. */
int jose_alg_parse(const char *name, enum jose_alg *ret);
const char *jose_alg_name(enum jose_alg alg);

struct jose_key;

/* Generates a new private key: P-256, P-384, RSA-3072 (RS256, PS256) or Ed25519.
 * `kid` is copied. Returns 0 and an owned *ret, or ERR_CRYPTO/ERR_NOMEM. */
int jose_key_generate(enum jose_alg alg, const char *kid, struct jose_key **ret);
/* Seals the private key (PKCS#8 DER) under `kek` with the kid as aad.
 * Returns 0 and an owned string *ret (free()). */
int jose_key_seal(const struct jose_key *key, const struct kek *kek, char **ret);
/* Opens a sealed key; checks it is of the type `alg` needs.
 * ERR_CORRUPT when the blob does not open or holds another key type. */
int jose_key_open(enum jose_alg alg, const char *kid, const char *sealed, const struct kek *kek,
                  struct jose_key **ret);
/* A new JSON object: the public JWK with "kty", curve/modulus members, "kid", "alg",
 * "use": "sig". NULL on allocation failure. */
json_t *jose_key_public_jwk(const struct jose_key *key);
const char *jose_key_kid(const struct jose_key *key);
enum jose_alg jose_key_alg(const struct jose_key *key);
struct jose_key *jose_key_free(struct jose_key *key); /* NULL-safe */
