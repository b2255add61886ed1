/* policy/decide.c — steps 5 to 10 of the decision (spec/policy.md). Pure:
 * no I/O, no lock, no allocation; the first failing step decides, except
 * step 9 where each scope gets its own outcome and the request is granted if
 * any scope is. */
#include "policy/decide.h"

#include <stdio.h>
#include <string.h>

struct reason_row {
    const char *code, *text, *oauth;
    int http;
    const char *sev;
};

static const struct reason_row reasons[REASON_COUNT_] = {
#define POLICY_REASON_ROW_(name, code, text, oauth, http, sev) [name] = {code, text, oauth, http, sev},
    POLICY_REASONS(POLICY_REASON_ROW_)
#undef POLICY_REASON_ROW_
};

static const struct reason_row *row(enum policy_reason r)
{
    return &reasons[(unsigned)r < REASON_COUNT_ ? r : REASON_NONE];
}

const char *policy_reason_code(enum policy_reason r)
{
    return row(r)->code;
}

const char *policy_reason_text(enum policy_reason r)
{
    return row(r)->text;
}

const char *policy_reason_oauth(enum policy_reason r)
{
    return row(r)->oauth;
}

int policy_reason_http(enum policy_reason r)
{
    return row(r)->http;
}

const char *policy_reason_severity(enum policy_reason r)
{
    return row(r)->sev;
}

int policy_reason_step(enum policy_reason r)
{
    static const int steps[REASON_COUNT_] = {
        [REASON_NONE] = 0,
        [REASON_INVALID_REQUEST] = 1,
        [REASON_UNSUPPORTED_GRANT] = 1,
        [REASON_INVALID_CLIENT] = 2,
        [REASON_UNAUTHORIZED_CLIENT] = 3,
        [REASON_INVALID_SUBJECT] = 4,
        [REASON_UNKNOWN_SYSTEM] = 5,
        [REASON_NO_ACCESS_POLICY] = 6,
        [REASON_SERVER_PAUSED] = 7,
        [REASON_TARGET_NOT_REGISTERED] = 8,
        [REASON_SCOPE_NOT_ENABLED] = 9,
        [REASON_NO_GRANT] = 9,
        [REASON_NO_SIGNING_KEY] = 10,
        [REASON_UNAVAILABLE] = 11,
    };
    return (unsigned)r < REASON_COUNT_ ? steps[r] : 0;
}

static void deny(struct decision *d, enum policy_reason r, const char *fmt, const char *a,
                 const char *b)
{
    d->reason = r;
    int n = snprintf(d->detail, sizeof(d->detail), "%s", row(r)->text);
    if (fmt && n > 0 && (size_t)n < sizeof(d->detail)) {
        snprintf(d->detail + n, sizeof(d->detail) - (size_t)n, ": ");
        n += 2;
        snprintf(d->detail + n, sizeof(d->detail) - (size_t)n, fmt, a ? a : "", b ? b : "");
    }
}

void policy_deny_early(struct decision *d, enum policy_reason r, const char *what)
{
    memset(d, 0, sizeof(*d));
    deny(d, r, what && *what ? "%s%s" : NULL, what, "");
}

/* Audience comparison tolerates one trailing slash on either side (the MCP SDK and the
 * conformance suite pass issuers both ways). */
static bool same_audience(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la && a[la - 1] == '/')
        la--;
    if (lb && b[lb - 1] == '/')
        lb--;
    return la == lb && memcmp(a, b, la) == 0;
}

static bool registers(const struct policy_system *s, const char *resource)
{
    for (size_t i = 0; i < s->n_resource_urls; i++)
        if (strcmp(s->resource_urls[i], resource) == 0)
            return true;
    return false;
}

static const struct policy_access *access_for(const struct policy_snapshot *snap,
                                              const struct policy_client *c,
                                              const struct policy_system *s)
{
    char key[2400]; /* client ids may be metadata document URLs (2048) */
    int n = snprintf(key, sizeof(key), "%s\n%s", c->id, s->id);
    if (n < 0 || (size_t)n >= sizeof(key))
        return NULL;
    return strmap_get(&snap->access_by_pair, key);
}

/* Step 5: the system the request names. By audience when given (several systems may
 * share one authorization server; the resource, then an active access policy for the
 * client, picks among them), else by the registered resource. */
static const struct policy_system *match_system(const struct policy_snapshot *snap,
                                                const struct decide_request *req)
{
    if (!req->audience)
        return req->resource ? strmap_get(&snap->system_by_resource, req->resource) : NULL;
    const struct policy_system *first = NULL, *with_policy = NULL;
    for (size_t i = 0; i < snap->n_systems; i++) {
        const struct policy_system *s = &snap->systems[i];
        if (!same_audience(s->audience, req->audience))
            continue;
        if (req->resource && registers(s, req->resource))
            return s;
        if (!first)
            first = s;
        if (!with_policy && req->client) {
            const struct policy_access *a = access_for(snap, req->client, s);
            if (a && a->active)
                with_policy = s;
        }
    }
    return with_policy ? with_policy : first;
}

static bool holds(const struct policy_snapshot *snap, const struct decide_request *req,
                  const struct policy_system *sys, const char *scope)
{
    for (size_t i = 0; i < snap->n_grants; i++) {
        const struct policy_grant *g = &snap->grants[i];
        if (g->system != sys)
            continue;
        bool mine = false;
        const char *sub = g->subject;
        if (strncmp(sub, "client:", 7) == 0)
            mine = req->client && strcmp(sub + 7, req->client->id) == 0;
        else if (strncmp(sub, "user:", 5) == 0)
            mine = req->user && strcmp(sub + 5, req->user) == 0;
        else if (strncmp(sub, "group:", 6) == 0 && req->user)
            for (size_t k = 0; k < req->n_groups && !mine; k++)
                mine = strcmp(sub + 6, req->groups[k]) == 0;
        if (!mine)
            continue;
        for (size_t j = 0; j < g->n_scopes; j++)
            if (strcmp(g->scopes[j], scope) == 0)
                return true;
    }
    return false;
}

static const struct policy_scope *find_scope(const struct policy_system *s, const char *name)
{
    for (size_t i = 0; i < s->n_scopes; i++)
        if (strcmp(s->scopes[i].name, name) == 0)
            return &s->scopes[i];
    return NULL;
}

static bool asserted(const struct decide_request *req, const char *scope)
{
    for (size_t i = 0; i < req->n_asserted_scopes; i++)
        if (strcmp(req->asserted_scopes[i], scope) == 0)
            return true;
    return false;
}

static void add_scope(struct decision *d, const char *name, enum policy_reason r)
{
    for (size_t i = 0; i < d->n_scopes; i++)
        if (strcmp(d->scopes[i].name, name) == 0)
            return; /* a scope requested twice is decided once */
    if (d->n_scopes >= DECIDE_MAX_SCOPES)
        return;
    d->scopes[d->n_scopes++] = (struct decide_scope){name, r == REASON_NONE, r};
    if (r == REASON_NONE)
        d->n_granted++;
}

/* Step 9 for one scope: defined and enabled; held by the user, a group or the client
 * (for a JWT bearer grant: carried by the assertion instead). */
static enum policy_reason scope_outcome(const struct policy_snapshot *snap,
                                        const struct decide_request *req,
                                        const struct policy_system *sys, const char *name)
{
    const struct policy_scope *sc = find_scope(sys, name);
    if (!sc || !sc->enabled)
        return REASON_SCOPE_NOT_ENABLED;
    if (req->asserted_scopes)
        return asserted(req, name) ? REASON_NONE : REASON_NO_GRANT;
    return holds(snap, req, sys, name) ? REASON_NONE : REASON_NO_GRANT;
}

/* "Scope not enabled: repo:write; No grant for the scope: admin" */
static void scope_detail(struct decision *d)
{
    size_t n = 0;
    d->detail[0] = '\0';
    for (size_t i = 0; i < d->n_scopes && n < sizeof(d->detail); i++) {
        if (d->scopes[i].granted)
            continue;
        int w = snprintf(d->detail + n, sizeof(d->detail) - n, "%s%s: %s", n ? "; " : "",
                         row(d->scopes[i].reason)->text, d->scopes[i].name);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

enum policy_reason policy_decide(const struct policy_snapshot *snap, const struct decide_request *req,
                                 struct decision *d)
{
    memset(d, 0, sizeof(*d));
    const struct policy_system *sys = match_system(snap, req);
    if (!sys) {
        if (req->audience)
            deny(d, REASON_UNKNOWN_SYSTEM, "audience %s%s", req->audience, "");
        else if (req->resource)
            deny(d, REASON_UNKNOWN_SYSTEM, "resource %s%s", req->resource, "");
        else
            deny(d, REASON_UNKNOWN_SYSTEM, "no audience or resource given%s%s", "", "");
        return d->reason;
    }
    d->system = sys;

    d->access = req->client ? access_for(snap, req->client, sys) : NULL;
    if (!d->access || !d->access->active) {
        deny(d, REASON_NO_ACCESS_POLICY, "client %s, system %s",
             req->client ? req->client->id : "-", sys->id);
        return d->reason;
    }
    if (sys->paused) {
        deny(d, REASON_SERVER_PAUSED, "%s%s", sys->id, "");
        return d->reason;
    }
    if (req->resource && !registers(sys, req->resource)) {
        deny(d, REASON_TARGET_NOT_REGISTERED, "%s%s", req->resource, "");
        return d->reason;
    }

    if (req->n_scopes) {
        for (size_t i = 0; i < req->n_scopes; i++)
            add_scope(d, req->scopes[i], scope_outcome(snap, req, sys, req->scopes[i]));
    } else {
        /* no scope asked: every enabled scope the subject holds (or the assertion carries) */
        for (size_t i = 0; i < sys->n_scopes; i++)
            if (sys->scopes[i].enabled &&
                scope_outcome(snap, req, sys, sys->scopes[i].name) == REASON_NONE)
                add_scope(d, sys->scopes[i].name, REASON_NONE);
    }
    if (d->n_granted == 0) {
        enum policy_reason first = REASON_NO_GRANT;
        const char *what = NULL;
        for (size_t i = 0; i < d->n_scopes; i++)
            if (!d->scopes[i].granted) {
                first = d->scopes[i].reason;
                what = d->scopes[i].name;
                break;
            }
        if (what)
            scope_detail(d);
        else
            deny(d, REASON_NO_GRANT, "none of the enabled scopes of system %s%s", sys->id, "");
        d->reason = first;
        return d->reason;
    }
    scope_detail(d); /* partial grants name each denied scope */

    d->alg = sys->inherit_alg ? snap->settings.default_signing_alg : sys->signing_alg;
    d->key = snap->active_key[d->alg];
    if (!d->key || !d->key->key) {
        d->key = NULL;
        deny(d, REASON_NO_SIGNING_KEY, "%s%s", jose_alg_name(d->alg), "");
        return d->reason;
    }
    int64_t lt = snap->settings.default_lifetime;
    if (sys->max_lifetime && sys->max_lifetime < lt)
        lt = sys->max_lifetime;
    d->lifetime = lt;
    d->reason = REASON_NONE;
    return REASON_NONE;
}

void decision_granted_scopes(const struct decision *d, char *out, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < d->n_scopes; i++) {
        if (!d->scopes[i].granted)
            continue;
        int w = snprintf(out + o, n - o, "%s%s", o ? " " : "", d->scopes[i].name);
        if (w < 0 || (size_t)w >= n - o)
            break;
        o += (size_t)w;
    }
}
