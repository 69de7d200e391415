#!/usr/bin/env bash
# The CA and the services' identities (SHOAL_TLS_* files, renewal, rotation, shoal ca, the
# /v1/ca routes) through the real binary; SKIPs without the openssl command.
set -euo pipefail
exec timeout 300 python3 "$(dirname "$0")/ca_test.py" "$1"
