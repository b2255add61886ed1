# bench/lib.sh — shared by bench/run.sh and bench/logs.sh; sourced, not run.
#
# The caller has `set -euo pipefail`, runs from the repository root, and sets
# before calling these functions:
#   BUILD       the build directory (build-bench)
#   TMP         its throw-away directory (removed by its own EXIT trap)
# and `SERVER_PID=` (stop_server stops only that process). start_mcpauth sets
# PORT, ISSUER, DATA and SERVER_PID; mcp runs the CLI against that server with
# its admin token. Every address is 127.0.0.1.
# shellcheck shell=bash

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

stop_pid() { # PID: TERM, up to 5 s, then KILL; only the process we started
    local pid=$1 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}
stop_server() { stop_pid "$SERVER_PID"; SERVER_PID=; }

free_port() { # a port nothing listens on (connect refused)
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

http_status() { # URL -> HTTP status of a GET, "000" when nothing answers
    if command -v curl >/dev/null; then
        curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true
    else # plain bash, 127.0.0.1 only
        local rest=${1#http://} hostport path line
        hostport=${rest%%/*} path=/${rest#*/}
        if exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" 2>/dev/null; then
            printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$hostport" >&3
            IFS=' ' read -r -t 2 _ line _ <&3 || line=000
            exec 3<&-
            echo "${line:-000}"
        else
            echo 000
        fi
    fi
}

wait_healthy() { # URL PID NAME LOG: up to 15 s for 200 on URL
    local i
    for ((i = 0; i < 150; i++)); do
        kill -0 "$2" 2>/dev/null || { cat "$4" >&2; die "$3 exited before answering $1"; }
        [[ $(http_status "$1") == 200 ]] && return 0
        sleep 0.1
    done
    cat "$4" >&2
    die "$3 did not answer $1 within 15 s"
}

to_ms() { # wrk latency ("812.00us", "1.23ms", "1.02s", "1.5m") -> ms
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.2f", n }'
}

ensure_wrk() { # installs wrk with apt-get when it is missing
    command -v wrk >/dev/null && return 0
    log "installing wrk (apt-get install -y wrk)"
    local sudo=
    ((EUID == 0)) || sudo=sudo
    $sudo apt-get install -y wrk >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y wrk >&2; }
    command -v wrk >/dev/null || die "wrk is not installed and could not be installed"
}

build_mcpauth() { # release build of mcpauth in $BUILD (configured when it is not yet)
    if [[ ! -f $BUILD/build.ninja ]]; then
        # the unit tests are not needed here (and a half-written one must not stop a bench)
        log "configuring $BUILD (release, NDEBUG)"
        meson setup "$BUILD" --buildtype=release -Db_ndebug=true -Dtests=disabled >&2
    fi
    ninja -C "$BUILD" mcpauth >&2
}

start_mcpauth() { # `mcpauth serve --dev` on a free 127.0.0.1 port, data in $TMP/data
    PORT=$(free_port) || die "no free port"
    ISSUER=http://127.0.0.1:$PORT
    DATA=$TMP/data
    mkdir -p "$DATA"
    "$BUILD/mcpauth" serve --dev --listen "127.0.0.1:$PORT" --data-dir "$DATA" \
        >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    wait_healthy "$ISSUER/healthz" "$SERVER_PID" mcpauth "$TMP/server.log"
    log "mcpauth pid $SERVER_PID on $ISSUER"
    [[ -s $DATA/admin.token ]] || die "no admin token in $DATA/admin.token"
}

mcp() { MCPAUTH_ADDR=$ISSUER MCPAUTH_TOKEN=$(cat "$DATA/admin.token") "$BUILD/mcpauth" "$@"; }

apply_policy() { # TEMPLATE: apply it with @ISSUER@ replaced by this server's issuer
    sed "s|@ISSUER@|$ISSUER|g" "$1" >"$TMP/policy.yaml"
    mcp apply -f - <"$TMP/policy.yaml" >&2 || die "mcpauth apply failed (policy in $1)"
}
