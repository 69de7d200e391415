#!/usr/bin/env bash
# `shoal up` of a two-service manifest through the real binary.
set -euo pipefail
exec timeout 180 python3 "$(dirname "$0")/up_test.py" "$1"
