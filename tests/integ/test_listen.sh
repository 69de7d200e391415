#!/usr/bin/env bash
# Listen addresses through the real binary: "[::]:PORT" binds the IPv6 wildcard (not ::1) for
# shoal server, shoal gateway (listener and admin) and shoal echo. Exits 77 (SKIP) on a host
# without IPv6.
set -euo pipefail
exec timeout 120 python3 "$(dirname "$0")/listen_test.py" "$1"
