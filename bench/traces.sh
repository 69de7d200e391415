#!/usr/bin/env bash
# Span ingest benchmark: OTLP/HTTP (protobuf and JSON) into `shoal server`, spans/s and the
# server's CPU per span. Writes bench/results/traces.md and bench/results/traces.json. The
# driver is bench/traces_ingest.py (Python 3, stdlib only).
# Usage: bench/traces.sh      Env: REQUESTS (200) SPANS (512 a request) CONC (4) BUILD (build)
#                                  RESULTS (bench/results)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
[ -x "$build/shoal" ] || { echo "traces.sh: $build/shoal is not built" >&2; exit 1; }
command -v python3 >/dev/null || { echo "traces.sh: python3 is needed" >&2; exit 1; }
cd "$root"
exec timeout 900 python3 bench/traces_ingest.py "$build/shoal" --results "${RESULTS:-$root/bench/results}"
