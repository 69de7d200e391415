#!/usr/bin/env bash
# The gateway through the real binary (shoal gateway in front of shoal echo and raw upstreams).
set -euo pipefail
exec timeout 540 python3 "$(dirname "$0")/gateway_test.py" "$1"
