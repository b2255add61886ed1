/* jose/crypto.h — the cryptographic primitives the rest of mcpauth needs
 * outside JWS itself, all on OpenSSL 3 (the only folder that touches it):
 * SHA-256, constant-time comparison, salted secret hashes, and the
 * key-encryption key (KEK) that seals private keys at rest.
 * All functions are thread-safe. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define SHA256_LEN 32

void crypto_sha256(const void *p, size_t n, unsigned char out[SHA256_LEN]);
/* SHA-256 as lowercase hex (65 bytes with NUL) and as base64url (44 bytes with NUL). */
void crypto_sha256_hex(const void *p, size_t n, char out[65]);
void crypto_sha256_b64url(const void *p, size_t n, char out[44]);
/* base64url SHA-256 of the concatenation a || b (44 bytes with NUL). */
void crypto_sha256_2(const void *a, size_t na, const void *b, size_t nb, char out[44]);
/* Constant-time equality of two buffers of the same length: 1 equal, 0 not. */
int crypto_memeq(const void *a, const void *b, size_t n);
/* base64url SHA-256 of the concatenation a || b (44 bytes with NUL). */
void crypto_sha256_2(const void *a, size_t na, const void *b, size_t nb, char out[44]);
/* Constant-time equality of two strings of possibly different lengths (compares their
 * SHA-256 digests, so timing reveals neither content nor length). 1 equal, 0 not. */
int crypto_streq(const char *a, const char *b);
/* HMAC-SHA256 of data under key. */
void crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t n,
                        unsigned char out[SHA256_LEN]);
/* Wipes n bytes (OPENSSL_cleanse). */
void crypto_wipe(void *p, size_t n);

/* Salted secret hashes: "$pbkdf2-sha512$i=210000$<salt b64url>$<hash b64url>"
 * (PBKDF2-HMAC-SHA512, 16-byte random salt, 64-byte output; Keycloak's default).
 * secret_hash: 0 and an owned *ret (free()), or ERR_NOMEM/ERR_CRYPTO.
 * secret_verify: 0 when `secret` matches, ERR_UNAUTH when not, ERR_INVAL when `hash` is
 * not in the format above. Comparison is constant-time. */
int secret_hash(const char *secret, char **ret);
int secret_verify(const char *secret, const char *hash);
/* 1 when s is a well-formed hash in the format above, else 0. */
int secret_hash_valid(const char *s);

/* The key-encryption key: 32 random bytes kept in a file outside the
 * database (mode 0600). Sealing is AES-256-GCM with a random 96-bit nonce and
 * the caller's `aad` (the key id) bound in, so a sealed blob cannot be moved to
 * another row. Sealed form: "v1." + base64url(nonce || ciphertext || tag). */
struct kek;

/* Loads the KEK from `path`; when the file does not exist and `create` is set,
 * writes a new one with mode 0600 (O_EXCL). Refuses a file readable by group or
 * others (ERR_INVAL with a message). Errors: ERR_NOTFOUND, ERR_INVAL, ERR_IO. */
int kek_load(const char *path, int create, struct kek **ret, struct err_detail *d);
/* For tests: a KEK from 32 given bytes. */
int kek_from_bytes(const unsigned char key[32], struct kek **ret);
struct kek *kek_free(struct kek *k); /* NULL-safe, wipes */
/* A 32-byte key for another purpose (`label`), derived from the KEK with HMAC-SHA256,
 * so it survives restarts without being stored anywhere (e.g. log cursor MACs). */
void kek_derive(const struct kek *k, const char *label, unsigned char out[32]);
/* Returns 0 and an owned NUL-terminated *ret (free()), or ERR_CRYPTO/ERR_NOMEM. */
int kek_seal(const struct kek *k, const char *aad, const void *pt, size_t n, char **ret);
/* Returns 0 and an owned *ret of *ret_len bytes (wipe and free() it), or ERR_CORRUPT when
 * the blob is malformed, was sealed under another KEK or with another aad. */
int kek_open(const struct kek *k, const char *aad, const char *sealed, unsigned char **ret,
             size_t *ret_len);
