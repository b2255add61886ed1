/* core/err.c — lookups into the ERR_TABLE X-macro. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>

struct err_row {
    const char *code;
    int http;
    const char *oauth;
    const char *msg;
};

static const struct err_row rows[ERR_COUNT_] = {
    [0] = {"ok", 200, "", "OK"},
#define ERR_ROW_(name, code, http, oauth, msg) [name##_POS_] = {code, http, oauth, msg},
    ERR_TABLE(ERR_ROW_)
#undef ERR_ROW_
};

static const struct err_row *row(int err)
{
    long i = -(long)err; /* long: -INT_MIN does not fit an int */
    if (i < 0 || i >= ERR_COUNT_)
        i = ERR_INTERNAL_POS_;
    return &rows[i];
}

const char *err_code(int err)
{
    return row(err)->code;
}

const char *err_message(int err)
{
    return row(err)->msg;
}

const char *err_oauth(int err)
{
    return row(err)->oauth;
}

int err_http_status(int err)
{
    return row(err)->http;
}

int err_set(struct err_detail *d, int err, const char *fmt, ...)
{
    if (d) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
        va_end(ap);
    }
    return err;
}
