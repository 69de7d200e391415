#!/usr/bin/env bash
# make demo: runs examples/hello with `shoal up`: the control plane (admin API on
# 127.0.0.1:7700), two C services (greeter x2 calling names x2 through the mesh on
# 127.0.0.1:7701; names keeps its rows in its own SQLite file) and the gateway on
# 127.0.0.1:8080. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
cat <<MSG

shoal demo: starting examples/hello (docs/manifest.md). Once "all instances healthy" shows:
  curl -s http://127.0.0.1:8080/hello                 # gateway -> greeter -> mesh -> names
  curl -s http://127.0.0.1:8080/names                 # names, straight through the gateway
  curl -s -d Edsger http://127.0.0.1:8080/names       # add a name (kept in examples/hello/.shoal/services/names/)
  curl -s -x http://127.0.0.1:7701 http://names/names/random   # the mesh as an HTTP proxy
  build/shoal ps                                      # instances: pid, port, state, health
  build/shoal services                                # the registry (SHOAL_ADDR=127.0.0.1:7700)
  curl -s http://127.0.0.1:8081/metrics | grep shoal_route   # the gateway's metrics
  kill -9 one instance (its pid is in the log): shoal restarts it, traffic keeps flowing
Press Ctrl-C to stop.

MSG
exec build/shoal up -f examples/hello/shoal.yaml
