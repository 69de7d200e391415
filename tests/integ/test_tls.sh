#!/usr/bin/env bash
# TLS at the gateway through the real binary with real clients (curl, openssl s_client, Python
# ssl); certificates from the openssl command, which the test SKIPs (77) without.
set -euo pipefail
exec timeout 300 python3 "$(dirname "$0")/tls_test.py" "$1"
