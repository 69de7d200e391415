#!/usr/bin/env bash
# Traces through the real binary (shoal server): Zipkin/OTLP ingest written by hand, Zipkin's
# query API, bad input refused whole, the CLI's list and waterfall. The real tracers from npm
# run in test_traces_clients.sh.
set -euo pipefail
exec timeout 300 python3 "$(dirname "$0")/traces_test.py" "$1"
