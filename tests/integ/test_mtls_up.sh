#!/usr/bin/env bash
# mTLS between two `shoal up` stacks on one machine sharing one CA; SKIPs (77) without openssl.
set -euo pipefail
exec timeout 300 python3 "$(dirname "$0")/mtls_up_test.py" "$1"
