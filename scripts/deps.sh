#!/usr/bin/env bash
# Installs what mcpauth needs on Debian 12, and nothing when it is all there.
#   scripts/deps.sh build   compilers, Meson, the -dev libraries
#   scripts/deps.sh test    the above, plus cmocka, Node.js/npm and the e2e npm packages
set -euo pipefail
cd "$(dirname "$0")/.."

want=(gcc make pkg-config meson ninja-build libmicrohttpd-dev libjansson-dev libsqlite3-dev
      libyaml-dev libssl-dev libcurl4-openssl-dev curl ca-certificates
      librelp-dev librdkafka-dev libnats-dev)
if [ "${1:-build}" = test ]; then
  want+=(libcmocka-dev sqlite3)   # sqlite3: the e2e tests read the audit log from the database
  want+=(rsyslog rsyslog-relp rsyslog-openssl nats-server openssl)  # real receivers for the exporters
  want+=(chromium)   # the web console's e2e tests drive it with playwright-core
  command -v node >/dev/null 2>&1 || want+=(nodejs)
  command -v npm >/dev/null 2>&1 || want+=(npm)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-build}" = test ]; then
  lock=tests/e2e/package-lock.json
  stamp=tests/e2e/node_modules/.deps-stamp
  if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
    echo "deps: npm ci in tests/e2e"
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$stamp"
  fi
fi
