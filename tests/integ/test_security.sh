#!/usr/bin/env bash
# The admin API's tokens, scopes, audit log and the instances' own tokens, through the real
# binary (shoal server, shoal up).
set -euo pipefail
exec timeout 300 python3 "$(dirname "$0")/security_test.py" "$1"
