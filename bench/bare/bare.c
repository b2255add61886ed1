/* bare.c — the "bare floor" of DESIGN.md (Performance model): the least a
 * token endpoint can do on libmicrohttpd. POST /oauth/token reads the form,
 * checks grant_type=client_credentials, signs a fixed small ES256 JWT with a
 * key generated at start and answers the token JSON. No client auth, no
 * policy, no audit. mcpauth's client-credentials figure is read against it.
 *
 *   cc -O2 bench/bare/bare.c -o build-bench/bare -lmicrohttpd -lcrypto
 *   build-bench/bare PORT          (listens on 127.0.0.1:PORT until SIGINT/SIGTERM)
 */
#include <microhttpd.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX 8192 /* a client-credentials form is ~120 bytes */

static EVP_PKEY *key;
static char signing_input[512]; /* base64url(header) "." base64url(payload) */
static size_t signing_input_len;
static __thread EVP_MD_CTX *tmpl; /* per-thread context, initialised once with the key */

static size_t b64url(const unsigned char *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18 & 63], out[o++] = a[v >> 12 & 63];
        out[o++] = a[v >> 6 & 63], out[o++] = a[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0);
        out[o++] = a[v >> 18 & 63], out[o++] = a[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = a[v >> 6 & 63];
    }
    out[o] = 0;
    return o;
}

/* Writes the compact JWS into out; returns its length, 0 on failure. */
static size_t sign_jwt(char *out)
{
    unsigned char der[80], raw[64];
    size_t derlen = sizeof(der);
    if (!tmpl) {
        tmpl = EVP_MD_CTX_new();
        if (!tmpl || EVP_DigestSignInit(tmpl, NULL, EVP_sha256(), NULL, key) != 1)
            return 0;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_MD_CTX_copy_ex(ctx, tmpl) != 1 ||
        EVP_DigestSign(ctx, der, &derlen, (const unsigned char *)signing_input,
                       signing_input_len) != 1) {
        EVP_MD_CTX_free(ctx);
        return 0;
    }
    EVP_MD_CTX_free(ctx);
    /* DER ECDSA-Sig-Value -> JWS r||s (RFC 7518 §3.4) */
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    if (!sig)
        return 0;
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32);
    ECDSA_SIG_free(sig);
    memcpy(out, signing_input, signing_input_len);
    out[signing_input_len] = '.';
    return signing_input_len + 1 + b64url(raw, 64, out + signing_input_len + 1);
}

struct req {
    size_t len;
    char body[BODY_MAX + 1];
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *json)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *data_size, void **con_cls)
{
    (void)cls, (void)version;
    if (strcmp(url, "/healthz") == 0)
        return reply(c, MHD_HTTP_OK, "{\"status\":\"ok\"}");
    if (strcmp(url, "/oauth/token") != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, "{\"error\":\"not_found\"}");
    if (strcmp(method, "POST") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "{\"error\":\"invalid_request\"}");
    struct req *q = *con_cls;
    if (!q) { /* first call: headers only */
        if (!(q = malloc(sizeof(*q))))
            return MHD_NO;
        q->len = 0;
        *con_cls = q;
        return MHD_YES;
    }
    if (*data_size) { /* body chunk */
        if (q->len + *data_size > BODY_MAX)
            return MHD_NO;
        memcpy(q->body + q->len, data, *data_size);
        q->len += *data_size;
        *data_size = 0;
        return MHD_YES;
    }
    q->body[q->len] = 0; /* whole body in: the minimal form parse */
    int cc = 0;
    for (char *s = q->body; s; s = strchr(s, '&'), s = s ? s + 1 : NULL)
        if (strncmp(s, "grant_type=client_credentials", 29) == 0 && (s[29] == '&' || !s[29]))
            cc = 1;
    if (!cc)
        return reply(c, MHD_HTTP_BAD_REQUEST, "{\"error\":\"unsupported_grant_type\"}");
    char jwt[768], out[1024];
    if (!sign_jwt(jwt))
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "{\"error\":\"server_error\"}");
    snprintf(out, sizeof(out),
             "{\"access_token\":\"%s\",\"token_type\":\"Bearer\",\"expires_in\":300,"
             "\"scope\":\"bench:read\"}",
             jwt);
    return reply(c, MHD_HTTP_OK, out);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: bare PORT\n");
        return 2;
    }
    if (!(key = EVP_EC_gen("P-256"))) {
        fprintf(stderr, "bare: cannot generate a P-256 key\n");
        return 1;
    }
    static const char hdr[] = "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"bare\"}";
    static const char pl[] =
        "{\"iss\":\"http://127.0.0.1\",\"sub\":\"client:bench-cc\",\"aud\":\"http://127.0.0.1/mcp/"
        "bench\",\"client_id\":\"bench-cc\",\"jti\":\"00000000-0000-4000-8000-000000000000\","
        "\"iat\":1700000000,\"exp\":1700000300,\"scope\":\"bench:read\"}";
    signing_input_len = b64url((const unsigned char *)hdr, sizeof(hdr) - 1, signing_input);
    signing_input[signing_input_len++] = '.';
    signing_input_len += b64url((const unsigned char *)pl, sizeof(pl) - 1,
                                signing_input + signing_input_len);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* MHD's threads inherit the mask */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handler, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, 2u,
        MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "bare: cannot listen on 127.0.0.1:%s\n", argv[1]);
        return 1;
    }
    printf("bare listening on http://127.0.0.1:%s; tokens verify with:\n", argv[1]);
    PEM_write_PUBKEY(stdout, key);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    EVP_PKEY_free(key);
    return 0;
}
