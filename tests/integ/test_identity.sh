#!/usr/bin/env bash
# Caller identity in the mesh (per-instance credentials in HTTP_PROXY) through `shoal up`.
set -euo pipefail
exec timeout 180 python3 "$(dirname "$0")/identity_test.py" "$1"
