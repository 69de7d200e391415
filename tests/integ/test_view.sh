#!/usr/bin/env bash
# The live status view of shoal up, on a pseudo-terminal.
set -euo pipefail
exec timeout 120 python3 "$(dirname "$0")/view_test.py" "$1"
