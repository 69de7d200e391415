#!/usr/bin/env bash
# Metrics history, the service map, SLOs and shoal top through the real `shoal up`.
set -euo pipefail
command -v python3 >/dev/null || exit 77
exec timeout 240 python3 "$(dirname "$0")/metrics_test.py" "$1"
