#!/usr/bin/env bash
# bench/exporters.sh — exporter benchmark (DESIGN.md rule 3: exporters never
# slow issuance and never lose events; an outage only grows the lag).
#
# Builds mcpauth optimised in build-bench/, starts it in dev mode on a free
# 127.0.0.1 port with a throw-away data dir, applies bench/policy.yaml.in, fills
# the audit log with BENCH_EVENTS client-credentials token.request events (wrk +
# bench/cc.lua) and starts a real rsyslogd (bench/rsyslog.conf.in: imtcp on a
# free 127.0.0.1 port, one line per message to a file). Then:
#   1. syslog throughput: a syslog exporter tcp://127.0.0.1:PORT (BENCH_SYSLOG_FORMAT,
#      start=beginning) per batch.max_events of BENCH_BATCHES, timed until its
#      status shows cursor == last_seq; rsyslog's lines are counted;
#   2. file throughput: the same with a file exporter (file:///…/out.jsonl, json);
#   3. lag under load: BENCH_RATE tokens/s (wrk + bench/rate.lua, a fixed-rate
#      schedule) for BENCH_LOAD_DURATION s while a syslog exporter (start=now,
#      max_wait BENCH_MAX_WAIT) runs; lag_seconds and lag_events sampled every
#      BENCH_SAMPLE_MS ms from its status;
#   4. outage: under load, rsyslogd stopped for BENCH_OUTAGE s; mcpauth's VmRSS
#      before and its maximum during the outage (sampled every second), then
#      rsyslogd restarted and the time until the backlog is delivered.
# Prints the figures and a summary with PASS/MISS against the targets:
#   * >= 50,000 events/s per exporter (syslog tcp to rsyslog; file);
#   * lag under BENCH_RATE tokens/s: p99 of lag_seconds under 1 s;
#   * RSS during the outage within 10 % of RSS before it.
# Exits 1 when a target is missed (unless BENCH_NO_FAIL=1) and whenever the
# run itself is broken (fill short, over 0.1 % non-200, events missing in
# rsyslog's file or the file sink's file after a throughput run).
#
# Knobs (environment):
#   BENCH_QUICK=0             1: a scaled-down run to check the script (50k events,
#                             10 s load, 10 s outage, one batch size)
#   BENCH_EVENTS=300000       events in the log before the throughput runs
#   BENCH_BATCHES="1000 5000 10000"   batch.max_events tried for throughput (1..10000)
#   BENCH_SYSLOG_FORMAT=json  format of the syslog exporters (json: the stored documents as they are)
#   BENCH_RATE=10000          tokens/s during the lag and outage runs
#   BENCH_OUTAGE_RATE=        tokens/s during the outage (default: BENCH_RATE, lowered
#                             to 90 % of what the lag run achieved when it fell short)
#   BENCH_LOAD_DURATION=30    seconds of load for the lag run
#   BENCH_MAX_WAIT=100ms      batch.max_wait of the lag/outage exporter
#   BENCH_LAG_BATCH=5000      batch.max_events of the lag/outage exporter
#   BENCH_SAMPLE_MS=200       status sampling period during the lag run
#   BENCH_OUTAGE=60           seconds rsyslogd stays stopped
#   BENCH_PRE_OUTAGE=10       seconds of load before rsyslogd is stopped
#   BENCH_DRAIN_TIMEOUT=300   seconds allowed for the backlog to drain after the restart
#   BENCH_CONNECTIONS=64      wrk -c
#   BENCH_THREADS=2           wrk -t
#   BENCH_NO_FAIL=0           1: exit 0 even when a target is missed
# Every address is 127.0.0.1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    EVENTS=${BENCH_EVENTS:-50000}
    BATCHES=${BENCH_BATCHES:-5000}
    LOAD_DURATION=${BENCH_LOAD_DURATION:-10}
    OUTAGE=${BENCH_OUTAGE:-10}
    PRE_OUTAGE=${BENCH_PRE_OUTAGE:-5}
else
    EVENTS=${BENCH_EVENTS:-300000}
    BATCHES=${BENCH_BATCHES:-1000 5000 10000}
    LOAD_DURATION=${BENCH_LOAD_DURATION:-30}
    OUTAGE=${BENCH_OUTAGE:-60}
    PRE_OUTAGE=${BENCH_PRE_OUTAGE:-10}
fi
RATE=${BENCH_RATE:-10000}
OUTAGE_RATE=${BENCH_OUTAGE_RATE:-}
MAX_WAIT=${BENCH_MAX_WAIT:-100ms}
SYSLOG_FORMAT=${BENCH_SYSLOG_FORMAT:-json} # the exporter default; rfc5424 re-encodes each event
LAG_BATCH=${BENCH_LAG_BATCH:-5000}
SAMPLE_MS=${BENCH_SAMPLE_MS:-200}
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-300}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
NO_FAIL=${BENCH_NO_FAIL:-0}
BUILD=build-bench
RSYSLOGD=/usr/sbin/rsyslogd
TARGET_EPS=50000   # events/s per exporter
TARGET_LAG=1       # seconds, p99 of lag_seconds under load
TARGET_RSS_PCT=10  # RSS growth during the outage, percent

# die, log, stop_pid, stop_server, free_port, http_status, wait_healthy, to_ms,
# ensure_wrk, build_mcpauth, start_mcpauth, mcp, apply_policy
# shellcheck source=bench/lib.sh
. bench/lib.sh

for v in QUICK EVENTS RATE LOAD_DURATION LAG_BATCH SAMPLE_MS OUTAGE PRE_OUTAGE DRAIN_TIMEOUT \
    CONNECTIONS THREADS NO_FAIL; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a whole number, not '${!v}'"
done
[[ -z $OUTAGE_RATE || $OUTAGE_RATE =~ ^[0-9]+$ ]] || die "BENCH_OUTAGE_RATE must be a whole number"
for b in $BATCHES; do
    if [[ ! $b =~ ^[0-9]+$ ]] || ((b < 1 || b > 10000)); then
        die "BENCH_BATCHES: each size must be 1..10000, not '$b'"
    fi
done
[[ $MAX_WAIT =~ ^[0-9]+(ms|s)$ ]] || die "BENCH_MAX_WAIT must look like 100ms or 1s"
((EVENTS > 0 && RATE > 0 && LOAD_DURATION > 0 && SAMPLE_MS > 0 && OUTAGE > 0)) ||
    die "BENCH_EVENTS, BENCH_RATE, BENCH_LOAD_DURATION, BENCH_SAMPLE_MS, BENCH_OUTAGE must be at least 1"
((LAG_BATCH >= 1 && LAG_BATCH <= 10000)) || die "BENCH_LAG_BATCH must be 1..10000"
((THREADS > 0 && CONNECTIONS >= THREADS)) ||
    die "need BENCH_THREADS >= 1 and BENCH_CONNECTIONS >= BENCH_THREADS"

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mcpauth-bench-exp.XXXXXX")
SERVER_PID=
WRK_PID=
RS_PID=
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    stop_pid "$WRK_PID"
    stop_pid "$RS_PID"
    stop_server
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
load1() { cut -d' ' -f1 /proc/loadavg; }
now_us() { echo $((10#${EPOCHREALTIME/./})); } # the wall clock in microseconds, no fork
since_s() { # START_US -> seconds since then, 2 decimals
    local d=$(($(now_us) - $1))
    printf '%d.%02d' $((d / 1000000)) $((d % 1000000 / 10000))
}
sleep_until() { # US: sleeps until that time (returns at once when it is past)
    local d=$(($1 - $(now_us)))
    ((d > 0)) && sleep "$(printf '%d.%06d' $((d / 1000000)) $((d % 1000000)))"
    return 0
}
cpu_ticks() { # PID: user + system clock ticks of the process so far (0 when gone)
    awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0
}
rss_mb() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER_PID/status"; }
fmax() { awk -v a="$1" -v b="$2" 'BEGIN {if (a + 0 > b + 0) print a; else print b}'; }

metric_events() { # events the server's writer has committed since it started
    { curl -s -m 5 "$ISSUER/metrics" || true; } |
        awk '$1 == "mcpauth_audit_events_total" {print $2; f = 1} END {if (!f) print -1}'
}

api() { # METHOD PATH [JSON]: the admin API; prints the body, fails unless 2xx
    local code
    code=$(curl -sS -m 10 -o "$TMP/api.out" -w '%{http_code}' -X "$1" \
        -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
        ${3:+--data-binary "$3"} "$ISSUER$2") || code=000
    if [[ $code != 2* ]]; then
        log "$1 $2: HTTP $code: $(head -c 400 "$TMP/api.out")"
        return 1
    fi
    cat "$TMP/api.out"
}

# status ID -> "cursor last_seq lag_events lag_seconds delivered state" (one line), or
# nothing when the status cannot be read
status() {
    { curl -s -m 2 -H "Authorization: Bearer $ADMIN" "$ISSUER/api/v1/exporters/$1/status" ||
        true; } | awk '
        function num(k,   m) {
            if (match($0, "\"" k "\": *-?[0-9.eE+-]+")) {
                m = substr($0, RSTART, RLENGTH); sub(/^[^:]*: */, "", m); return m + 0 }
            return "?" }
        function str(k,   m) {
            if (match($0, "\"" k "\": *\"[^\"]*\"")) {
                m = substr($0, RSTART, RLENGTH); sub(/^[^:]*: *"/, "", m); sub(/"$/, "", m)
                return m }
            return "?" }
        {s = s $0} END {$0 = s; if ($0 !~ /"cursor"/) exit
            printf "%s %s %s %.3f %s %s\n", num("cursor"), num("last_seq"), num("lag_events"),
                num("lag_seconds"), num("delivered"), str("state")}'
}

# last_error ID: the exporter's last error ("" when none)
last_error() {
    { curl -s -m 2 -H "Authorization: Bearer $ADMIN" "$ISSUER/api/v1/exporters/$1/status" ||
        true; } | sed -n 's/.*"last_error": *"\([^"]*\)".*/\1/p' | head -c 300
}

# ---- rsyslogd
rs_start() {
    sed -e "s|@DIR@|$RS_DIR|g" -e "s|@PORT@|$RS_PORT|g" bench/rsyslog.conf.in >"$RS_DIR/rsyslog.conf"
    rm -f "$RS_DIR/rsyslog.pid"
    "$RSYSLOGD" -n -f "$RS_DIR/rsyslog.conf" -i "$RS_DIR/rsyslog.pid" >>"$RS_DIR/stderr" 2>&1 &
    RS_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$RS_PID" 2>/dev/null || { cat "$RS_DIR/stderr" >&2; die "rsyslogd exited at start"; }
        (exec 3<>"/dev/tcp/127.0.0.1/$RS_PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$RS_DIR/stderr" >&2
    die "rsyslogd did not listen on 127.0.0.1:$RS_PORT within 10 s"
}
rs_stop() { # TERM: rsyslogd drains its queue (up to queue.timeoutShutdown) and exits
    local pid=$RS_PID i
    RS_PID=
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}
rs_bytes() { stat -c %s "$RS_DIR/out.log" 2>/dev/null || echo 0; }
# rs_seqs FROM_BYTE LO HI: "lines distinct" of rsyslog's lines after byte FROM_BYTE
# whose seq is in (LO, HI]
rs_seqs() {
    tail -c +$(($1 + 1)) "$RS_DIR/out.log" 2>/dev/null | awk -v lo="$2" -v hi="$3" '
        match($0, /seq="[0-9]+"|"seq":[0-9]+/) {   # rfc5424 SD or JSON
            m = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", m); s = m + 0
            if (s > lo && s <= hi) { n++; if (!(s in seen)) { seen[s] = 1; d++ } } }
        END {printf "%d %d\n", n, d}'
}

# ---- load
# start_load RATE SECONDS NAME: wrk + rate.lua in the background (WRK_PID)
start_load() {
    local per
    per=$(awk -v r="$1" -v t="$THREADS" 'BEGIN {printf "%.3f", r / t}')
    timeout -k 5 $(($2 + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${2}s" --timeout 2s \
        -s bench/rate.lua "$ISSUER/oauth/token" -- "$CC_BASIC" "$ISSUER/mcp/bench" "$per" \
        >"$TMP/$3.out" 2>"$TMP/$3.err" &
    WRK_PID=$!
}
# stop_load NAME: SIGINT (wrk prints its counts), wait; LOADRES="rps responses non200
# sockerr" (in this shell: wait needs the parent of wrk)
stop_load() {
    kill -INT "$WRK_PID" 2>/dev/null || true
    wait "$WRK_PID" || true
    WRK_PID=
    [[ -s $TMP/$1.err ]] && sed 's/^/  /' "$TMP/$1.err" >&2
    grep -q '^bench: responses ' "$TMP/$1.out" || { cat "$TMP/$1.out" >&2; die "$1: wrk printed no counts"; }
    LOADRES=$(awk '/^Requests\/sec:/ {r = $2} /^bench: responses / {n = $3; b = $5}
         /^bench: socket_errors / {e = $4 + $6 + $8 + $10}
         END {printf "%.0f %d %d %d\n", r, n, b, e}' "$TMP/$1.out")
}
check_load() { # NAME "rps responses non200 sockerr"
    local n bad err
    read -r _ n bad err <<<"$2"
    if ((n == 0 || (bad + err) * 1000 > n + err)); then
        FAILED+=("$1: $bad non-200 and $err socket errors of $((n + err)) token requests")
    fi
}

FAILED=() # the run is broken: exit 1 whatever BENCH_NO_FAIL says
MISSED=() # a target is missed: exit 1 unless BENCH_NO_FAIL=1
declare -A RESULT

# throughput KIND MAX_EVENTS: one exporter from the beginning of the log, timed until
# its cursor reaches last_seq; result line in RESULT[KIND.MAX_EVENTS], events/s in
# RESULT[KIND.MAX_EVENTS.eps]
throughput() {
    local kind=$1 me=$2 id=bench-$1-$2 body url fmt rs0=0
    if [[ $kind == syslog ]]; then
        url=tcp://127.0.0.1:$RS_PORT fmt=$SYSLOG_FORMAT
        rs0=$(rs_bytes)
    else
        url=file://$TMP/out-$me.jsonl fmt=json
    fi
    # no rotation in the file sink: one file to count
    body=$(printf '{"id":"%s","type":"%s","url":"%s","format":"%s","start":"beginning","batch":{"max_events":%d,"max_wait":"100ms"}%s}' \
        "$id" "$kind" "$url" "$fmt" "$me" "$([[ $kind == file ]] && echo ',"max_bytes":68719476736')")
    log "$kind exporter, batch.max_events $me: $url"
    local t0 t1 secs cur last deliv st
    local cpu0 rcpu0
    cpu0=$(cpu_ticks "$SERVER_PID") rcpu0=$(cpu_ticks "${RS_PID:-0}")
    t0=$(now_us)
    api POST /api/v1/exporters "$body" >/dev/null || die "cannot create exporter $id"
    local deadline=$((SECONDS + 600))
    while :; do
        st=$(status "$id")
        if [[ -n $st ]]; then
            read -r cur last _ _ deliv _ <<<"$st"
            # the log only grows by the admin.change of the creation meanwhile
            if [[ $cur != "?" ]] && ((last >= STORE_EVENTS && cur >= last)); then
                t1=$(now_us)
                break
            fi
        fi
        ((SECONDS < deadline)) || {
            FAILED+=("$kind max_events $me: cursor ${cur:-?} of ${last:-?} after 600 s ($(last_error "$id"))")
            RESULT[$kind.$me]="did not finish (cursor ${cur:-?} of ${last:-?})"
            RESULT[$kind.$me.eps]=0
            api DELETE "/api/v1/exporters/$id" >/dev/null || true
            return 0
        }
        sleep 0.05
    done
    secs=$(awk -v d="$((t1 - t0))" 'BEGIN {printf "%.3f", d / 1e6}')
    # CPU the server spent (the exporter's worker, and the 50 ms status polls): events
    # per CPU-second is what the runner costs, whatever else shares the cores
    local eps cpu rcpu=0 hz
    hz=$(getconf CLK_TCK)
    cpu=$(awk -v a="$cpu0" -v b="$(cpu_ticks "$SERVER_PID")" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
    [[ $kind == syslog ]] &&
        rcpu=$(awk -v a="$rcpu0" -v b="$(cpu_ticks "$RS_PID")" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
    eps=$(awk -v n="$deliv" -v t="$secs" 'BEGIN {printf "%.0f", n / t}')
    local arrived="" lines=0 distinct=0
    if [[ $kind == syslog ]]; then
        # rsyslog writes asynchronously (flushInterval 1 s): wait for every line
        local i t2=""
        for ((i = 0; i < 300; i++)); do
            read -r lines distinct < <(rs_seqs "$rs0" 0 "$last")
            if ((distinct >= last)); then t2=$(now_us); break; fi
            sleep 0.1
        done
        [[ -n $t2 ]] || t2=$(now_us)
        arrived=$(printf '%s lines in rsyslog, %s distinct seq (all written %s s after the start)' \
            "$lines" "$distinct" "$(since_s "$t0")")
        ((distinct >= last)) ||
            FAILED+=("syslog max_events $me: $distinct of $last events in rsyslog's file")
    else
        # the sink fsyncs before it acknowledges: every line is in the file now
        lines=$(wc -l <"$TMP/out-$me.jsonl")
        distinct=$(grep -o '"seq":[0-9]*' "$TMP/out-$me.jsonl" | sort -u | wc -l)
        arrived="$lines lines in the file, $distinct distinct seq"
        ((distinct >= last)) ||
            FAILED+=("file max_events $me: $distinct of $last events in the file")
        rm -f "$TMP/out-$me.jsonl"
    fi
    local per_cpu
    per_cpu=$(awk -v n="$deliv" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.0f", n / c; else print "?"}')
    echo "$kind max_events $me: $deliv events in $secs s = $eps events/s; mcpauth CPU $cpu s" \
        "($per_cpu events per CPU-second), rsyslogd CPU $rcpu s; $arrived"
    RESULT[$kind.$me]=$(printf '%8s events/s  %7.2f s  mcpauth CPU %6.2f s (%s events/CPU-s)  %s events' \
        "$eps" "$secs" "$cpu" "$per_cpu" "$deliv")
    [[ $kind == syslog ]] && RESULT[$kind.$me]+=$(printf ', rsyslogd CPU %.2f s' "$rcpu")
    RESULT[$kind.$me.eps]=$eps
    api DELETE "/api/v1/exporters/$id" >/dev/null || die "cannot remove exporter $id"
}

best_of() { # KIND -> "EPS MAX_EVENTS" of the best run
    local b best=0 bme=0 e
    for b in $BATCHES; do
        e=${RESULT[$1.$b.eps]:-0}
        ((e > best)) && best=$e bme=$b
    done
    echo "$best $bme"
}

# ---------------------------------------------------------------- tools
ensure_wrk
command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
if [[ ! -x $RSYSLOGD ]]; then
    log "rsyslogd missing: installing it (scripts/deps.sh test installs rsyslog too)"
    sudo=
    ((EUID == 0)) || sudo=sudo
    $sudo apt-get install -y rsyslog >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y rsyslog >&2; }
    [[ -x $RSYSLOGD ]] || die "rsyslog is not installed and could not be installed"
fi

NPROC=$(nproc)
LOAD_START=$(load1)
if awk -v l="$LOAD_START" -v n="$NPROC" 'BEGIN {exit !(l > n / 4)}'; then
    log "load average $LOAD_START on $NPROC cores at start: other work shares the cores, figures will be low and noisy"
fi

# ---------------------------------------------------------------- server, rsyslogd
build_mcpauth
start_mcpauth
apply_policy bench/policy.yaml.in
ADMIN=$(cat "$DATA/admin.token")
CC_BASIC=$(printf '%s' bench-cc:bench-secret-123 | base64 -w0)

RS_DIR=$TMP/rsyslog
mkdir -p "$RS_DIR/work"
RS_PORT=$(free_port) || die "no free port"
rs_start
log "rsyslogd pid $RS_PID on 127.0.0.1:$RS_PORT"

# ---------------------------------------------------------------- fill
M0=$(metric_events)
((M0 >= 0)) || die "GET /metrics has no mcpauth_audit_events_total"
log "fill: $EVENTS events (wrk -t$THREADS -c$CONNECTIONS, bench/cc.lua)"
FILL_T0=$(now_us)
timeout -k 5 930 wrk -t"$THREADS" -c"$CONNECTIONS" -d900s --timeout 2s -s bench/cc.lua \
    "$ISSUER/oauth/token" -- "$CC_BASIC" "$ISSUER/mcp/bench" >"$TMP/fill.out" 2>"$TMP/fill.err" &
WRK_PID=$!
HAVE=0
while kill -0 "$WRK_PID" 2>/dev/null; do
    sleep 0.2
    m=$(metric_events)
    ((m >= 0)) && HAVE=$((m - M0))
    ((HAVE >= EVENTS)) && break
done
FILL_SECS=$(since_s "$FILL_T0")
stop_load fill
read -r _ FILL_RESP FILL_NON200 FILL_SOCK <<<"$LOADRES"
check_load fill "0 $FILL_RESP $FILL_NON200 $FILL_SOCK"
sleep 0.5
# the log's last seq: the fill and the policy's admin events
STORE_EVENTS=$HAVE
if command -v sqlite3 >/dev/null; then
    STORE_EVENTS=$(sqlite3 -readonly "$DATA/mcpauth.db" "select max(seq) from audit_events") ||
        STORE_EVENTS=$HAVE
fi
echo "fill: $HAVE token.request events in $FILL_SECS s; wrk: $FILL_RESP responses, $FILL_NON200 non-200"
((HAVE >= EVENTS)) || FAILED+=("fill: $HAVE of $EVENTS events")

# ---------------------------------------------------------------- 1, 2: throughput
LOAD_TP=$(load1)
for b in $BATCHES; do throughput syslog "$b"; done
for b in $BATCHES; do throughput file "$b"; done
read -r SYSLOG_EPS SYSLOG_BEST < <(best_of syslog)
read -r FILE_EPS FILE_BEST < <(best_of file)

# ---------------------------------------------------------------- 3: lag under load
LOAD_LAG=$(load1)
LAG_ID=bench-lag
api POST /api/v1/exporters "$(printf '{"id":"%s","type":"syslog","url":"tcp://127.0.0.1:%d","format":"%s","start":"now","batch":{"max_events":%d,"max_wait":"%s"}}' \
    "$LAG_ID" "$RS_PORT" "$SYSLOG_FORMAT" "$LAG_BATCH" "$MAX_WAIT")" >/dev/null || die "cannot create exporter $LAG_ID"
LAG_C0=
for ((i = 0; i < 100; i++)); do
    st=$(status "$LAG_ID")
    read -r c _ _ _ _ state <<<"$st"
    [[ -n $st && $state == idle ]] && { LAG_C0=$c; break; }
    sleep 0.1
done
[[ -n $LAG_C0 ]] || die "exporter $LAG_ID did not start ($(last_error "$LAG_ID"))"
RS_OFF=$(rs_bytes)
log "lag: $RATE tokens/s for $LOAD_DURATION s, syslog exporter max_wait $MAX_WAIT, max_events $LAG_BATCH, sampled every $SAMPLE_MS ms"
start_load "$RATE" "$LOAD_DURATION" lag
LAG_T0=$(now_us)
: >"$TMP/lag.samples"
# the first second is not sampled (the schedule settles); then one sample every
# SAMPLE_MS on a fixed grid (a slow status answer skips ticks, never shifts them)
TICK=$((LAG_T0 + 1000000))
END_US=$((LAG_T0 + LOAD_DURATION * 1000000 - 500000))
while :; do
    sleep_until "$TICK"
    (($(now_us) < END_US)) || break
    st=$(status "$LAG_ID")
    [[ -n $st ]] && echo "$(now_us) $st" >>"$TMP/lag.samples"
    while ((TICK <= $(now_us))); do TICK=$((TICK + SAMPLE_MS * 1000)); done
done
stop_load lag
read -r LAG_RPS LAG_RESP LAG_NON200 LAG_SOCK <<<"$LOADRES"
check_load lag "$LAG_RPS $LAG_RESP $LAG_NON200 $LAG_SOCK"
LAG_RATE=$(awk -v n="$LAG_RESP" -v t="$LOAD_DURATION" 'BEGIN {printf "%.0f", n / t}')
# columns: time cursor last_seq lag_events lag_seconds delivered state
pcts() { # COLUMN -> "n max p99 p50" (nearest rank) of that column of the samples
    awk -v c="$1" '{print $c}' "$TMP/lag.samples" | sort -g | awk '
        {v[NR] = $1}
        END {
            if (!NR) { print "0 0 0 0"; exit }
            p = int(NR * 0.99); if (p < NR * 0.99) p++
            m = int(NR * 0.5); if (m < NR * 0.5) m++; if (m < 1) m = 1
            print NR, v[NR], v[p], v[m] }'
}
read -r LAG_N LAG_MAX LAG_P99 LAG_P50 < <(pcts 5)
read -r _ LAGE_MAX LAGE_P99 _ < <(pcts 4)
echo "lag: $LAG_N samples; lag_seconds max $LAG_MAX p99 $LAG_P99 p50 $LAG_P50; lag_events max $LAGE_MAX p99 $LAGE_P99;" \
    "tokens $LAG_RESP in $LOAD_DURATION s ($LAG_RATE/s, wrk says $LAG_RPS/s), $LAG_NON200 non-200"

# ---------------------------------------------------------------- 4: outage
if [[ -z $OUTAGE_RATE ]]; then
    OUTAGE_RATE=$RATE
    if ((LAG_RATE * 100 < RATE * 95)); then
        OUTAGE_RATE=$((LAG_RATE * 9 / 10))
        log "outage: the lag run achieved $LAG_RATE of $RATE tokens/s; the outage runs at $OUTAGE_RATE/s"
    fi
fi
# the lag exporter's lag drains before the outage starts
for ((i = 0; i < 300; i++)); do
    read -r _ _ le _ _ _ <<<"$(status "$LAG_ID")"
    [[ ${le:-1} == 0 ]] && break
    sleep 0.1
done
LOAD_OUT=$(load1)
log "outage: $OUTAGE_RATE tokens/s; $PRE_OUTAGE s, then rsyslogd stopped for $OUTAGE s"
start_load "$OUTAGE_RATE" $((PRE_OUTAGE + OUTAGE + DRAIN_TIMEOUT + 5)) outage
OUT_T0=$(now_us)
RSS_PRE_MAX=0
for ((i = 0; i < PRE_OUTAGE; i++)); do
    sleep 1
    RSS_PRE_MAX=$(fmax "$RSS_PRE_MAX" "$(rss_mb)")
done
RSS_BEFORE=$(rss_mb)
read -r CUR_STOP _ _ _ _ _ <<<"$(status "$LAG_ID")"
log "outage: stopping rsyslogd (mcpauth VmRSS $RSS_BEFORE MB, exporter cursor $CUR_STOP)"
rs_stop
read -r CUR_STOPPED _ _ _ _ _ <<<"$(status "$LAG_ID")"
STOP_T=$(now_us)
RSS_MAX=$RSS_BEFORE
: >"$TMP/outage.samples"
for ((i = 1; i <= OUTAGE; i++)); do
    # one sample a second, on the second since the stop
    sleep_until $((STOP_T + i * 1000000))
    r=$(rss_mb)
    RSS_MAX=$(fmax "$RSS_MAX" "$r")
    echo "$i $r $(status "$LAG_ID")" >>"$TMP/outage.samples"
    ((i % 10 == 0)) && log "outage: ${i} s, VmRSS $r MB, lag $(awk 'END {print $5 " events, " $6 " s"}' "$TMP/outage.samples")"
done
read -r _ SEQ_RESTART LAGE_RESTART LAGS_RESTART _ _ <<<"$(status "$LAG_ID")"
RSS_AT_RESTART=$(rss_mb)
log "outage: restarting rsyslogd (backlog $LAGE_RESTART events, $LAGS_RESTART s)"
rs_start
RESTART_T=$(now_us)
DRAIN_SECS="" UNDER1_SECS=""
while :; do
    st=$(status "$LAG_ID")
    read -r c _ _ ls _ _ <<<"$st"
    if [[ -n $st && -z $UNDER1_SECS ]] &&
        awk -v l="$ls" -v t="$TARGET_LAG" 'BEGIN {exit !(l < t)}'; then
        UNDER1_SECS=$(since_s "$RESTART_T")
    fi
    if [[ -n $st && -z $DRAIN_SECS ]] && ((c >= SEQ_RESTART)); then
        DRAIN_SECS=$(since_s "$RESTART_T")
    fi
    [[ -n $DRAIN_SECS && -n $UNDER1_SECS ]] && break
    (($(now_us) - RESTART_T < DRAIN_TIMEOUT * 1000000)) || break
    sleep 0.1
done
stop_load outage
read -r OUT_RPS OUT_RESP OUT_NON200 OUT_SOCK <<<"$LOADRES"
check_load outage "$OUT_RPS $OUT_RESP $OUT_NON200 $OUT_SOCK"
OUT_SECS=$(since_s "$OUT_T0")
OUT_ACHIEVED=$(awk -v n="$OUT_RESP" -v t="$OUT_SECS" 'BEGIN {printf "%.0f", n / t}')
[[ -n $DRAIN_SECS ]] ||
    FAILED+=("outage: backlog not delivered $DRAIN_TIMEOUT s after the restart ($(last_error "$LAG_ID"))")
# the load stopped: the last events go out, then every seq the lag exporter handled is
# looked up in rsyslog's file
FINAL=""
for ((i = 0; i < 300; i++)); do
    st=$(status "$LAG_ID")
    read -r c last le _ _ _ <<<"$st"
    [[ -n $st && $le == 0 ]] && { FINAL=$c; break; }
    sleep 0.1
done
[[ -n $FINAL ]] || FAILED+=("outage: lag not back to 0 30 s after the load stopped")
FINAL=${FINAL:-$c}
sleep 2 # rsyslog's flushInterval
read -r RS_LINES RS_DISTINCT < <(rs_seqs "$RS_OFF" "$LAG_C0" "$FINAL")
EXPECTED=$((FINAL - LAG_C0))
GAPS=""
if ((RS_DISTINCT < EXPECTED)); then # the first missing ranges, to place them in time
    GAPS=$(tail -c +$((RS_OFF + 1)) "$RS_DIR/out.log" | awk -v lo="$LAG_C0" -v hi="$FINAL" '
        match($0, /seq="[0-9]+"|"seq":[0-9]+/) { m = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", m); s = m + 0
            if (s > lo && s <= hi) print s }' | sort -nu | awk -v lo="$LAG_C0" -v hi="$FINAL" '
        BEGIN {p = lo}
        {if ($1 > p + 1 && k < 5) {printf "%d-%d (%d) ", p + 1, $1 - 1, $1 - 1 - p; k++}; p = $1}
        END {if (p < hi && k < 5) printf "%d-%d (%d)", p + 1, hi, hi - p}')
fi
MISSING=$((EXPECTED - RS_DISTINCT))
DUPS=$((RS_LINES - RS_DISTINCT))
RSS_RATIO=$(awk -v a="$RSS_MAX" -v b="$RSS_BEFORE" 'BEGIN {printf "%.3f", a / b}')
RSS_PCT=$(awk -v a="$RSS_MAX" -v b="$RSS_BEFORE" 'BEGIN {printf "%+.1f", 100 * (a - b) / b}')
echo "outage: VmRSS $RSS_BEFORE MB before (max $RSS_PRE_MAX MB in the $PRE_OUTAGE s before), max $RSS_MAX MB" \
    "during, $RSS_AT_RESTART MB at the restart; backlog $LAGE_RESTART events; delivered ${DRAIN_SECS:-?} s" \
    "after the restart, lag under $TARGET_LAG s after ${UNDER1_SECS:-?} s; tokens $OUT_RESP in $OUT_SECS s" \
    "($OUT_ACHIEVED/s), $OUT_NON200 non-200"
echo "rsyslog: $RS_DISTINCT of $EXPECTED events of the lag/outage exporter (seq $((LAG_C0 + 1))..$FINAL)," \
    "$RS_LINES lines, $DUPS duplicates, $MISSING missing${GAPS:+: seq $GAPS}; the exporter's cursor was" \
    "$CUR_STOP when rsyslogd was stopped, $CUR_STOPPED once it had exited, $SEQ_RESTART (last_seq) at the restart"
((MISSING <= 0)) ||
    MISSED+=("rsyslog: $MISSING of $EXPECTED events the exporter counted as delivered are not in rsyslog's file (rule 3: never lose events)")
LOAD_END=$(load1)
PEAK_RSS=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER_PID/status")

# ---------------------------------------------------------------- verdicts
verdict() { # NAME OK(0|1) TEXT-IF-MISSED -> PASS/MISS suffix
    if (($2)); then echo "PASS"; else MISSED+=("$1: $3"); echo "MISS"; fi
}
V_SYSLOG=$(verdict syslog $((SYSLOG_EPS >= TARGET_EPS)) "$SYSLOG_EPS events/s, target >= $TARGET_EPS")
V_FILE=$(verdict file $((FILE_EPS >= TARGET_EPS)) "$FILE_EPS events/s, target >= $TARGET_EPS")
V_LAG=$(verdict lag "$(awk -v p="$LAG_P99" -v t="$TARGET_LAG" 'BEGIN {if (p + 0 < t + 0) print 1; else print 0}')" \
    "p99 lag_seconds $LAG_P99 s at $LAG_RATE tokens/s, target < $TARGET_LAG s")
V_RSS=$(verdict rss "$(awk -v a="$RSS_MAX" -v b="$RSS_BEFORE" -v p="$TARGET_RSS_PCT" \
    'BEGIN {if (a + 0 <= b * (1 + p / 100)) print 1; else print 0}')" \
    "VmRSS $RSS_BEFORE -> max $RSS_MAX MB during the outage ($RSS_PCT %), target within $TARGET_RSS_PCT %")
# the syslog exporter's lag run verdict needs the rate it was asked for
((LAG_RATE * 100 >= RATE * 95)) ||
    MISSED+=("lag: only $LAG_RATE of $RATE tokens/s achieved (the lag figure is for that rate)")

# ---------------------------------------------------------------- summary
echo
echo "mcpauth exporter bench ($NPROC cores, $STORE_EVENTS events in the log before the throughput runs)"
printf '%-22s %s\n' "load" "$LOAD_START at start, $LOAD_TP before throughput, $LOAD_LAG before lag, $LOAD_OUT before outage, $LOAD_END at end (1-min average; keep it near 0)"
for b in $BATCHES; do printf '%-22s %s\n' "syslog tcp, batch $b" "${RESULT[syslog.$b]}"; done
for b in $BATCHES; do printf '%-22s %s\n' "file, batch $b" "${RESULT[file.$b]}"; done
printf '%-22s %s events/s (batch %s)   %s (>= %s events/s)\n' "syslog best" "$SYSLOG_EPS" "$SYSLOG_BEST" "$V_SYSLOG" "$TARGET_EPS"
printf '%-22s %s events/s (batch %s)   %s (>= %s events/s)\n' "file best" "$FILE_EPS" "$FILE_BEST" "$V_FILE" "$TARGET_EPS"
printf '%-22s %s tokens/s asked, %s achieved (wrk %s/s), %s non-200\n' "lag load" "$RATE" "$LAG_RATE" "$LAG_RPS" "$LAG_NON200"
printf '%-22s max %s s   p99 %s s   p50 %s s   (%s samples, every %s ms, max_wait %s)   %s (p99 < %s s)\n' \
    "lag_seconds" "$LAG_MAX" "$LAG_P99" "$LAG_P50" "$LAG_N" "$SAMPLE_MS" "$MAX_WAIT" "$V_LAG" "$TARGET_LAG"
printf '%-22s max %s   p99 %s\n' "lag_events" "$LAGE_MAX" "$LAGE_P99"
printf '%-22s %s tokens/s asked, %s achieved, %s non-200; rsyslogd stopped %s s\n' "outage load" "$OUTAGE_RATE" "$OUT_ACHIEVED" "$OUT_NON200" "$OUTAGE"
printf '%-22s before %s MB   max during %s MB   ratio %s (%s %%)   %s (within %s %%)\n' \
    "mcpauth VmRSS" "$RSS_BEFORE" "$RSS_MAX" "$RSS_RATIO" "$RSS_PCT" "$V_RSS" "$TARGET_RSS_PCT"
printf '%-22s %s events (%s s) at the restart; delivered %s s after it; lag < %s s after %s s\n' \
    "drain" "$LAGE_RESTART" "$LAGS_RESTART" "${DRAIN_SECS:-not within $DRAIN_TIMEOUT}" "$TARGET_LAG" "${UNDER1_SECS:-?}"
printf '%-22s %s of %s events of the lag/outage exporter, %s duplicates, %s missing\n' \
    "rsyslog received" "$RS_DISTINCT" "$EXPECTED" "$DUPS" "$MISSING"
printf '%-22s %s MB\n' "peak RSS" "$PEAK_RSS"

rc=0
if ((${#MISSED[@]})); then
    echo
    printf 'MISSED: %s\n' "${MISSED[@]}"
    ((NO_FAIL)) || rc=1
fi
if ((${#FAILED[@]})); then
    echo
    printf 'FAILED: %s\n' "${FAILED[@]}"
    rc=1
fi
exit "$rc"
