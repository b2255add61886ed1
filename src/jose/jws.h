/* jose/jws.h — compact JWS (RFC 7515) for JWTs: signing with mcpauth's keys,
 * parsing untrusted compact tokens, importing public JWKs and verifying.
 *
 * Parsing is strict and bounded: at most JWS_MAX_TOKEN bytes, exactly three
 * base64url segments (no padding), header and payload JSON objects with no
 * duplicate members, "alg" present and one of ES256, ES384, RS256, PS256,
 * EdDSA ("none" and every HMAC algorithm are refused before any key is
 * looked at), "crit" refused. ECDSA signatures are the fixed-size R||S of
 * RFC 7518 §3.4 (never DER); PS256 uses a salt of the hash length.
 * All functions are thread-safe; a struct jose_pubkey is immutable. */
#pragma once
#include <jansson.h>
#include <stddef.h>

#include "core/err.h"
#include "jose/keys.h"

#define JWS_MAX_TOKEN 16384

/* Signs header.payload with `key`. `header` gets "alg" and "kid" set from the key
 * (the caller supplies "typ"); both objects are serialised compactly. Returns 0 and an
 * owned compact JWS in *ret (free()), or ERR_CRYPTO/ERR_NOMEM. */
int jws_sign(const struct jose_key *key, json_t *header, const json_t *payload, char **ret);

/* A parsed, not yet verified compact JWS. */
struct jws {
    json_t *header;  /* owned */
    json_t *payload; /* owned; ERR_INVAL at parse time if not an object */
    enum jose_alg alg;
    const char *kid; /* borrowed from header; NULL when absent */
    const char *typ; /* borrowed from header; NULL when absent */
    char *signing_input; /* owned: "b64(header).b64(payload)" */
    size_t signing_input_len;
    unsigned char *sig; /* owned, decoded signature */
    size_t sig_len;
};

/* Parses `len` bytes. Returns 0 and fills *ret (release with jws_done), or ERR_INVAL
 * with a short reason in d ("not a JWT: expected three segments", "alg none is not
 * accepted", "header is not valid JSON", ...), or ERR_TOOBIG. */
int jws_parse(const char *token, size_t len, struct jws *ret, struct err_detail *d);
void jws_done(struct jws *jws);

/* A public verification key from a JWK (kty EC P-256/P-384, RSA >= 2048 bits, OKP
 * Ed25519). JWKs with private members are refused. */
struct jose_pubkey;
int jose_pubkey_from_jwk(const json_t *jwk, struct jose_pubkey **ret, struct err_detail *d);
struct jose_pubkey *jose_pubkey_free(struct jose_pubkey *k); /* NULL-safe */
/* The public half of a private key, for verifying mcpauth's own tokens. */
int jose_pubkey_from_key(const struct jose_key *key, struct jose_pubkey **ret);
const char *jose_pubkey_kid(const struct jose_pubkey *k); /* NULL when the JWK had none */
/* The JWK's "alg" if it had one, else -1. */
int jose_pubkey_alg(const struct jose_pubkey *k);

/* Verifies the signature of `jws` with `key`. The key's type must fit jws->alg (an EC
 * P-256 key verifies only ES256, ...), and when the JWK named an "alg" it must equal
 * jws->alg. Returns 0 when the signature is valid, ERR_UNAUTH when not, ERR_INVAL when
 * the key cannot verify this algorithm. */
int jws_verify(const struct jws *jws, const struct jose_pubkey *key);

/* Picks the key of a JWK Set ({"keys": [...]}) for `jws`: by kid when the token has
 * one, else the only key whose type fits the algorithm. Returns 0 and an owned key,
 * ERR_NOTFOUND when none fits. */
int jose_jwks_select(const json_t *jwks, const struct jws *jws, struct jose_pubkey **ret,
                     struct err_detail *d);
