#!/usr/bin/env bash
# bench/trace.sh — live trace benchmark (DESIGN.md rule 4: tracing never slows
# issuance).
#
# Builds mcpauth optimised in build-bench/, starts it in dev mode on a free
# 127.0.0.1 port with a throw-away data dir and applies bench/policy.yaml.in.
# Then:
#   1. client-credentials throughput (wrk -t2 -c64, bench/cc.lua, as run.sh)
#      with 0 and with BENCH_SUBSCRIBERS (100) trace subscribers connected and
#      reading all they are sent (bench/trace-client.mjs sink, one node process),
#      measured A B B A (0, 100, 100, 0) so a drift of the machine cancels out;
#      prints both req/s and the difference in % (target: under 5 %). The
#      server's trace sender runs at SCHED_IDLE within a CPU budget (part of
#      the idle CPU plus 1 % of a core, docs/tracing.md): when issuance saturates
#      the CPU it falls behind and the streams get `dropped` markers for what it
#      could not send (every entry read or counted in a marker);
#   2. the delay from request to entry at a subscriber at BENCH_RATE (5,000)
#      requests/s (wrk with bench/rate.lua, open-loop): one subscriber stamps
#      each entry as it arrives and subtracts the entry's `time` (when the
#      server received the request); prints p50/p99 (target: p99 under 50 ms).
# Exits 1 when a target is missed (unless BENCH_NO_FAIL=1) and whenever the run
# itself is broken (over 0.1 % non-200, a subscriber that fails, an entry neither
# read nor counted as dropped, the delay run's subscriber falling behind, the rate
# not reached within 10 %).
#
# Knobs (environment):
#   BENCH_QUICK=0          1: a short run to check the script (3 s per run, 1 s warm-up)
#   BENCH_DURATION=20      seconds per measured run (QUICK: 3)
#   BENCH_WARMUP=3         seconds of warm-up before the first run (QUICK: 1)
#   BENCH_SUBSCRIBERS=100  trace streams during the B runs
#   BENCH_RATE=5000        requests/s for the delay run
#   BENCH_CONNECTIONS=64   wrk -c
#   BENCH_THREADS=2        wrk -t
#   BENCH_BUILD=build-bench  the build directory (configured when it is not yet)
#   BENCH_NO_FAIL=0        1: exit 0 even when a target is missed
#   BENCH_SUBSCRIBER_PRIO=normal  the 100 subscribers' process: idle (SCHED_IDLE, chrt -i 0)
#                          stands for terminals on other machines, whose CPU is not the
#                          issuer's; normal: they compete with issuance for these 2 cores
# Every request goes to 127.0.0.1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    DURATION=${BENCH_DURATION:-3}
    WARMUP=${BENCH_WARMUP:-1}
else
    DURATION=${BENCH_DURATION:-20}
    WARMUP=${BENCH_WARMUP:-3}
fi
SUBSCRIBERS=${BENCH_SUBSCRIBERS:-100}
RATE=${BENCH_RATE:-5000}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
NO_FAIL=${BENCH_NO_FAIL:-0}
SUB_PRIO=${BENCH_SUBSCRIBER_PRIO:-normal}
[[ $SUB_PRIO == idle || $SUB_PRIO == normal ]] ||
    die "BENCH_SUBSCRIBER_PRIO must be idle or normal, not '$SUB_PRIO'"
BUILD=${BENCH_BUILD:-build-bench}
DIFF_TARGET=5   # % throughput lost with the subscribers
DELAY_TARGET=50 # ms, p99 delay request -> entry

# die, log, stop_pid, stop_server, free_port, http_status, wait_healthy, to_ms,
# ensure_wrk, build_mcpauth, start_mcpauth, mcp, apply_policy
# shellcheck source=bench/lib.sh
. bench/lib.sh

for v in QUICK DURATION WARMUP SUBSCRIBERS RATE CONNECTIONS THREADS NO_FAIL; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a whole number, not '${!v}'"
done
((DURATION > 0 && SUBSCRIBERS > 0 && RATE > 0)) ||
    die "BENCH_DURATION, BENCH_SUBSCRIBERS and BENCH_RATE must be at least 1"
((THREADS > 0 && CONNECTIONS >= THREADS)) ||
    die "need BENCH_THREADS >= 1 and BENCH_CONNECTIONS >= BENCH_THREADS"
command -v node >/dev/null || die "node is needed for the subscribers (bench/trace-client.mjs)"
[[ -f bench/rate.lua ]] || die "bench/rate.lua is missing"

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mcpauth-bench-trace.XXXXXX")
SERVER_PID=
CLIENT_PID=
CLIENT_OUT=

stop_client() { # TERM: the client prints its figures and exits
    [[ -n $CLIENT_PID ]] || return 0
    kill -TERM "$CLIENT_PID" 2>/dev/null || true
    wait "$CLIENT_PID" 2>/dev/null || true
    CLIENT_PID=
}
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    stop_pid "$CLIENT_PID"
    stop_server
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FAILED=() # the run is broken: exit 1 whatever BENCH_NO_FAIL says
MISSED=() # a target is missed: exit 1 unless BENCH_NO_FAIL=1
declare -A RESULT

# run_wrk NAME SCRIPT SECS ARGS... -> wrk output in $TMP/NAME.out; sets RPS, RESP, BAD
run_wrk() {
    local name=$1 script=$2 secs=$3
    shift 3
    timeout -k 5 $((secs + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --timeout 2s \
        --latency -s "$script" "$ISSUER/oauth/token" -- "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" ||
        { cat "$TMP/$name.out" "$TMP/$name.err" >&2; die "wrk failed ($name)"; }
    [[ -s $TMP/$name.err ]] && sed 's/^/  /' "$TMP/$name.err" >&2
    grep -q '^bench: responses ' "$TMP/$name.out" ||
        die "$name: the wrk script printed no counts"
    RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$TMP/$name.out")
    RESP=$(awk '/^bench: responses / {print $3}' "$TMP/$name.out")
    BAD=$(awk '/^bench: responses / {n = $5} /^bench: socket_errors / {s = $4 + $6 + $8 + $10}
               END {print n + s}' "$TMP/$name.out")
    log "$name: $RPS req/s, $RESP responses, $BAD non-200 or socket errors"
    if ((RESP == 0 || BAD * 1000 > RESP)); then
        FAILED+=("$name: $BAD non-200 or socket errors of $RESP responses")
    fi
}

TICK=$(getconf CLK_TCK)
cpu_s() { # PID -> user + system CPU seconds so far
    awk -v t="$TICK" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"
}

metric() { # NAME -> its value in /metrics
    curl -s -m 5 "$ISSUER/metrics" | awk -v n="$1" '$1 == n {print $2}'
}

# start_client MODE ARGS...: bench/trace-client.mjs in the background, waits for `ready`
# (output in $CLIENT_OUT, one file per mode: a `ready` of the last client must not count)
start_client() {
    CLIENT_OUT=$TMP/client-$1.out
    local prio=()
    [[ $1 == sink && $SUB_PRIO == idle ]] && prio=(chrt -i 0)
    MCPAUTH_TOKEN=$(cat "$DATA/admin.token") "${prio[@]}" node bench/trace-client.mjs "$@" \
        >"$CLIENT_OUT" 2>"$TMP/client.err" &
    CLIENT_PID=$!
    local i
    for ((i = 0; i < 300; i++)); do
        grep -qs '^ready$' "$CLIENT_OUT" && return 0
        kill -0 "$CLIENT_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$TMP/client.err" >&2
    die "trace-client $1 did not get its streams open"
}

client_field() { # KEY -> a figure of the client's last line
    awk -v k="$1" '/^trace-client:/ {for (i = 2; i < NF; i++) if ($i == k) v = $(i + 1)} END {print v}' \
        "$CLIENT_OUT"
}

# ---------------------------------------------------------------- start
ensure_wrk
command -v curl >/dev/null || die "curl is needed (/metrics)"
NPROC=$(nproc)
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD_START" -v n="$NPROC" 'BEGIN {exit !(l > n / 4)}'; then
    log "load average $LOAD_START on $NPROC cores before the runs: other work shares the cores, figures will be low and noisy"
fi
build_mcpauth
start_mcpauth
apply_policy bench/policy.yaml.in
BASIC=$(printf '%s' bench-cc:bench-secret-123 | base64 -w0)
RESOURCE=$ISSUER/mcp/bench
TRACE_URL=$ISSUER/api/v1/trace

# ---------------------------------------------------------------- 1. throughput
if ((WARMUP > 0)); then
    log "warm-up ${WARMUP} s"
    run_wrk warmup bench/cc.lua "$WARMUP" "$BASIC" "$RESOURCE"
fi
log "throughput: A B B A, ${DURATION} s each (A: no subscriber, B: $SUBSCRIBERS subscribers)"
# the server's CPU per 1000 tokens in each run (us of CPU per token) tells the
# subscribers' cost on the server apart from the cores they take from it
CPU_US=()
cpu_run() { # NAME: run_wrk with cc.lua, then the server's CPU us per token into CPU_US
    local c0 c1
    c0=$(cpu_s "$SERVER_PID")
    run_wrk "$1" bench/cc.lua "$DURATION" "$BASIC" "$RESOURCE"
    c1=$(cpu_s "$SERVER_PID")
    CPU_US+=("$(awk -v a="$c0" -v b="$c1" -v n="$RESP" 'BEGIN {printf "%.0f", n ? 1e6 * (b - a) / n : 0}')")
}
cpu_run a1
A1=$RPS
start_client sink "$SUBSCRIBERS" "$TRACE_URL"
SUBS=$(metric mcpauth_trace_subscribers)
[[ $SUBS == "$SUBSCRIBERS" ]] || FAILED+=("mcpauth_trace_subscribers $SUBS with $SUBSCRIBERS streams open")
DROPPED0=$(metric mcpauth_trace_dropped_total)
PUB0=$(metric mcpauth_trace_entries_total)
cpu_run b1
B1=$RPS
cpu_run b2
B2=$RPS
sleep 1 # the subscribers read the last entries
CLIENT_CPU=$(cpu_s "$CLIENT_PID")
PUB=$(($(metric mcpauth_trace_entries_total) - PUB0))
DROPPED=$(($(metric mcpauth_trace_dropped_total) - DROPPED0))
stop_client
MIN_ENTRIES=$(client_field min_entries)
MIN_ACCOUNTED=$(client_field min_accounted)
SINK_ENTRIES=$(client_field entries)
SINK_MB=$(awk -v b="$(client_field bytes)" 'BEGIN {printf "%.0f", b / 1e6}')
cpu_run a2
A2=$RPS
# Under saturation the trace yields to issuance (DESIGN rule 4): a stream may be sent
# `dropped` markers instead of entries. What is not allowed is an entry neither read nor
# counted as dropped.
if [[ -z $MIN_ACCOUNTED ]] || ((MIN_ACCOUNTED < PUB)); then
    FAILED+=("a subscriber read or was told of ${MIN_ACCOUNTED:-?} of $PUB entries (read: min $MIN_ENTRIES): entries lost silently")
fi
DELIVERED=$(awk -v e="$SINK_ENTRIES" -v n="$SUBSCRIBERS" -v p="$PUB" 'BEGIN {printf "%.1f", p ? 100 * e / (n * p) : 0}')
read -r A B DIFF < <(awk -v a1="$A1" -v a2="$A2" -v b1="$B1" -v b2="$B2" \
    'BEGIN {a = (a1 + a2) / 2; b = (b1 + b2) / 2; printf "%.0f %.0f %.1f\n", a, b, 100 * (a - b) / a}')
RESULT[tput]=$(printf '%8s req/s with 0, %8s req/s with %s subscribers   (A %s %s, B %s %s)' \
    "$A" "$B" "$SUBSCRIBERS" "$A1" "$A2" "$B1" "$B2")
if awk -v d="$DIFF" -v t="$DIFF_TARGET" 'BEGIN {exit !(d < t)}'; then
    RESULT[diff]="$DIFF %   PASS (< $DIFF_TARGET %)"
else
    RESULT[diff]="$DIFF %   FAIL (< $DIFF_TARGET %)"
    MISSED+=("throughput with $SUBSCRIBERS subscribers: $DIFF % lower (target < $DIFF_TARGET %)")
fi
RESULT[sink]="$SUBSCRIBERS streams read $SINK_ENTRIES entries ($SINK_MB MB, $DELIVERED % of $SUBSCRIBERS x $PUB published; min $MIN_ENTRIES per stream), the rest announced by dropped markers (server count $DROPPED); the reader ($SUB_PRIO priority) used $CLIENT_CPU CPU s"
RESULT[cpu]="${CPU_US[0]} ${CPU_US[3]} us per token with 0, ${CPU_US[1]} ${CPU_US[2]} us with $SUBSCRIBERS subscribers (A1 A2, B1 B2)"

# ---------------------------------------------------------------- 2. delay
PER_THREAD=$(((RATE + THREADS - 1) / THREADS))
log "delay: ${DURATION} s at $RATE req/s (bench/rate.lua, $PER_THREAD per wrk thread), 1 subscriber"
start_client latency "$TRACE_URL"
PUB0=$(metric mcpauth_trace_entries_total)
run_wrk rate bench/rate.lua "$DURATION" "$BASIC" "$RESOURCE" "$PER_THREAD"
RATE_RPS=$RPS
PUB=$(($(metric mcpauth_trace_entries_total) - PUB0))
stop_client
ENTRIES=$(client_field entries)
LAT_DROPPED=$(client_field dropped)
((${LAT_DROPPED:-0} == 0)) || FAILED+=("delay run: the subscriber was dropped $LAT_DROPPED entries")
P50=$(client_field p50) P99=$(client_field p99) PMAX=$(client_field max)
if awk -v r="$RATE_RPS" -v t="$RATE" 'BEGIN {exit !(r < 0.9 * t)}'; then
    FAILED+=("delay run: $RATE_RPS req/s, under 90 % of the $RATE asked: the machine cannot hold the rate")
fi
if [[ -z $ENTRIES ]] || ((ENTRIES < PUB)); then
    FAILED+=("delay run: the subscriber read ${ENTRIES:-?} of $PUB entries published ($RESP responses)")
fi
RESULT[delay]=$(printf 'p50 %6s ms   p99 %6s ms   max %6s ms   %s entries at %s req/s' \
    "$P50" "$P99" "$PMAX" "$ENTRIES" "$RATE_RPS")
if awk -v p="$P99" -v t="$DELAY_TARGET" 'BEGIN {exit !(p + 0 < t && p != "nan")}'; then
    RESULT[delay]+="   PASS (p99 < $DELAY_TARGET ms)"
else
    RESULT[delay]+="   FAIL (p99 < $DELAY_TARGET ms)"
    MISSED+=("delay request -> entry: p99 $P99 ms (target < $DELAY_TARGET ms)")
fi
LOAD_END=$(cut -d' ' -f1 /proc/loadavg)

# ---------------------------------------------------------------- summary
echo
echo "mcpauth trace bench ($NPROC cores, wrk -t$THREADS -c$CONNECTIONS, $DURATION s per run)"
printf '%-22s %s\n' "load" "$LOAD_START at start, $LOAD_END at end (1-min average; keep it near 0)"
printf '%-22s %s\n' "client_credentials" "${RESULT[tput]}"
printf '%-22s %s\n' "with subscribers" "${RESULT[diff]}"
printf '%-22s %s\n' "subscribers" "${RESULT[sink]}"
printf '%-22s %s\n' "server CPU" "${RESULT[cpu]}"
printf '%-22s %s\n' "delay request->entry" "${RESULT[delay]}"

if ((${#FAILED[@]})); then
    echo
    printf 'FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
if ((${#MISSED[@]})); then
    echo
    printf 'MISSED: %s\n' "${MISSED[@]}"
    ((NO_FAIL)) || exit 1
fi
exit 0
