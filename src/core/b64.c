/* core/b64.c — base64url (no padding) and standard base64. Strict decoding:
 * unknown characters, bad lengths and non-zero padding bits are errors, so a
 * value has exactly one encoding (JWS signatures depend on that). */
#include "core/b64.h"
#include "core/err.h"

#include <stdint.h>
#include <string.h>

static const char URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t b64std_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

static size_t encode(const unsigned char *in, size_t n, char *out, const char *alpha, int pad)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        out[o++] = alpha[v >> 6 & 63];
        out[o++] = alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        out[o++] = alpha[v >> 6 & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

void b64url_encode(const void *in, size_t n, char *out)
{
    encode(in, n, out, URL, 0);
}

void b64std_encode(const void *in, size_t n, char *out)
{
    encode(in, n, out, STD, 1);
}

static int val(unsigned char c, int url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (url ? c == '-' : c == '+')
        return 62;
    if (url ? c == '_' : c == '/')
        return 63;
    return -1;
}

static int decode(const char *in, size_t n, unsigned char *out, size_t *ret_len, int url)
{
    if (!url) {
        if (n % 4)
            return ERR_INVAL;
        if (n && in[n - 1] == '=')
            n--;
        if (n && in[n - 1] == '=')
            n--;
    }
    if (n % 4 == 1)
        return ERR_INVAL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = val((unsigned char)in[i], url);
        if (v < 0)
            return ERR_INVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    if (bits && (acc & ((1u << bits) - 1)))
        return ERR_INVAL; /* non-canonical trailing bits */
    out[o] = 0;
    *ret_len = o;
    return 0;
}

int b64url_decode(const char *in, size_t n, unsigned char *out, size_t *ret_len)
{
    return decode(in, n, out, ret_len, 1);
}

int b64std_decode(const char *in, size_t n, unsigned char *out, size_t *ret_len)
{
    return decode(in, n, out, ret_len, 0);
}
