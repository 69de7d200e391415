#!/usr/bin/env bash
# JWT at the edge through the real binary (shoal gateway with JWKS file and URL routes; keys
# and signatures from the openssl command, which the test SKIPs without).
set -euo pipefail
exec timeout 300 python3 "$(dirname "$0")/jwt_test.py" "$1"
