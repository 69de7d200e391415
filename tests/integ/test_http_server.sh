#!/usr/bin/env bash
# The HTTP/1.1 server and client through the real binary (shoal echo, shoal fetch).
set -euo pipefail
exec timeout 300 python3 "$(dirname "$0")/http_server_test.py" "$1"
