/* jose/crypto.c — hashing, constant-time comparison, PBKDF2 secret hashes and
 * the KEK, on OpenSSL 3 EVP only. Invariants: every buffer that held a secret
 * (KEK bytes, plaintext, derived hashes) is wiped with OPENSSL_cleanse before it
 * is freed or goes out of scope, and every failure to open a sealed blob reads
 * as ERR_CORRUPT, so callers cannot tell a wrong key from a wrong aad or a
 * damaged blob. Nothing here keeps mutable state, hence thread safety. */
#include "jose/crypto.h"
#include "core/b64.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define KEK_LEN       32
#define GCM_NONCE_LEN 12
#define GCM_TAG_LEN   16
#define SEALED_PREFIX "v1."

#define PBKDF2_PREFIX   "$pbkdf2-sha512$i="
#define PBKDF2_ITER     210000
#define PBKDF2_ITER_MIN 1000
#define PBKDF2_ITER_MAX 10000000
#define PBKDF2_SALT_LEN 16
#define PBKDF2_HASH_LEN 64

/* b64url_len() as a constant expression, for array sizes. */
#define B64URL_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

struct kek {
    unsigned char key[KEK_LEN];
};

/* SHA-256 and HMAC fetched from the provider once: EVP_sha256() and HMAC() fetch them
 * again on every call, which cost more than hashing a token request's few hundred bytes
 * (the audit chain hashes every event on the writer's thread). */
static EVP_MD *sha256_md;
static EVP_MAC *hmac_mac;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_algs(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!sha256_md || !hmac_mac)
        abort(); /* OpenSSL without SHA-256: nothing here can work */
}

static const EVP_MD *sha256(void)
{
    pthread_once(&fetch_once, fetch_algs);
    return sha256_md;
}

void crypto_sha256(const void *p, size_t n, unsigned char out[SHA256_LEN])
{
    /* Only an allocation failure inside OpenSSL can make this fail. The API has no
     * error path, and a silently zeroed digest would make crypto_streq() call any
     * two strings equal, so failing closed means stopping. */
    if (!EVP_Digest(p, n, out, NULL, sha256(), NULL))
        abort();
}

void crypto_sha256_hex(const void *p, size_t n, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[SHA256_LEN];
    crypto_sha256(p, n, d);
    for (size_t i = 0; i < SHA256_LEN; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * SHA256_LEN] = '\0';
}

void crypto_sha256_b64url(const void *p, size_t n, char out[44])
{
    unsigned char d[SHA256_LEN];
    crypto_sha256(p, n, d);
    b64url_encode(d, sizeof(d), out);
}

int crypto_memeq(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

int crypto_streq(const char *a, const char *b)
{
    assert(a && b);
    unsigned char da[SHA256_LEN], db[SHA256_LEN];
    crypto_sha256(a, strlen(a), da);
    crypto_sha256(b, strlen(b), db);
    return CRYPTO_memcmp(da, db, SHA256_LEN) == 0;
}

void crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t n,
                        unsigned char out[SHA256_LEN])
{
    pthread_once(&fetch_once, fetch_algs);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t len = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_mac);
    if (!ctx || EVP_MAC_init(ctx, key, key_len, params) != 1 ||
        EVP_MAC_update(ctx, data, n) != 1 || EVP_MAC_final(ctx, out, &len, SHA256_LEN) != 1 ||
        len != SHA256_LEN)
        abort(); /* as crypto_sha256: a digest that silently failed would compare equal */
    EVP_MAC_CTX_free(ctx);
}

void crypto_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

/* ---- secret hashes ---- */

static int pbkdf2(const char *secret, const unsigned char *salt, unsigned iter,
                  unsigned char out[PBKDF2_HASH_LEN])
{
    size_t n = strlen(secret);
    if (n > INT_MAX)
        return ERR_CRYPTO;
    if (!PKCS5_PBKDF2_HMAC(secret, (int)n, salt, PBKDF2_SALT_LEN, (int)iter, EVP_sha512(),
                           PBKDF2_HASH_LEN, out))
        return ERR_CRYPTO;
    return 0;
}

/* Parses "$pbkdf2-sha512$i=<iter>$<salt>$<hash>" strictly: a decimal count without
 * sign or leading zero in [PBKDF2_ITER_MIN, PBKDF2_ITER_MAX], a canonical base64url
 * salt of exactly 16 bytes and hash of exactly 64 bytes, nothing after. */
static int hash_parse(const char *s, unsigned *ret_iter, unsigned char ret_salt[PBKDF2_SALT_LEN],
                      unsigned char ret_hash[PBKDF2_HASH_LEN])
{
    unsigned char buf[PBKDF2_HASH_LEN + 1]; /* b64url_decode writes a trailing NUL */
    size_t len;

    if (!s || strncmp(s, PBKDF2_PREFIX, strlen(PBKDF2_PREFIX)) != 0)
        return ERR_INVAL;
    s += strlen(PBKDF2_PREFIX);

    unsigned long iter = 0;
    const char *p = s;
    if (*p < '1' || *p > '9')
        return ERR_INVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        iter = iter * 10 + (unsigned long)(*p - '0');
        if (iter > PBKDF2_ITER_MAX)
            return ERR_INVAL;
    }
    if (iter < PBKDF2_ITER_MIN || *p != '$')
        return ERR_INVAL;
    s = p + 1;

    const char *d = strchr(s, '$');
    if (!d || (size_t)(d - s) != b64url_len(PBKDF2_SALT_LEN))
        return ERR_INVAL;
    if (b64url_decode(s, (size_t)(d - s), buf, &len) < 0 || len != PBKDF2_SALT_LEN)
        return ERR_INVAL;
    memcpy(ret_salt, buf, PBKDF2_SALT_LEN);
    s = d + 1;

    if (strlen(s) != b64url_len(PBKDF2_HASH_LEN))
        return ERR_INVAL;
    if (b64url_decode(s, strlen(s), buf, &len) < 0 || len != PBKDF2_HASH_LEN)
        return ERR_INVAL;
    memcpy(ret_hash, buf, PBKDF2_HASH_LEN);
    *ret_iter = (unsigned)iter;
    return 0;
}

int secret_hash(const char *secret, char **ret)
{
    assert(secret && ret);
    unsigned char salt[PBKDF2_SALT_LEN], hash[PBKDF2_HASH_LEN];
    char salt64[B64URL_LEN(PBKDF2_SALT_LEN) + 1], hash64[B64URL_LEN(PBKDF2_HASH_LEN) + 1];
    int r;

    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return ERR_CRYPTO;
    r = pbkdf2(secret, salt, PBKDF2_ITER, hash);
    if (r < 0)
        goto out;
    b64url_encode(salt, sizeof(salt), salt64);
    b64url_encode(hash, sizeof(hash), hash64);

    char *s;
    if (asprintf(&s, PBKDF2_PREFIX "%d$%s$%s", PBKDF2_ITER, salt64, hash64) < 0) {
        r = ERR_NOMEM;
        goto out;
    }
    *ret = s;
    r = 0;
out:
    OPENSSL_cleanse(hash, sizeof(hash));
    OPENSSL_cleanse(hash64, sizeof(hash64));
    return r;
}

int secret_verify(const char *secret, const char *hash)
{
    assert(secret);
    unsigned char salt[PBKDF2_SALT_LEN], want[PBKDF2_HASH_LEN], got[PBKDF2_HASH_LEN];
    unsigned iter;
    int r = hash_parse(hash, &iter, salt, want);
    if (r < 0)
        return r;
    if (strlen(secret) > INT_MAX)
        r = ERR_UNAUTH; /* longer than any secret secret_hash() accepts */
    else if ((r = pbkdf2(secret, salt, iter, got)) == 0 &&
             CRYPTO_memcmp(want, got, PBKDF2_HASH_LEN) != 0)
        r = ERR_UNAUTH;
    OPENSSL_cleanse(want, sizeof(want));
    OPENSSL_cleanse(got, sizeof(got));
    return r;
}

int secret_hash_valid(const char *s)
{
    unsigned char salt[PBKDF2_SALT_LEN], hash[PBKDF2_HASH_LEN];
    unsigned iter;
    int ok = hash_parse(s, &iter, salt, hash) == 0;
    OPENSSL_cleanse(hash, sizeof(hash));
    return ok;
}

/* ---- key-encryption key ---- */

int kek_from_bytes(const unsigned char key[32], struct kek **ret)
{
    assert(key && ret);
    struct kek *k = malloc(sizeof(*k));
    if (!k)
        return ERR_NOMEM;
    memcpy(k->key, key, KEK_LEN);
    *ret = k;
    return 0;
}

struct kek *kek_free(struct kek *k)
{
    if (k) {
        OPENSSL_cleanse(k, sizeof(*k));
        free(k);
    }
    return NULL;
}

/* The directory entry of a new KEK must survive a crash: keys sealed under it
 * are useless without it. */
static int fsync_parent(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return ERR_NOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return ERR_IO;
    int r = fsync(fd) < 0 ? ERR_IO : 0;
    close(fd);
    return r;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Creates `path` (which must not exist) holding 32 fresh random bytes, mode 0600.
 * 0 when created, 1 when another process created it first, else a negative ERR_*. */
static int kek_create(const char *path, struct err_detail *d)
{
    unsigned char key[KEK_LEN];
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return 1;
        if (errno == ENOENT)
            return err_set(d, ERR_IO, "cannot create KEK file %s: its directory does not exist",
                           path);
        return err_set(d, ERR_IO, "cannot create KEK file %s: %s", path, strerror(errno));
    }
    int r = 0;
    if (RAND_bytes(key, sizeof(key)) != 1) {
        r = err_set(d, ERR_CRYPTO, "cannot create KEK file %s: no randomness", path);
        goto fail;
    }
    if (write_all(fd, key, sizeof(key)) < 0 || fsync(fd) < 0) {
        r = err_set(d, ERR_IO, "cannot write KEK file %s: %s", path, strerror(errno));
        goto fail;
    }
    OPENSSL_cleanse(key, sizeof(key));
    if (close(fd) < 0) {
        fd = -1;
        r = err_set(d, ERR_IO, "cannot write KEK file %s: %s", path, strerror(errno));
        goto fail;
    }
    if (fsync_parent(path) < 0)
        return err_set(d, ERR_IO, "cannot sync the directory of KEK file %s", path);
    return 0;

fail:
    /* Leave no half-written KEK behind: nothing was ever sealed under it. */
    OPENSSL_cleanse(key, sizeof(key));
    if (fd >= 0)
        close(fd);
    unlink(path);
    return r;
}

static int kek_read(const char *path, struct kek **ret, struct err_detail *d)
{
    unsigned char buf[KEK_LEN + 1]; /* one more, to notice a longer file */
    size_t n = 0;
    struct stat st;
    int r;

    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            return err_set(d, ERR_NOTFOUND, "KEK file %s does not exist", path);
        return err_set(d, ERR_IO, "cannot open KEK file %s: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) < 0) {
        r = err_set(d, ERR_IO, "cannot stat KEK file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = err_set(d, ERR_INVAL, "KEK file %s is not a regular file", path);
        goto out;
    }
    if (st.st_mode & 077) {
        r = err_set(d, ERR_INVAL, "KEK file %s must not be readable by group or others (chmod 600)",
                    path);
        goto out;
    }
    while (n < sizeof(buf)) {
        ssize_t got = read(fd, buf + n, sizeof(buf) - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            r = err_set(d, ERR_IO, "cannot read KEK file %s: %s", path, strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (n != KEK_LEN) {
        r = err_set(d, ERR_CORRUPT, "KEK file %s must hold exactly %d bytes, not %jd", path,
                    KEK_LEN, (intmax_t)st.st_size);
        goto out;
    }
    r = kek_from_bytes(buf, ret);
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    close(fd);
    return r;
}

int kek_load(const char *path, int create, struct kek **ret, struct err_detail *d)
{
    assert(path && ret);
    int r = kek_read(path, ret, d);
    if (r != ERR_NOTFOUND || !create)
        return r;
    r = kek_create(path, d);
    if (r < 0)
        return r;
    return kek_read(path, ret, d); /* ours, or the one a concurrent process just wrote */
}

int kek_seal(const struct kek *k, const char *aad, const void *pt, size_t n, char **ret)
{
    assert(k && aad && (pt || !n) && ret);
    size_t aad_len = strlen(aad);
    if (n > INT_MAX - GCM_NONCE_LEN - GCM_TAG_LEN || aad_len > INT_MAX)
        return ERR_CRYPTO;

    size_t raw_len = GCM_NONCE_LEN + n + GCM_TAG_LEN;
    unsigned char *raw = malloc(raw_len);
    char *out = malloc(strlen(SEALED_PREFIX) + b64url_len(raw_len) + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int r = ERR_NOMEM, len;
    if (!raw || !out || !ctx)
        goto out;

    /* raw = nonce || ciphertext || tag, the layout kek_open() expects */
    unsigned char *nonce = raw, *ct = raw + GCM_NONCE_LEN, *tag = ct + n;
    r = ERR_CRYPTO;
    if (RAND_bytes(nonce, GCM_NONCE_LEN) != 1)
        goto out;
    if (!EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->key, nonce))
        goto out;
    if (aad_len && !EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)aad_len))
        goto out;
    if (n && !EVP_EncryptUpdate(ctx, ct, &len, pt, (int)n))
        goto out;
    if (!EVP_EncryptFinal_ex(ctx, ct + n, &len))
        goto out;
    if (!EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, tag))
        goto out;

    memcpy(out, SEALED_PREFIX, strlen(SEALED_PREFIX));
    b64url_encode(raw, raw_len, out + strlen(SEALED_PREFIX));
    *ret = out;
    out = NULL;
    r = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    free(out);
    return r;
}

int kek_open(const struct kek *k, const char *aad, const char *sealed, unsigned char **ret,
             size_t *ret_len)
{
    assert(k && aad && ret && ret_len);
    size_t prefix = strlen(SEALED_PREFIX);
    if (!sealed || strncmp(sealed, SEALED_PREFIX, prefix) != 0)
        return ERR_CORRUPT;
    const char *b64 = sealed + prefix;
    size_t b64_len = strlen(b64), aad_len = strlen(aad);
    if (b64_len < b64url_len(GCM_NONCE_LEN + GCM_TAG_LEN) || b64_len > INT_MAX / 4 * 3 ||
        aad_len > INT_MAX)
        return ERR_CORRUPT;

    unsigned char *raw = malloc(b64_len / 4 * 3 + 3), *nonce, *ct, *tag, *pt = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    size_t raw_len = 0, n = 0;
    int r = ERR_NOMEM, len;
    if (!raw)
        goto out;
    r = ERR_CORRUPT;
    if (b64url_decode(b64, b64_len, raw, &raw_len) < 0 || raw_len < GCM_NONCE_LEN + GCM_TAG_LEN)
        goto out;

    n = raw_len - GCM_NONCE_LEN - GCM_TAG_LEN;
    nonce = raw;
    ct = raw + GCM_NONCE_LEN;
    tag = ct + n;
    r = ERR_NOMEM;
    pt = malloc(n ? n : 1);
    ctx = EVP_CIPHER_CTX_new();
    if (!pt || !ctx)
        goto out;
    r = ERR_CORRUPT;
    if (!EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->key, nonce))
        goto out;
    if (aad_len && !EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)aad_len))
        goto out;
    if (n && !EVP_DecryptUpdate(ctx, pt, &len, ct, (int)n))
        goto out;
    if (!EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, tag))
        goto out;
    if (EVP_DecryptFinal_ex(ctx, pt + n, &len) <= 0)
        goto out; /* wrong key, wrong aad or altered blob */

    *ret = pt;
    *ret_len = n;
    pt = NULL;
    r = 0;
out:
    if (pt) {
        OPENSSL_cleanse(pt, n);
        free(pt);
    }
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    return r;
}

void kek_derive(const struct kek *k, const char *label, unsigned char out[32])
{
    crypto_hmac_sha256(k->key, sizeof(k->key), label, strlen(label), out);
}

void crypto_sha256_2(const void *a, size_t na, const void *b, size_t nb, char out[44])
{
    unsigned char d[SHA256_LEN];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, a, na) != 1 || EVP_DigestUpdate(ctx, b, nb) != 1 ||
        EVP_DigestFinal_ex(ctx, d, &len) != 1)
        abort(); /* as crypto_sha256: a failed digest must never pass as a hash */
    EVP_MD_CTX_free(ctx);
    b64url_encode(d, SHA256_LEN, out);
}
