#!/usr/bin/env bash
# shoal scale / restart / the autoscaler through the real binary.
set -euo pipefail
exec timeout 240 python3 "$(dirname "$0")/scale_test.py" "$1"
