#!/usr/bin/env bash
# Installs, only if missing, the Debian packages that shoal's build, tests and demo need.
# Idempotent and quiet when everything is present. Usage: scripts/install-deps.sh [--fuzz] [--bench]
set -euo pipefail

pkgs=(
    build-essential cmake pkg-config   # the build
    libuv1-dev                         # event loop (core, http)
    libyaml-dev                        # manifest and gateway config (supervisor)
    libsqlite3-dev                     # embedded store (store)
    libjansson-dev                     # JSON at the API edges (admin, cli)
    libssl-dev                         # OpenSSL 3: token hashes, the CA, JWT, later TLS (security)
    zlib1g-dev                         # gzip span ingest bodies (observe)
    libcmocka-dev                      # unit tests
    curl nodejs                        # integration tests; llhttp differential test; the dashboard build (web/)
    chromium                           # the dashboard's end-to-end test (tests/e2e, playwright-core)
    python3                            # integration test drivers
    openssl                            # the openssl command: checks the CA's certificates (integ)
    prometheus                         # promtool: checks our metrics exposition (integ)
    clang-format                       # the C style is checked (check/format)
)
# npm for the Consul client test (tests/integ/consul-client). Debian's nodejs package does not
# ship npm, NodeSource's does and conflicts with Debian's npm package: ask for it only when the
# npm command is missing.
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
for arg in "$@"; do
    case "$arg" in
    --fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
    # libhttp-parser: bench_parser's reference; nginx, haproxy: proxy bench; etcd: control-plane bench
    --bench) pkgs+=(wrk libhttp-parser-dev nginx haproxy etcd-server etcd-client) ;;
    *) echo "install-deps.sh: unknown option '$arg' (expected --fuzz or --bench)" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
