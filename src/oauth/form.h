/* oauth/form.h — application/x-www-form-urlencoded bodies (RFC 6749 §3.2,
 * WHATWG URL form decoding) for the OAuth endpoints, decoded in place.
 *
 * Strict: every name and value is percent-decoded ('+' is a space); a bad
 * escape, a NUL, invalid UTF-8, an empty name, more than FORM_MAX_PARAMS
 * parameters, or a parameter given twice (RFC 6749 §3.2: "parameters MUST
 * NOT be included more than once") is an error naming the parameter. */
#pragma once
#include <stddef.h>

#include "core/err.h"

#define FORM_MAX_PARAMS 32

struct form {
    size_t n;
    const char *name[FORM_MAX_PARAMS];  /* point into the decoded body */
    const char *value[FORM_MAX_PARAMS];
};

/* Decodes `body` (len bytes, writable, NUL-terminated at body[len]) in place.
 * Returns 0 and fills *ret, or ERR_INVAL with d->msg such as
 * "parameter 'scope' is repeated" or "bad percent-encoding in 'resource'". */
int form_parse(char *body, size_t len, struct form *ret, struct err_detail *d);
/* The value of `name`, or NULL. */
const char *form_get(const struct form *f, const char *name);
/* Percent-decodes a string of n bytes into out (size >= n+1), '+' as space when
 * `plus` is set. Returns the decoded length, or -1 on a bad escape or NUL byte. */
long form_unescape(const char *in, size_t n, char *out, int plus);
