/* core/b64.h — base64url without padding (RFC 4648 §5), as JOSE uses it,
 * and standard base64 for the few places that need it. Decoders reject any
 * character outside the alphabet and non-canonical trailing bits. */
#pragma once
#include <stddef.h>

/* Encoded length (without NUL) of n bytes. */
size_t b64url_len(size_t n);
/* Writes b64url_len(n) chars plus NUL into out (size >= b64url_len(n)+1). */
void b64url_encode(const void *in, size_t n, char *out);
/* Decodes into out (size >= n*3/4+1). Returns 0 and *ret_len, or ERR_INVAL. */
int b64url_decode(const char *in, size_t n, unsigned char *out, size_t *ret_len);
/* Standard base64 with padding, for storage of binary blobs. */
size_t b64std_len(size_t n);
void b64std_encode(const void *in, size_t n, char *out);
int b64std_decode(const char *in, size_t n, unsigned char *out, size_t *ret_len);
