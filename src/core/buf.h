/* core/buf.h — a growable byte buffer with a hard cap fixed at creation
 * (curl's "toobig"): appending past the cap fails with ERR_TOOBIG and leaves
 * the buffer unchanged, so network input can never grow it without bound.
 * The data is always NUL-terminated (not counted in len). Not thread-safe. */
#pragma once
#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap; /* allocated */
    size_t max; /* hard cap on len; 0 = SIZE_MAX */
};

void buf_init(struct buf *b, size_t max);
/* Wipes (if `secret`) and frees the storage; the buffer may be reused after buf_init. */
void buf_done(struct buf *b);
void buf_wipe_done(struct buf *b);
int buf_append(struct buf *b, const void *p, size_t n); /* 0, ERR_TOOBIG, ERR_NOMEM */
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Hands the storage over (NUL-terminated, caller frees); the buffer is left empty. */
char *buf_take(struct buf *b, size_t *ret_len);
void buf_reset(struct buf *b); /* len = 0, keeps storage */
