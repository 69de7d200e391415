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
    cpu=$(sed -nE 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)
    commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    git -C "$root" diff --quiet HEAD -- . ':!bench/results' 2>/dev/null || dirty=" (with uncommitted changes)"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- commit: $commit$dirty"
    echo "- CPU: ${cpu:-unknown}, nproc: $(nproc)"
    echo "- kernel: $(uname -r); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    local cc flags
    cc=$(sed -nE 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null | sed -n 1p)
    flags=$(sed -nE 's/^C_FLAGS = //p' "$build"/bench/CMakeFiles/*.dir/flags.make 2>/dev/null | sed -n 1p)
    echo "- compiler: $("${cc:-cc}" --version 2>/dev/null | sed -n 1p); flags: ${flags:-unknown}"
}

# BENCH_PROFILE=1: the top functions by instructions under callgrind, as a markdown list.
callgrind_top() { # binary args...
    [ "${BENCH_PROFILE:-0}" = 1 ] && command -v valgrind >/dev/null || return 0
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >/dev/null 2>&1 || { rm -f "$out"; return 0; }
    echo "## Profile (callgrind, instructions; \`BENCH_PROFILE=1\`)"
    echo
    callgrind_annotate "$out" 2>/dev/null | grep -E '^ *[0-9,]+ \( *[0-9.]+%\) ' | grep -v 'PROGRAM TOTALS' |
        sed -n 1,8p | sed -E 's/^ *([0-9,]+) \( *([0-9.]+%)\) +([^ ]+).*/- \2 `\3`/'
    echo "- (\`???\` lines are libhttp-parser, which Debian ships without symbols.)"
    echo
    rm -f "$out"
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
        callgrind_top "$bin" --ms 10 --runs 1
        echo "## Reading the table"
        echo
        echo "- $ref Its callbacks count fields and body bytes; shoal records every field as"
        echo "  offsets and classifies the framing fields (Host, Content-Length, Connection, ...),"
        echo "  which http-parser also does internally, so the two do comparable work."
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

# ---- proxy: the gateway against nginx and HAProxy (bench/proxy.sh writes its own files) ----
bench_proxy() {
    "$root/bench/proxy.sh"
}

# ---- control-plane: registry watch fan-out, durable KV writes/watches, etcd side by side ----
bench_control-plane() { BUILD=$build RESULTS=$results "$root/bench/control-plane.sh"; }

# ---- logs: the log store filled with 1 M lines, full-text query latency (bench_logs) ----
bench_logs() {
    local bin=$build/bench/bench_logs out=$results/logs.md lines=${BENCH_LOG_LINES:-1000000}
    [ -x "$bin" ] || { echo "bench/run.sh: $bin is not built" >&2; return 1; }
    {
        echo "# Log search: full-text queries over $lines stored lines"
        echo
        machine_info
        echo
        echo "Command: \`bench/run.sh logs\` (\`$bin --lines $lines --runs ${BENCH_RUNS:-200}\`)."
        echo
        echo "The store (src/observe/logs_store.c, DATA_DIR/logs.sqlite: WAL, synchronous=NORMAL,"
        echo "FTS5 over message and raw line) is filled through obs_logs_add and committed every"
        echo "10,000 lines (as the writer thread's batches), then each query kind runs with a"
        echo "different word each time; time is obs_logs_search alone (JSON rendering excluded),"
        echo "at the API's default limit (the newest 1000 rows). Goal (issue 11): p99 < 50 ms."
        echo
        "$bin" --lines "$lines" --runs "${BENCH_RUNS:-200}"
        echo
        echo "- The machine is shared (see the load average): the fill rate is wall time on a busy"
        echo "  2-core VM and moves with the load; the query times are more stable."
    } >"$out.tmp"
    mv "$out.tmp" "$out"
    cat "$out"
}

benchmarks=(parser proxy control-plane logs)
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${benchmarks[@]}")
for b in "${selected[@]}"; do
    "bench_$b"
done
