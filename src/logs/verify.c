/* logs/verify.c — recomputes the audit hash chain over a range of seq and
 * names the first event that does not hold: its stored hash differs from the
 * one recomputed from its own content, or its prev_hash does not name the
 * hash of the event before it. */
#include "audit/audit.h"
#include "logs/logs.h"

#include <stdio.h>
#include <string.h>

struct vstate {
    int64_t from, first, last, broken, verified;
    char prev[64];
    int have_prev;
    char reason[200];
};

static int check(const char *doc, int64_t seq, const char *hash, void *arg)
{
    struct vstate *v = arg;
    json_t *ev = doc ? json_loads(doc, 0, NULL) : NULL;
    if (seq < v->from) { /* the anchor: the event before the range */
        snprintf(v->prev, sizeof(v->prev), "%s", hash ? hash : "");
        v->have_prev = 1;
        json_decref(ev);
        return 0;
    }
    const char *why = NULL;
    char computed[44];
    if (!ev) {
        why = "the stored document is not JSON";
    } else {
        const json_t *ph = json_object_get(ev, "prev_hash");
        const char *prev = v->have_prev ? v->prev : "";
        if (seq > 1 && !v->have_prev)
            prev = json_string_value(ph) ? json_string_value(ph) : "";
        if (json_integer_value(json_object_get(ev, "seq")) != seq)
            why = "its seq field differs from its position";
        else if (seq == 1 ? !json_is_null(ph) : !json_is_string(ph) || strcmp(json_string_value(ph), prev))
            why = "prev_hash does not name the hash of the event before it";
        else if (audit_event_hash(ev, seq == 1 ? "" : prev, computed) < 0)
            why = "out of memory";
        else if (!hash || strcmp(computed, hash))
            why = "its content does not match its hash (changed after it was written)";
        else if (!json_is_string(json_object_get(ev, "hash")) ||
                 strcmp(json_string_value(json_object_get(ev, "hash")), hash))
            why = "the hash in the document differs from the stored hash";
    }
    json_decref(ev);
    if (why) {
        v->broken = seq;
        snprintf(v->reason, sizeof(v->reason), "%s", why);
        return 1; /* stop at the first break */
    }
    if (!v->first)
        v->first = seq;
    v->last = seq;
    v->verified++;
    snprintf(v->prev, sizeof(v->prev), "%s", hash);
    v->have_prev = 1;
    return 0;
}

int logs_verify(struct store *s, int64_t from, int64_t to, json_t **ret, struct err_detail *d)
{
    if (from < 1)
        from = 1;
    struct vstate v = {.from = from};
    int r = store_events_chain(s, from > 1 ? from - 1 : 1, to, check, &v);
    if (r < 0)
        return err_set(d, r, "reading the log failed");
    if (v.broken)
        *ret = json_pack("{s:b, s:I, s:s, s:I}", "ok", 0, "broken_seq", (json_int_t)v.broken,
                         "reason", v.reason, "verified", (json_int_t)v.verified);
    else
        *ret = json_pack("{s:b, s:I, s:I, s:I}", "ok", 1, "verified", (json_int_t)v.verified,
                         "first_seq", (json_int_t)v.first, "last_seq", (json_int_t)v.last);
    return *ret ? 0 : ERR_NOMEM;
}
