#!/usr/bin/env bash
# make demo: until the gateway and `shoal up` land, the demo runs shoal's HTTP engine as an
# echo service on 127.0.0.1:8080 and shows a few requests against it. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
addr=${SHOAL_DEMO_ADDR:-127.0.0.1:8080}
build/shoal echo --listen "$addr" --name demo &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM
for _ in $(seq 50); do
    build/shoal fetch --timeout 1s "http://$addr/health" >/dev/null 2>&1 && break
    sleep 0.1
done
cat <<MSG

shoal demo: an echo service is running on http://$addr (pid $pid).
Try, from another terminal:
  curl -i http://$addr/hello
  curl -X POST --data-binary @README.md http://$addr/echo
  build/shoal fetch -i http://$addr/health
Press Ctrl-C to stop it (in-flight requests finish first).

MSG
build/shoal fetch -i "http://$addr/hello?from=demo"
wait $pid
