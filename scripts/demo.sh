#!/usr/bin/env bash
# make demo: until `shoal up` lands, the demo runs the example gateway
# (examples/gateway/gateway.yaml) on 127.0.0.1:8080 in front of three echo services, with its
# admin listener on 127.0.0.1:9901. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for svc in 9001:catalog-v1 9002:catalog-v1b 9003:catalog-v2; do
    build/shoal echo --listen "127.0.0.1:${svc%%:*}" --name "${svc#*:}" 2>/dev/null &
    pids+=($!)
done
build/shoal gateway -c examples/gateway/gateway.yaml > .demo-access.log &
pids+=($!)
for _ in $(seq 50); do
    build/shoal fetch --timeout 1s http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break
    sleep 0.1
done
cat <<MSG

shoal demo: the gateway is on http://127.0.0.1:8080, its admin on http://127.0.0.1:9901.
Try, from another terminal:
  curl -i http://127.0.0.1:8080/api/catalog/items     # 90% v1, 10% v2 (see X-Served-By)
  curl -s http://127.0.0.1:9901/metrics | grep shoal_route
  curl -s http://127.0.0.1:9901/config
  edit examples/gateway/gateway.yaml: the gateway reloads it on save
Access log: .demo-access.log. Press Ctrl-C to stop.

MSG
build/shoal fetch -i http://127.0.0.1:8080/api/catalog/items
wait
