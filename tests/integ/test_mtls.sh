#!/usr/bin/env bash
# The mesh's inbound mTLS listener through the real binary with real clients (Python ssl,
# openssl s_client); certificates from the openssl command, which the test SKIPs (77) without.
set -euo pipefail
exec timeout 300 python3 "$(dirname "$0")/mtls_test.py" "$1"
