/* http/metrics.c — Prometheus counters kept with relaxed atomics (a counter
 * may be a hair behind a concurrent reader, never wrong), rendered as the text
 * exposition format 0.0.4 at /metrics. No per-request allocation. */
#include "http/http_priv.h"
#include "export/runner.h"

#include <stdio.h>
#include <stdlib.h>

static const char *const route_names[ROUTE_COUNT] = {
    [ROUTE_NOT_FOUND] = "not_found",
    [ROUTE_HEALTHZ] = "healthz",
    [ROUTE_READYZ] = "readyz",
    [ROUTE_METRICS] = "metrics",
    [ROUTE_JWKS] = "jwks",
    [ROUTE_ADMIN_OBJECTS] = "admin_objects",
    [ROUTE_ADMIN_SETTINGS] = "admin_settings",
    [ROUTE_ADMIN_KEYS] = "admin_keys",
    [ROUTE_ADMIN_APPLY] = "admin_apply",
    [ROUTE_ADMIN_EXPLAIN] = "admin_explain",
    [ROUTE_DEV] = "dev",
    [ROUTE_TOKEN] = "token",
    [ROUTE_INTROSPECT] = "introspect",
    [ROUTE_REVOKE] = "revoke",
    [ROUTE_METADATA] = "metadata",
    [ROUTE_LOGS] = "logs",
    [ROUTE_TRACE] = "trace",
    [ROUTE_UI] = "ui",
};

static uint64_t audit_failures;

void metrics_audit_failure(void)
{
    __atomic_add_fetch(&audit_failures, 1, __ATOMIC_RELAXED);
}

#define MIN_CODE 100
#define N_CODES  500
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                0.05,   0.1,   0.25,   0.5,   1,    2.5};
#define N_BUCKETS (sizeof(bounds) / sizeof(bounds[0]))

static uint64_t requests[ROUTE_COUNT][N_CODES];
static uint64_t buckets[ROUTE_COUNT][N_BUCKETS + 1];
static uint64_t sum_us[ROUTE_COUNT];

void metrics_observe(enum route_id route, int status, int64_t duration_us)
{
    if ((unsigned)route >= ROUTE_COUNT)
        route = ROUTE_NOT_FOUND;
    if (status < MIN_CODE || status >= MIN_CODE + N_CODES)
        status = 599;
    __atomic_add_fetch(&requests[route][status - MIN_CODE], 1, __ATOMIC_RELAXED);
    double s = (double)duration_us / 1e6;
    size_t b = 0;
    while (b < N_BUCKETS && s > bounds[b])
        b++;
    __atomic_add_fetch(&buckets[route][b], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&sum_us[route], (uint64_t)(duration_us > 0 ? duration_us : 0),
                       __ATOMIC_RELAXED);
}

static uint64_t get(uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void render_oauth(struct buf *b, const struct http_server *srv)
{
    if (srv->cfg.oauth) {
        struct oauth_stats st;
        oauth_stats(srv->cfg.oauth, &st);
        buf_puts(b, "# HELP mcpauth_token_requests_total Token requests by outcome and reason.\n"
                    "# TYPE mcpauth_token_requests_total counter\n");
        buf_printf(b, "mcpauth_token_requests_total{outcome=\"granted\",reason=\"\"} %llu\n",
                   (unsigned long long)st.granted);
        for (int r = 1; r < REASON_COUNT_; r++)
            buf_printf(b, "mcpauth_token_requests_total{outcome=\"denied\",reason=\"%s\"} %llu\n",
                       policy_reason_code((enum policy_reason)r),
                       (unsigned long long)st.by_reason[r]);
    }
    if (srv->cfg.writer) {
        struct audit_writer_stats w;
        audit_writer_stats(srv->cfg.writer, &w);
        buf_printf(
            b,
            "# HELP mcpauth_audit_events_total Events committed by the group-commit writer.\n"
            "# TYPE mcpauth_audit_events_total counter\nmcpauth_audit_events_total %llu\n"
            "# HELP mcpauth_audit_failures_total Events the writer could not commit.\n"
            "# TYPE mcpauth_audit_failures_total counter\nmcpauth_audit_failures_total %llu\n"
            "# HELP mcpauth_audit_queue_length Events waiting for the writer.\n"
            "# TYPE mcpauth_audit_queue_length gauge\nmcpauth_audit_queue_length %llu\n"
            "# HELP mcpauth_audit_batch_size Events per committed transaction.\n"
            "# TYPE mcpauth_audit_batch_size histogram\n",
            (unsigned long long)w.events,
            (unsigned long long)(w.failures + __atomic_load_n(&audit_failures, __ATOMIC_RELAXED)),
            (unsigned long long)w.queue_len);
        static const char *const le[8] = {"1", "4", "16", "64", "256", "1024", "4096", "+Inf"};
        uint64_t acc = 0;
        for (int i = 0; i < 8; i++) {
            acc += w.batch_hist[i];
            buf_printf(b, "mcpauth_audit_batch_size_bucket{le=\"%s\"} %llu\n", le[i],
                       (unsigned long long)acc);
        }
        buf_printf(b, "mcpauth_audit_batch_size_sum %llu\nmcpauth_audit_batch_size_count %llu\n",
                   (unsigned long long)(w.events + w.failures), (unsigned long long)w.batches);
    }
}

char *metrics_render(const struct http_server *srv, const struct policy_snapshot *snap,
                     size_t *ret_len)
{
    struct buf b;
    buf_init(&b, 0);
    render_oauth(&b, srv);
    if (srv->cfg.exporters)
        export_manager_metrics(srv->cfg.exporters, &b);
    if (srv->cfg.trace) {
        struct trace_stats ts;
        trace_hub_stats(srv->cfg.trace, &ts);
        buf_printf(&b,
                   "# HELP mcpauth_trace_subscribers Live trace streams open.\n"
                   "# TYPE mcpauth_trace_subscribers gauge\nmcpauth_trace_subscribers %llu\n"
                   "# HELP mcpauth_trace_entries_total Trace entries published (only while "
                   "someone subscribes).\n"
                   "# TYPE mcpauth_trace_entries_total counter\nmcpauth_trace_entries_total %llu\n"
                   "# HELP mcpauth_trace_dropped_total Entries subscribers missed by falling "
                   "behind.\n"
                   "# TYPE mcpauth_trace_dropped_total counter\nmcpauth_trace_dropped_total %llu\n"
                   "# HELP mcpauth_trace_sender_throttled_total Trace sender passes skipped: "
                   "its CPU budget (idle CPU) was spent.\n"
                   "# TYPE mcpauth_trace_sender_throttled_total counter\n"
                   "mcpauth_trace_sender_throttled_total %llu\n",
                   (unsigned long long)ts.subscribers, (unsigned long long)ts.published,
                   (unsigned long long)ts.dropped, (unsigned long long)ts.throttled);
    }
    buf_puts(&b, "# HELP mcpauth_build_info mcpauth version.\n# TYPE mcpauth_build_info gauge\n");
    buf_printf(&b, "mcpauth_build_info{version=\"%s\"} 1\n", MCPAUTH_VERSION);
    buf_puts(&b, "# HELP mcpauth_http_requests_total HTTP requests by route and status code.\n"
                 "# TYPE mcpauth_http_requests_total counter\n");
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int c = 0; c < N_CODES; c++) {
            uint64_t v = get(&requests[r][c]);
            if (v)
                buf_printf(&b, "mcpauth_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                           route_names[r], c + MIN_CODE, (unsigned long long)v);
        }
    buf_puts(&b, "# HELP mcpauth_http_request_duration_seconds Time from request to response.\n"
                 "# TYPE mcpauth_http_request_duration_seconds histogram\n");
    for (int r = 0; r < ROUTE_COUNT; r++) {
        uint64_t cum = 0;
        for (size_t i = 0; i <= N_BUCKETS; i++)
            cum += get(&buckets[r][i]);
        if (!cum)
            continue;
        uint64_t acc = 0;
        for (size_t i = 0; i < N_BUCKETS; i++) {
            acc += get(&buckets[r][i]);
            buf_printf(
                &b, "mcpauth_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                route_names[r], bounds[i], (unsigned long long)acc);
        }
        buf_printf(&b,
                   "mcpauth_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                   "mcpauth_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                   "mcpauth_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                   route_names[r], (unsigned long long)cum, route_names[r],
                   (double)get(&sum_us[r]) / 1e6, route_names[r], (unsigned long long)cum);
    }
    if (snap) {
        buf_printf(&b,
                   "# HELP mcpauth_policy_version Version of the policy snapshot in use.\n"
                   "# TYPE mcpauth_policy_version gauge\nmcpauth_policy_version %llu\n",
                   (unsigned long long)snap->version);
        buf_printf(&b,
                   "# HELP mcpauth_policy_objects Policy objects in the current snapshot.\n"
                   "# TYPE mcpauth_policy_objects gauge\n"
                   "mcpauth_policy_objects{kind=\"systems\"} %zu\n"
                   "mcpauth_policy_objects{kind=\"clients\"} %zu\n"
                   "mcpauth_policy_objects{kind=\"access_policies\"} %zu\n"
                   "mcpauth_policy_objects{kind=\"grants\"} %zu\n"
                   "mcpauth_policy_objects{kind=\"trusted_issuers\"} %zu\n"
                   "mcpauth_policy_objects{kind=\"signing_keys\"} %zu\n",
                   snap->n_systems, snap->n_clients, snap->n_access, snap->n_grants,
                   snap->n_issuers, snap->n_keys);
    }
    return buf_take(&b, ret_len);
}
