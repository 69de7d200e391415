#!/usr/bin/env bash
# examples/hello (greeter -> mesh -> names with its SQLite file) under `shoal up`.
set -euo pipefail
exec timeout 180 python3 "$(dirname "$0")/example_test.py" "$1"
