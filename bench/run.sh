#!/usr/bin/env bash
# bench/run.sh — token endpoint benchmark (DESIGN.md, "Performance model").
#
# Builds mcpauth optimised in build-bench/, starts it in dev mode on a free
# 127.0.0.1 port with a throw-away data dir, applies bench/policy.yaml.in and
# drives POST /oauth/token with wrk: client credentials (bench/cc.lua) and ID-JAG
# token exchange (bench/te.lua), then the bare floor (bench/bare/bare.c) with the
# same cc.lua. Prints req/s, p50, p99 and the non-200 count of each run, the
# server's peak RSS, openssl's ES256 sign/s, the audit events written, and a
# summary. Exits 1 when more than 0.1 % of any measured run's responses are
# not 200 (or fail at the socket): a benchmark of errors is worthless.
#
# Knobs (environment):
#   BENCH_DURATION=30     seconds per measured run (a 3 s warm-up precedes each)
#   BENCH_CONNECTIONS=64  wrk -c
#   BENCH_THREADS=2       wrk -t
#   BENCH_WARMUP=3        seconds of warm-up (0: none)
#   BENCH_BARE=1          also bench the bare floor (0: skip)
#   BENCH_MCPAUTH=1       bench mcpauth (0: only the bare floor and openssl speed)
#   BENCH_OPENSSL=1       run `openssl speed` (0: skip, saves 6 s)
# Every load stays on 127.0.0.1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${BENCH_DURATION:-30}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
WARMUP=${BENCH_WARMUP:-3}
BARE=${BENCH_BARE:-1}
MCPAUTH=${BENCH_MCPAUTH:-1}
OPENSSL=${BENCH_OPENSSL:-1}
BUILD=build-bench

# die, log, stop_pid, stop_server, free_port, http_status, wait_healthy, to_ms,
# ensure_wrk, build_mcpauth, start_mcpauth, mcp, apply_policy
# shellcheck source=bench/lib.sh
. bench/lib.sh

for v in DURATION CONNECTIONS THREADS WARMUP BARE MCPAUTH OPENSSL; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a whole number, not '${!v}'"
done
((DURATION > 0)) || die "BENCH_DURATION must be at least 1"
((THREADS > 0 && CONNECTIONS >= THREADS)) ||
    die "need BENCH_THREADS >= 1 and BENCH_CONNECTIONS >= BENCH_THREADS"

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mcpauth-bench.XXXXXX")
SERVER_PID=
BARE_PID=

stop_bare() { stop_pid "$BARE_PID"; BARE_PID=; }
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    stop_server
    stop_bare
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
# run_wrk NAME SCRIPT URL DURATION ARGS... -> wrk output in $TMP/NAME.out, echoed
run_wrk() {
    local name=$1 script=$2 url=$3 secs=$4
    shift 4
    # -d plus a margin: wrk is bounded in time even if the server hangs
    timeout -k 5 $((secs + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --timeout 2s \
        --latency -s "$script" "$url" -- "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" ||
        { cat "$TMP/$name.out" "$TMP/$name.err" >&2; die "wrk failed ($name)"; }
    cat "$TMP/$name.out"
    [[ -s $TMP/$name.err ]] && sed 's/^/  /' "$TMP/$name.err" >&2
    grep -q '^bench: responses ' "$TMP/$name.out" ||
        die "$name: the wrk script printed no counts (see above)"
}

# field NAME KEY -> a figure from $TMP/NAME.out
field() {
    local f=$TMP/$1.out
    case $2 in
    rps) awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f" ;;
    p50) to_ms "$(awk '$1 == "50%" {print $2}' "$f")" ;;
    p99) to_ms "$(awk '$1 == "99%" {print $2}' "$f")" ;;
    responses) awk '/^bench: responses / {print $3}' "$f" ;;
    non200) awk '/^bench: responses / {print $5}' "$f" ;;
    sockerr) awk '/^bench: socket_errors / {print $4 + $6 + $8 + $10}' "$f" ;;
    esac
}

FAILED=()
declare -A RESULT
# bench NAME SCRIPT URL ARGS...: warm-up, measured run, figures into RESULT[NAME]
bench() {
    local name=$1 script=$2 url=$3
    shift 3
    if ((WARMUP > 0)); then
        log "$name: warm-up ${WARMUP} s"
        run_wrk "$name-warmup" "$script" "$url" "$WARMUP" "$@" >/dev/null
        local wr wn
        wr=$(field "$name-warmup" responses) wn=$(field "$name-warmup" non200)
        if ((wr == 0 || 2 * wn > wr)); then # mostly errors: measuring them is pointless
            RESULT[$name]="INVALID: $wn of $wr warm-up responses not 200; not measured"
            RESULT[$name.rps]=0
            FAILED+=("$name: $wn of $wr warm-up responses not 200 (run skipped)")
            log "$name: $wn of $wr warm-up responses not 200; skipping the measured run"
            return 0
        fi
    fi
    log "$name: ${DURATION} s, wrk -t$THREADS -c$CONNECTIONS"
    run_wrk "$name" "$script" "$url" "$DURATION" "$@"
    local rps p50 p99 resp non200 sockerr bad
    rps=$(field "$name" rps) p50=$(field "$name" p50) p99=$(field "$name" p99)
    resp=$(field "$name" responses) non200=$(field "$name" non200)
    sockerr=$(field "$name" sockerr)
    bad=$((non200 + sockerr))
    RESULT[$name]=$(printf '%8s req/s   p50 %6s ms   p99 %6s ms   non-200 %s' \
        "$rps" "$p50" "$p99" "$non200")
    ((sockerr == 0)) || RESULT[$name]+="   socket errors $sockerr"
    RESULT[$name.rps]=$rps
    echo "$name: $rps req/s, p50 $p50 ms, p99 $p99 ms, $non200 non-200 of $resp responses," \
        "$sockerr socket errors"
    if ((resp == 0 || bad * 1000 > resp + sockerr)); then
        RESULT[$name]+="   INVALID (over 0.1 % errors)"
        FAILED+=("$name: $non200 non-200 and $sockerr socket errors of $((resp + sockerr))")
    fi
}

responses_of() { # NAME: responses of the run and its warm-up
    local n=0 r
    for r in "$1-warmup" "$1"; do
        [[ -f $TMP/$r.out ]] && n=$((n + $(field "$r" responses)))
    done
    echo "$n"
}

# ---------------------------------------------------------------- tools
ensure_wrk
command -v openssl >/dev/null || OPENSSL=0

NPROC=$(nproc)
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD_START" -v n="$NPROC" 'BEGIN {exit !(l > n / 4)}'; then
    log "load average $LOAD_START on $NPROC cores before the runs: other work shares the cores, figures will be low and noisy"
fi

# ---------------------------------------------------------------- build
((MCPAUTH)) && build_mcpauth
if ((BARE)); then
    mkdir -p "$BUILD"
    cc -O2 bench/bare/bare.c -o "$BUILD/bare" -lmicrohttpd -lcrypto
fi

# ---------------------------------------------------------------- openssl speed
SIGN=
if ((OPENSSL)); then
    log "openssl speed -seconds 3 ecdsap256"
    SIGN=$(openssl speed -seconds 3 ecdsap256 2>/dev/null |
        awk '/256 bits ecdsa \(nistp256\)/ {printf "%.0f", $(NF-1)}') || true
    echo "openssl ecdsap256: ${SIGN:-?} sign/s (1 core)"
fi

# ---------------------------------------------------------------- bare floor
if ((BARE)); then
    BARE_PORT=$(free_port) || die "no free port"
    "$BUILD/bare" "$BARE_PORT" >"$TMP/bare.log" 2>&1 &
    BARE_PID=$!
    wait_healthy "http://127.0.0.1:$BARE_PORT/healthz" "$BARE_PID" bare "$TMP/bare.log"
    bench bare bench/cc.lua "http://127.0.0.1:$BARE_PORT/oauth/token" \
        "$(printf '%s' bench-cc:bench-secret-123 | base64 -w0)" \
        "http://127.0.0.1:$BARE_PORT/mcp/bench"
    stop_bare
fi

# ---------------------------------------------------------------- mcpauth
PEAK_RSS="" AUDIT="" REQUESTS=0 TE_SKIPPED=""
if ((MCPAUTH)); then
    start_mcpauth
    apply_policy bench/policy.yaml.in

    bench client_credentials bench/cc.lua "$ISSUER/oauth/token" \
        "$(printf '%s' bench-cc:bench-secret-123 | base64 -w0)" "$ISSUER/mcp/bench"
    REQUESTS=$((REQUESTS + $(responses_of client_credentials)))

    # one subject token for the whole run, from the dev IdP
    TTL=1h
    ((DURATION + WARMUP + 60 < 3600)) || TTL=$((DURATION + WARMUP + 600))s
    if SUBJECT=$(mcp dev id-token --user bench-user@example.com --groups bench --ttl "$TTL" \
        2>"$TMP/id-token.err") &&
        SUBJECT=$(printf '%s\n' "$SUBJECT" | awk 'NF {t = $NF} END {print t}') &&
        [[ $SUBJECT =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]]; then
        bench token_exchange bench/te.lua "$ISSUER/oauth/token" \
            "$(printf '%s' bench-te:bench-secret-456 | base64 -w0)" \
            https://auth.bench.example/ https://mcp.bench.example/mcp "$SUBJECT"
        REQUESTS=$((REQUESTS + $(responses_of token_exchange)))
    else
        TE_SKIPPED="skipped: \`mcpauth dev id-token\` gave no token ($(head -c 200 "$TMP/id-token.err" | head -1))"
        log "token exchange $TE_SKIPPED"
    fi

    # VmHWM: the peak resident set over the server's life, in kB
    PEAK_RSS=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER_PID/status")
    echo "mcpauth peak RSS (VmHWM): $PEAK_RSS MB"
    stop_server # every event is durable before its response; stopping closes the db

    if command -v sqlite3 >/dev/null; then
        AUDIT=$(sqlite3 "$DATA/mcpauth.db" \
            "select count(*) from audit_events where type = 'token.request'") ||
            AUDIT=
        echo "audit: ${AUDIT:-?} token.request events for $REQUESTS requests answered"
        if [[ -n $AUDIT ]] && ((AUDIT < REQUESTS)); then
            FAILED+=("audit: $AUDIT token.request events for $REQUESTS requests answered")
        fi
    else
        log "sqlite3 not installed: audit events not counted"
    fi
fi

# ---------------------------------------------------------------- summary
echo
echo "mcpauth bench ($NPROC cores, wrk -t$THREADS -c$CONNECTIONS, $DURATION s)"
printf '%-20s %s\n' "load at start" "$LOAD_START (1-min average; keep it near 0)"
if ((MCPAUTH)); then
    printf '%-20s %s\n' client_credentials "${RESULT[client_credentials]}"
    printf '%-20s %s\n' token_exchange "${RESULT[token_exchange]:-$TE_SKIPPED}"
fi
if ((BARE)); then
    printf '%-20s %s\n' "bare floor" "${RESULT[bare]}"
    if ((MCPAUTH)) && ((${RESULT[bare.rps]:-0} > 0)); then
        printf '%-20s %s\n' "cc vs bare floor" "$(awk -v a="${RESULT[client_credentials.rps]:-0}" \
            -v b="${RESULT[bare.rps]}" 'BEGIN {printf "%.1f %%", 100 * a / b}')"
    fi
fi
((MCPAUTH)) && printf '%-20s %s MB\n' "peak RSS" "$PEAK_RSS"
((OPENSSL)) && printf '%-20s %s sign/s (1 core)\n' "openssl ecdsap256" "${SIGN:-?}"
if ((MCPAUTH)); then
    if [[ -n $AUDIT ]]; then
        printf '%-20s %s for %s requests\n' "audit events" "$AUDIT" "$REQUESTS"
    else
        printf '%-20s %s\n' "audit events" "not counted (no sqlite3)"
    fi
fi

if ((${#FAILED[@]})); then
    echo
    printf 'FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
exit 0
