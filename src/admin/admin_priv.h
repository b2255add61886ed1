/* admin/admin_priv.h — what admin.c, apply.c and keys.c share; not a public header. */
#pragma once
#include "admin/admin.h"

#include <stddef.h>
#include <stdint.h>

struct admin {
    struct admin_config cfg;
    uint64_t version; /* atomic */
};

struct change {
    enum store_kind kind;
    char *id;
    json_t *before; /* NULL: created */
    json_t *after;  /* NULL: deleted */
};

struct changes {
    struct change *v;
    size_t n, cap;
    json_t *extra_events; /* array of ready events (key.rotate), may be NULL */
};

int changes_add(struct changes *c, enum store_kind kind, const char *id, json_t *before_take,
                json_t *after_take);
void changes_done(struct changes *c);
/* With a transaction open: write `c`, rebuild and check the snapshot (an inconsistency is
 * `xref_err`), append events, commit and swap. Always ends the transaction. */
int tx_finish(struct admin *a, const struct audit_origin *o, struct changes *c, int xref_err,
              struct err_detail *d);
void admin_object_ref(enum store_kind kind, const char *id, char *out, size_t n);
int admin_settings_put(struct admin *a, const struct audit_origin *o, const json_t *body,
                       json_t **ret, struct err_detail *d);
