#!/usr/bin/env bash
# The control plane through the real binary (shoal server), with a real Prometheus discovering
# targets through consul_sd and http_sd.
set -euo pipefail
exec timeout 540 python3 "$(dirname "$0")/server_test.py" "$1"
