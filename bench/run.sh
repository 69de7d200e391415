#!/usr/bin/env bash
# Runs shoal's benchmarks and writes their results under bench/results/. Each benchmark is one
# function below, bench_<name>, writing bench/results/<name>.md; add a function and a line to
# the table `benchmarks` to add one. Builds nothing: run `make bench` (or build build/) first.
#
# Usage: bench/run.sh [NAME...]      (default: every benchmark)
# Env:   BUILD (default build), BENCH_MS / BENCH_RUNS (passed to the programs that take them)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
results=$root/bench/results
mkdir -p "$results"

# Machine and revision, at the top of every result file.
machine_info() {
    local cpu commit dirty=""
    cpu=$(sed -nE 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    git -C "$root" diff --quiet HEAD 2>/dev/null || dirty=" (with uncommitted changes)"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- commit: $commit$dirty"
    echo "- CPU: ${cpu:-unknown}, nproc: $(nproc)"
    echo "- kernel: $(uname -r); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- compiler: $(sed -nE 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null | head -1)" \
         "$(sed -nE 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null | head -1)"
}

# ---- parser: HTTP/1.1 parser throughput (bench_parser) ----
bench_parser() {
    local bin=$build/bench/bench_parser out=$results/parser.md ref
    [ -x "$bin" ] || { echo "bench/run.sh: $bin is not built" >&2; return 1; }
    ref="Debian's libhttp-parser (nodejs/http-parser, the C predecessor of llhttp) is measured"
    ref+=" on the same bytes in the same process."
    if ! grep -q "SHOAL_BENCH_HTTP_PARSER" "$build/bench/CMakeFiles/bench_parser.dir/flags.make" 2>/dev/null; then
        ref="No reference parser was found at configure time (apt install libhttp-parser-dev,"
        ref+=" then reconfigure, to get it side by side)."
    fi
    {
        echo "# HTTP/1.1 parser throughput"
        echo
        machine_info
        echo
        echo "Command: \`bench/run.sh parser\` (\`$build/bench/bench_parser --ms ${BENCH_MS:-1000} --runs ${BENCH_RUNS:-5}\`)."
        echo
        "$bin" --ms "${BENCH_MS:-1000}" --runs "${BENCH_RUNS:-5}"
        echo
        echo "## Reading the table"
        echo
        echo "- $ref Its callbacks count fields and body bytes; shoal records every field as"
        echo "  offsets and classifies the framing fields, so the two do comparable work."
        echo "- Neither picohttpparser nor llhttp is packaged for Debian 12 as a C library"
        echo "  (\`node-llhttp\` holds Node.js sources only). Published figures to compare"
        echo "  against: picohttpparser's and llhttp's own README benchmarks, which parse one"
        echo "  request repeatedly; run them on this machine for a fair comparison."
        echo "- One process, one thread, the whole stream in memory: this is the parser alone,"
        echo "  not the server. The machine is shared, so treat differences under ~10% as noise."
    } >"$out.tmp"
    mv "$out.tmp" "$out"
    cat "$out"
}

benchmarks=(parser)
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${benchmarks[@]}")
for b in "${selected[@]}"; do
    "bench_$b"
done
