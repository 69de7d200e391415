#!/usr/bin/env bash
# Intentions enforced by the mesh and the gateway under shoal up: deny by default, a change
# under load within a second, refusals named (tests/integ/intentions_test.py).
set -euo pipefail
command -v python3 >/dev/null || exit 77
exec timeout 300 python3 "$(dirname "$0")/intentions_test.py" "$1"
