#!/usr/bin/env bash
# Traces of real requests through `shoal up` with examples/hello: one trace per request with the
# gateway's and greeter's hops, Zipkin's dependencies API, `shoal trace ID` (traces_up_test.py).
set -euo pipefail
exec timeout 300 python3 "$(dirname "$0")/traces_up_test.py" "$1" test_hello_one_trace_and_dependencies
