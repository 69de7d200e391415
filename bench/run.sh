#!/usr/bin/env bash
# bench/run.sh: runs every benchmark; each writes its results under bench/results/.
# `make bench` calls it. Usage: bench/run.sh [SECTION...] (default: all sections)
set -euo pipefail
cd "$(dirname "$0")/.."
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(proxy)

for section in "${sections[@]}"; do
    case "$section" in
    proxy) bench/proxy.sh ;; # reverse proxy: shoal gateway vs nginx vs HAProxy
    *) echo "bench/run.sh: unknown section '$section'" >&2; exit 2 ;;
    esac
done
