#!/usr/bin/env bash
# bench/mtls.sh: one mesh hop with mTLS vs plaintext, side by side in one run, on loopback.
#
# shoal echo behind a receiving proxy B (a plain listener and an inbound mTLS listener, both
# routed to the echo), fronted by a calling proxy A with two clusters pointing at B: /plain
# over plain HTTP, /mtls over TLS 1.3 with a client certificate (docs/security.md, "mTLS
# between meshes"). wrk drives A with CONNECTIONS keep-alive connections; A pools its
# upstream connections, so the figure is the steady-state cost of the mTLS hop (records,
# not handshakes). Certificates from the openssl command. Prints a table; nothing stays.
# Knobs: DURATION=10s CONNECTIONS=16 THREADS=1 SHOAL=build/shoal
set -euo pipefail
cd "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-1}
SHOAL=${SHOAL:-build/shoal}
command -v wrk >/dev/null && command -v openssl >/dev/null || { echo "SKIP: wrk or openssl missing"; exit 77; }
T=$(mktemp -d /tmp/shoal-bench-mtls-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ossl() { openssl "$@" >/dev/null 2>&1; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/ca.key" -out "$T/ca.crt" -days 1 -subj /CN=bench-ca
leaf() {
    printf 'subjectAltName=URI:spiffe://bench/service/%s\n' "$1" >"$T/$1.ext"
    ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" -out "$T/$1.csr" -subj "/CN=$1"
    ossl x509 -req -in "$T/$1.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial -out "$T/$1.crt" -days 1 -extfile "$T/$1.ext"
}
leaf names
leaf gateway
EP=$(port); BP=$(port); BI=$(port); AP=$(port)
"$SHOAL" echo --listen "127.0.0.1:$EP" --name names 2>/dev/null &
PIDS+=($!)
cat >"$T/b.yaml" <<YAML
listen: 127.0.0.1:$BP
workers: 1
access_log: false
inbound: {listen: 127.0.0.1:$BI, trust_domain: bench, client_ca: $T/ca.crt, certs: [{cert: $T/names.crt, key: $T/names.key}]}
clusters: [{name: names, endpoints: ["127.0.0.1:$EP"]}]
routes: [{name: names, match: {prefix: /}, cluster: names}]
YAML
cat >"$T/a.yaml" <<YAML
listen: 127.0.0.1:$AP
workers: 1
access_log: false
identities: [{service: gateway, cert: $T/gateway.crt, key: $T/gateway.key}]
clusters:
  - {name: plain, endpoints: ["127.0.0.1:$BP"]}
  - {name: mtls, endpoints: ["127.0.0.1:$BI"], mtls: {identity: "spiffe://bench/service/names", ca: $T/ca.crt}}
routes:
  - {name: mtls, match: {prefix: /mtls}, cluster: mtls}
  - {name: plain, match: {prefix: /plain}, cluster: plain}
YAML
"$SHOAL" gateway -c "$T/b.yaml" 2>/dev/null >/dev/null &
PIDS+=($!)
"$SHOAL" gateway -c "$T/a.yaml" 2>/dev/null >/dev/null &
PIDS+=($!)
for path in plain mtls; do
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$AP/$path" -o /dev/null && break
        sleep 0.1
    done
done
printf '| hop | req/s | p50 | p99 |\n| --- | --- | --- | --- |\n'
for path in plain mtls; do
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "http://127.0.0.1:$AP/$path" >/dev/null
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$AP/$path")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    printf '| %s | %s | %s | %s |%s\n' "$path" "$rps" "$p50" "$p99" "${non2xx:+ non-2xx: $non2xx}"
done
