#!/usr/bin/env bash
# bench/logs.sh — system log API benchmark (GET /api/v1/logs and
# /api/v1/logs/export on a large store).
#
# Builds mcpauth optimised in build-bench/, starts it in dev mode on a free
# 127.0.0.1 port with a throw-away data dir, applies bench/logs-policy.yaml.in,
# mints one dev-IdP ID token per user and fills the audit log with real
# token.request events through POST /oauth/token (wrk + bench/fill.lua: token
# exchange rotating over the users' subject tokens, plus client credentials)
# until it holds BENCH_EVENTS events. Then it times, with curl, a page of one
# user's events in a one-hour window, the same without a window and in a
# one-minute window, a q= keyword search, and full exports in jsonl, csv and
# ocsf, and prints a summary with PASS/FAIL against the targets:
#   * user eq + one-hour window: p95 under 50 ms;
#   * full jsonl export: at least 150,000 events/s.
# Exits 1 when a target is missed (unless BENCH_NO_FAIL=1) and whenever the
# run itself is broken (fill errors, non-200 answers, a truncated export).
#
# Knobs (environment):
#   BENCH_EVENTS=1000000     events in the store before measuring
#   BENCH_USERS=50           distinct users (subject tokens) in the fill
#   BENCH_QUERY_RUNS=20      timed requests per query (after 2 untimed ones)
#   BENCH_FILL_TIMEOUT=900   seconds: the fill stops there, whatever the count
#   BENCH_CONNECTIONS=64     wrk -c for the fill
#   BENCH_THREADS=2          wrk -t for the fill
#   BENCH_NO_FAIL=0          1: exit 0 even when a target is missed
# Every request goes to 127.0.0.1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

EVENTS=${BENCH_EVENTS:-1000000}
USERS=${BENCH_USERS:-50}
RUNS=${BENCH_QUERY_RUNS:-20}
FILL_TIMEOUT=${BENCH_FILL_TIMEOUT:-900}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
NO_FAIL=${BENCH_NO_FAIL:-0}
BUILD=build-bench
CC_EVERY=5              # every 5th fill request is client credentials (no user)
QUERY_TARGET_MS=50      # user eq + one-hour window, p95
EXPORT_TARGET=150000    # jsonl export, events/s

# die, log, stop_pid, stop_server, free_port, http_status, wait_healthy, to_ms,
# ensure_wrk, build_mcpauth, start_mcpauth, mcp, apply_policy
# shellcheck source=bench/lib.sh
. bench/lib.sh

for v in EVENTS USERS RUNS FILL_TIMEOUT CONNECTIONS THREADS NO_FAIL; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a whole number, not '${!v}'"
done
((EVENTS > 0 && USERS > 0 && RUNS > 0 && FILL_TIMEOUT > 0)) ||
    die "BENCH_EVENTS, BENCH_USERS, BENCH_QUERY_RUNS and BENCH_FILL_TIMEOUT must be at least 1"
((THREADS > 0 && CONNECTIONS >= THREADS)) ||
    die "need BENCH_THREADS >= 1 and BENCH_CONNECTIONS >= BENCH_THREADS"

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mcpauth-bench-logs.XXXXXX")
SERVER_PID=
WRK_PID=
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    stop_pid "$WRK_PID"
    stop_server
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
load1() { cut -d' ' -f1 /proc/loadavg; }
now() { echo "$EPOCHREALTIME"; }
since_s() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}'; }
rfc3339() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

db_count() { # events in the store (a read-only connection beside the server's)
    sqlite3 -readonly "$DATA/mcpauth.db" "select count(*) from audit_events"
}
metric_events() { # events the server's writer has committed since it started
    { curl -s -m 5 "$ISSUER/metrics" || true; } |
        awk '$1 == "mcpauth_audit_events_total" {print $2; f = 1} END {if (!f) print -1}'
}

FAILED=() # the run is broken: exit 1 whatever BENCH_NO_FAIL says
MISSED=() # a target is missed: exit 1 unless BENCH_NO_FAIL=1
declare -A RESULT

# measure NAME RUNS [curl -G data...]: GET /api/v1/logs RUNS times (after two
# untimed ones); min, median and p95 (nearest rank) of curl's time_total, and
# the number of events in the answer, into RESULT[NAME] and RESULT[NAME.p95]
measure() {
    local name=$1 runs=$2 i out code t n min med p95
    shift 2
    local times=()
    for ((i = 0; i < runs + 2; i++)); do
        out=$(curl -sS -m 60 -o "$TMP/page.json" -w '%{http_code} %{time_total}' \
            -H "Authorization: Bearer $ADMIN" -G "$ISSUER/api/v1/logs" "$@") || out="000 0"
        code=${out%% *} t=${out#* }
        if [[ $code != 200 ]]; then
            log "$name: HTTP $code: $(head -c 300 "$TMP/page.json" 2>/dev/null)"
            RESULT[$name]="HTTP $code (not measured)"
            RESULT[$name.p95]=
            FAILED+=("$name: HTTP $code")
            return 0
        fi
        ((i < 2)) || times+=("$t")
    done
    n=$({ grep -o '"seq":[0-9]' "$TMP/page.json" || true; } | wc -l)
    RESULT[$name.n]=$n
    read -r min med p95 < <(printf '%s\n' "${times[@]}" | sort -g | awk '
        {v[NR] = $1 * 1000}
        END {m = int((NR + 1) / 2); p = int(NR * 0.95); if (p < NR * 0.95) p++
             printf "%.2f %.2f %.2f\n", v[1], v[m], v[p]}')
    RESULT[$name]=$(printf 'min %7s ms   median %7s ms   p95 %7s ms   %5s events' \
        "$min" "$med" "$p95" "$n")
    RESULT[$name.p95]=$p95
    echo "$name: min $min ms, median $med ms, p95 $p95 ms over $runs runs, $n events returned"
}

# export_run FMT: the whole log in FMT, lines counted as they arrive
export_run() {
    local fmt=$1 out code size t lines
    log "export $fmt"
    curl -sS -m 900 -o - -w '%{stderr}%{http_code} %{size_download} %{time_total}\n' \
        -H "Authorization: Bearer $ADMIN" "$ISSUER/api/v1/logs/export?format=$fmt" \
        2>"$TMP/export.err" | wc -l >"$TMP/export.lines" || true
    out=$(tail -n 1 "$TMP/export.err")
    read -r code size t <<<"$out" || true
    lines=$(cat "$TMP/export.lines")
    if [[ ${code:-} != 200 ]] || ! awk -v t="${t:-0}" 'BEGIN {exit !(t > 0)}'; then
        cat "$TMP/export.err" >&2
        RESULT[export.$fmt]="failed (HTTP ${code:-?})"
        RESULT[export.$fmt.eps]=0
        FAILED+=("export $fmt: HTTP ${code:-?}")
        return 0
    fi
    local eps mbps
    eps=$(awk -v n="$STORE_EVENTS" -v t="$t" 'BEGIN {printf "%.0f", n / t}')
    mbps=$(awk -v s="$size" -v t="$t" 'BEGIN {printf "%.1f", s / t / 1e6}')
    RESULT[export.$fmt]=$(printf '%8s events/s   %6s MB/s   %7.2f s   %s MB   %s lines' \
        "$eps" "$mbps" "$t" "$(awk -v s="$size" 'BEGIN {printf "%.0f", s / 1e6}')" "$lines")
    RESULT[export.$fmt.eps]=$eps
    echo "export $fmt: $size bytes, $lines lines in $t s: $eps events/s, $mbps MB/s"
    # jsonl is one event a line: fewer lines than events is a truncated download
    if [[ $fmt == jsonl ]] && ((lines != STORE_EVENTS)); then
        FAILED+=("export jsonl: $lines lines for $STORE_EVENTS events in the store")
    fi
}

# ---------------------------------------------------------------- tools
ensure_wrk
command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
command -v sqlite3 >/dev/null || die "sqlite3 is needed to count the events (apt-get install sqlite3)"

NPROC=$(nproc)
LOAD_START=$(load1)
if awk -v l="$LOAD_START" -v n="$NPROC" 'BEGIN {exit !(l > n / 4)}'; then
    log "load average $LOAD_START on $NPROC cores at start: other work shares the cores, figures will be low and noisy"
fi

# ---------------------------------------------------------------- server
build_mcpauth
start_mcpauth
apply_policy bench/logs-policy.yaml.in
ADMIN=$(cat "$DATA/admin.token")

log "minting $USERS subject tokens (mcpauth dev id-token)"
: >"$TMP/tokens"
for ((i = 1; i <= USERS; i++)); do
    tok=$(mcp dev id-token --user "user$i@example.com" --groups bench --ttl 2h 2>"$TMP/id-token.err") ||
        die "mcpauth dev id-token failed: $(head -c 300 "$TMP/id-token.err")"
    tok=$(printf '%s\n' "$tok" | awk 'NF {t = $NF} END {print t}')
    [[ $tok =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] ||
        die "mcpauth dev id-token gave no token for user$i"
    echo "$tok" >>"$TMP/tokens"
done

# ---------------------------------------------------------------- fill
BASE=$(db_count)
M0=$(metric_events)
((M0 >= 0)) || die "GET /metrics has no mcpauth_audit_events_total"
NEED=$((EVENTS - BASE))
# one event per response; a few spare so that socket errors cannot leave it short
QUOTA=$(((NEED + CONNECTIONS + THREADS - 1) / THREADS))
log "fill: $NEED events (wrk -t$THREADS -c$CONNECTIONS, at most $FILL_TIMEOUT s)"
FILL_T0=$(now)
timeout -k 5 $((FILL_TIMEOUT + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${FILL_TIMEOUT}s" \
    --timeout 2s -s bench/fill.lua "$ISSUER/oauth/token" -- \
    "$(printf '%s' bench-te:bench-secret-456 | base64 -w0)" \
    "$(printf '%s' bench-cc:bench-secret-123 | base64 -w0)" \
    "$ISSUER/mcp/bench" "$TMP/tokens" "$QUOTA" "$CC_EVERY" \
    >"$TMP/fill.out" 2>"$TMP/fill.err" &
WRK_PID=$!
HAVE=$BASE LAST=$BASE STALL=0 TICK=0 FILL_SECS=
while kill -0 "$WRK_PID" 2>/dev/null; do
    sleep 1
    m=$(metric_events)
    ((m >= 0)) && HAVE=$((BASE + m - M0))
    if ((HAVE >= EVENTS)); then
        FILL_SECS=$(since_s "$FILL_T0")
        break
    fi
    # the threads stop at their quota: a count that no longer moves ends the fill
    if ((HAVE != LAST)); then
        STALL=0
    elif ((++STALL >= 10)); then
        break
    fi
    LAST=$HAVE
    if ((++TICK % 10 == 0)); then
        log "fill: $HAVE events after $(since_s "$FILL_T0") s (load $(load1))"
    fi
    if awk -v t="$(since_s "$FILL_T0")" -v m="$FILL_TIMEOUT" 'BEGIN {exit !(t >= m)}'; then
        break
    fi
done
[[ -n $FILL_SECS ]] || FILL_SECS=$(since_s "$FILL_T0")
FILL_T1=$(now)
# SIGINT: wrk stops and prints its counts (timeout passes the signal on)
kill -INT "$WRK_PID" 2>/dev/null || true
wait "$WRK_PID" || true
WRK_PID=
cat "$TMP/fill.out"
[[ -s $TMP/fill.err ]] && sed 's/^/  /' "$TMP/fill.err" >&2
LOAD_FILL=$(load1)

FILL_RESP=$(awk '/^bench: responses / {print $3}' "$TMP/fill.out")
FILL_NON200=$(awk '/^bench: responses / {print $5}' "$TMP/fill.out")
FILL_SOCK=$(awk '/^bench: socket_errors / {print $4 + $6 + $8 + $10}' "$TMP/fill.out")
[[ -n $FILL_RESP ]] || die "fill: the wrk script printed no counts (see above)"
sleep 1 # the last responses' events are committed before the responses; this is margin only
STORE_EVENTS=$(db_count)
FILL_RATE=$(awk -v n="$((STORE_EVENTS - BASE))" -v t="$FILL_SECS" 'BEGIN {printf "%.0f", n / t}')
echo "fill: $STORE_EVENTS events in the store ($((STORE_EVENTS - BASE)) written in $FILL_SECS s," \
    "$FILL_RATE events/s); wrk: $FILL_RESP responses, $FILL_NON200 non-200, $FILL_SOCK socket errors"
if ((STORE_EVENTS < EVENTS)); then
    FAILED+=("fill: $STORE_EVENTS of $EVENTS events after $FILL_SECS s (limit BENCH_FILL_TIMEOUT=$FILL_TIMEOUT)")
fi
if ((FILL_RESP == 0 || (FILL_NON200 + FILL_SOCK) * 1000 > FILL_RESP + FILL_SOCK)); then
    FAILED+=("fill: $FILL_NON200 non-200 and $FILL_SOCK socket errors of $((FILL_RESP + FILL_SOCK))")
fi
sqlite3 -readonly "$DATA/mcpauth.db" \
    "select count(distinct user) from audit_events where user is not null" >"$TMP/users"
echo "fill: $(cat "$TMP/users") distinct users"

# ---------------------------------------------------------------- queries
# windows around the middle of the fill: one hour (holds the whole fill, which
# is shorter) and one minute
MID=$(awk -v a="$FILL_T0" -v b="$FILL_T1" 'BEGIN {printf "%d", (a + b) / 2}')
SINCE_1H=$(rfc3339 $((MID - 1800))) UNTIL_1H=$(rfc3339 $((MID + 1800)))
SINCE_1M=$(rfc3339 $((MID - 30))) UNTIL_1M=$(rfc3339 $((MID + 30)))
QUSER=user7@example.com
((USERS >= 7)) || QUSER=user1@example.com
FILTER="user eq \"$QUSER\""
log "queries: $RUNS runs each, filter '$FILTER', hour $SINCE_1H .. $UNTIL_1H"
echo "query plan (user eq + window, as src/store/sqlite_query.c builds it):"
sqlite3 -readonly "$DATA/mcpauth.db" "EXPLAIN QUERY PLAN SELECT seq, doc FROM audit_events
    WHERE 1 AND (user = '$QUSER') AND time >= '$SINCE_1H' AND time < '$UNTIL_1H'
    ORDER BY seq ASC LIMIT 100" | sed 's/^/  /'
IN_1H=$(sqlite3 -readonly "$DATA/mcpauth.db" "select count(*) from audit_events
    where user = '$QUSER' and time >= '$SINCE_1H' and time < '$UNTIL_1H'")
echo "  $QUSER has $IN_1H events in the hour (all read and sorted by seq for a page of 100)"
measure user_1h "$RUNS" --data-urlencode "filter=$FILTER" \
    --data-urlencode "since=$SINCE_1H" --data-urlencode "until=$UNTIL_1H" --data-urlencode limit=100
measure user_all "$RUNS" --data-urlencode "filter=$FILTER" --data-urlencode limit=100
measure user_1m "$RUNS" --data-urlencode "filter=$FILTER" \
    --data-urlencode "since=$SINCE_1M" --data-urlencode "until=$UNTIL_1M" --data-urlencode limit=100
measure keyword "$RUNS" --data-urlencode "q=$QUSER" --data-urlencode limit=100
# a keyword found nowhere: every document is read (worst case; few runs)
measure keyword_miss "$(((RUNS < 3) ? RUNS : 3))" --data-urlencode "q=no-such-keyword" \
    --data-urlencode limit=100

# ---------------------------------------------------------------- exports
STORE_EVENTS=$(db_count) # unchanged by reads; counted again for the rate
for fmt in jsonl csv ocsf; do
    export_run "$fmt"
done

PEAK_RSS=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER_PID/status")
DB_MB=$(du -cm "$DATA"/mcpauth.db* | awk 'END {print $1}')
LOAD_END=$(load1)
stop_server

# ---------------------------------------------------------------- verdicts
Q=${RESULT[user_1h.p95]:-}
if [[ -n $Q ]]; then
    if awk -v p="$Q" -v t="$QUERY_TARGET_MS" 'BEGIN {exit !(p < t)}'; then
        RESULT[user_1h]+="   PASS (p95 < $QUERY_TARGET_MS ms)"
    else
        RESULT[user_1h]+="   FAIL (p95 < $QUERY_TARGET_MS ms)"
        MISSED+=("user eq + one-hour window: p95 $Q ms, target < $QUERY_TARGET_MS ms")
    fi
fi
E=${RESULT[export.jsonl.eps]:-0}
if ((E > 0)); then
    if ((E >= EXPORT_TARGET)); then
        RESULT[export.jsonl]+="   PASS (>= $EXPORT_TARGET events/s)"
    else
        RESULT[export.jsonl]+="   FAIL (>= $EXPORT_TARGET events/s)"
        MISSED+=("jsonl export: $E events/s, target >= $EXPORT_TARGET events/s")
    fi
fi

# ---------------------------------------------------------------- summary
echo
echo "mcpauth log bench ($NPROC cores, $STORE_EVENTS events, $USERS users, $RUNS runs per query)"
printf '%-22s %s\n' "load" "$LOAD_START at start, $LOAD_FILL after the fill, $LOAD_END at end (1-min average; keep it near 0)"
printf '%-22s %s\n' "fill" "$((STORE_EVENTS - BASE)) events in $FILL_SECS s ($FILL_RATE events/s, wrk -t$THREADS -c$CONNECTIONS), non-200 $FILL_NON200"
printf '%-22s %s\n' "store" "$DB_MB MB (mcpauth.db with its WAL)"
printf '%-22s %s\n' "user + 1 h window" "${RESULT[user_1h]}"
printf '%-22s %s\n' "" "(the user has $IN_1H events in that hour)"
printf '%-22s %s\n' "user, no window" "${RESULT[user_all]}"
printf '%-22s %s\n' "user + 1 min window" "${RESULT[user_1m]}"
printf '%-22s %s\n' "q= keyword (user)" "${RESULT[keyword]}"
printf '%-22s %s\n' "q= keyword (miss)" "${RESULT[keyword_miss]}"
printf '%-22s %s\n' "export jsonl" "${RESULT[export.jsonl]}"
printf '%-22s %s\n' "export csv" "${RESULT[export.csv]}"
printf '%-22s %s\n' "export ocsf" "${RESULT[export.ocsf]}"
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
