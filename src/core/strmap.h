/* core/strmap.h — an open-addressing hash map from NUL-terminated string keys
 * to borrowed pointers, built once and then only read (policy snapshots).
 * Keys are borrowed: they must outlive the map. Reads are thread-safe once
 * building is done; building is not. */
#pragma once
#include <stddef.h>

struct strmap {
    struct strmap_slot *slots;
    size_t cap; /* power of two */
    size_t len;
};

void strmap_init(struct strmap *m);
void strmap_done(struct strmap *m);
/* Inserts or replaces. Returns 0 or ERR_NOMEM. If `ret_old` is given it receives the
 * value replaced (NULL when the key was new). */
int strmap_put(struct strmap *m, const char *key, void *val, void **ret_old);
void *strmap_get(const struct strmap *m, const char *key);
size_t strmap_len(const struct strmap *m);
