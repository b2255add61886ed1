/* oauth/form.c — form-urlencoded decoding in place. Decoded text is never
 * longer than its encoding, so the body buffer itself holds the result. */
#include "oauth/form.h"

#include <stdio.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long form_unescape(const char *in, size_t n, char *out, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h << 4 | l);
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        if (c == '\0')
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

/* RFC 3629 well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static int utf8_ok(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s;
        int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
        if (n < 0)
            return 0;
        unsigned cp = n == 0 ? c : n == 1 ? c & 0x1f : n == 2 ? c & 0x0f : c & 0x07;
        for (int i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        s += n + 1;
    }
    return 1;
}

int form_parse(char *body, size_t len, struct form *ret, struct err_detail *d)
{
    struct form f = {0};
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && body[end] != '&')
            end++;
        if (end == i) { /* empty pair ("a=1&&b=2"): tolerated, as browsers send it */
            i = end + 1;
            continue;
        }
        size_t eq = i;
        while (eq < end && body[eq] != '=')
            eq++;
        if (f.n == FORM_MAX_PARAMS)
            return err_set(d, ERR_INVAL, "too many parameters (at most %d)", FORM_MAX_PARAMS);
        /* decode name then value in place; each fits where its encoding was */
        char *name = body + i;
        long nl = form_unescape(body + i, eq - i, name, 1);
        if (nl <= 0)
            return err_set(d, ERR_INVAL, nl == 0 ? "a parameter has an empty name"
                                                 : "bad percent-encoding in a parameter name");
        char *value = body + (eq < end ? eq + 1 : end);
        long vl = 0;
        if (eq < end) {
            vl = form_unescape(body + eq + 1, end - eq - 1, value, 1);
        } else {
            value = name + nl; /* the NUL after the name: an empty value */
        }
        if (vl < 0)
            return err_set(d, ERR_INVAL, "bad percent-encoding in '%.64s'", name);
        if (!utf8_ok((const unsigned char *)name) || !utf8_ok((const unsigned char *)value))
            return err_set(d, ERR_INVAL, "'%.64s' is not valid UTF-8", name);
        for (size_t k = 0; k < f.n; k++)
            if (strcmp(f.name[k], name) == 0)
                return err_set(d, ERR_INVAL, "parameter '%.64s' is repeated", name);
        f.name[f.n] = name;
        f.value[f.n] = value;
        f.n++;
        i = end + 1;
    }
    *ret = f;
    return 0;
}

const char *form_get(const struct form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->name[i], name) == 0)
            return f->value[i];
    return NULL;
}
