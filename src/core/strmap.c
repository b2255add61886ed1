/* core/strmap.c — linear probing, FNV-1a, load factor <= 1/2. */
#include "core/strmap.h"
#include "core/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct strmap_slot {
    const char *key;
    void *val;
    uint64_t hash;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void strmap_init(struct strmap *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->len = 0;
}

void strmap_done(struct strmap *m)
{
    free(m->slots);
    strmap_init(m);
}

static int grow(struct strmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    struct strmap_slot *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        size_t j = m->slots[i].hash & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

int strmap_put(struct strmap *m, const char *key, void *val, void **ret_old)
{
    if ((m->len + 1) * 2 > m->cap) {
        int r = grow(m);
        if (r < 0)
            return r;
    }
    uint64_t h = hash_str(key);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].key) {
        if (m->slots[j].hash == h && strcmp(m->slots[j].key, key) == 0) {
            if (ret_old)
                *ret_old = m->slots[j].val;
            m->slots[j].val = val;
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j] = (struct strmap_slot){key, val, h};
    m->len++;
    if (ret_old)
        *ret_old = NULL;
    return 0;
}

void *strmap_get(const struct strmap *m, const char *key)
{
    if (!m->cap)
        return NULL;
    uint64_t h = hash_str(key);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].key) {
        if (m->slots[j].hash == h && strcmp(m->slots[j].key, key) == 0)
            return m->slots[j].val;
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

size_t strmap_len(const struct strmap *m)
{
    return m->len;
}
