#!/usr/bin/env bash
# make demo: runs examples/hello with `shoal up`: the control plane (admin API on
# 127.0.0.1:7700), two services (greeter x2, names) and the gateway on 127.0.0.1:8080.
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
cat <<MSG

shoal demo: starting examples/hello (docs/manifest.md). Once "all instances healthy" shows:
  curl -i http://127.0.0.1:8080/hello/world        # through the gateway to greeter
  build/shoal services                              # the registry (SHOAL_ADDR=127.0.0.1:7700)
  curl -s http://127.0.0.1:8081/metrics | grep shoal_route   # the gateway's metrics
  kill -9 one greeter (see its pid in the log): shoal restarts it, traffic keeps flowing
Press Ctrl-C to stop.

MSG
exec build/shoal up -f examples/hello/shoal.yaml
