#!/usr/bin/env bash
# The log store through the real `shoal up`: search by word, trace id, level; access lines.
set -euo pipefail
command -v python3 >/dev/null || exit 77
exec timeout 240 python3 "$(dirname "$0")/logs_test.py" "$1"
