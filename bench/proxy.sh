#!/usr/bin/env bash
# bench/proxy.sh: shoal's gateway against nginx and HAProxy as reverse proxies, side by side
# in one run, on loopback only.
#
# One upstream (shoal echo or an nginx `return 200`, whichever the load core serves faster)
# is fronted in turn by shoal, nginx (proxy_pass, upstream keepalive) and HAProxy (http-reuse
# always), each with the same number of workers (WORKERS, default "1 2"). For each proxy and
# worker count: wait until it answers, record idle RSS, warm up, run wrk for DURATION with
# CONNECTIONS (--latency, plus a Lua done() hook for p99.9), record CPU time and peak RSS,
# open IDLE_CONNS keep-alive connections and record RSS, then measure one hop at one
# connection against the upstream direct. Writes bench/results/proxy.md and proxy.json.
#
# CPU pinning (taskset) on an N-core machine: wrk and the upstream share cpu 0..N-2 (the
# "load" cpus); a proxy with W workers gets the last W cpus when W < N, otherwise every cpu
# (then it shares cores with the load, which the results say).
#
# Every process started here is recorded by PID and stopped in the EXIT trap; nothing stays.
# Knobs (environment): DURATION=10s CONNECTIONS=64 THREADS=1 WORKERS="1 2" WARMUP=2s
# HOP_DURATION=5s PROBE_DURATION=5s IDLE_CONNS=1000 UPSTREAM=auto|echo|nginx
# PROXIES="shoal nginx haproxy" SHOAL=build/shoal OUT_DIR=bench/results KEEP_TMP=0
# WAIT_QUIET=0 (seconds to wait for no other busy process first) NICE=-10 (as root, else 0)
set -euo pipefail
SELF=$(realpath "${BASH_SOURCE[0]}")
cd "$(dirname "$SELF")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
WORKERS=${WORKERS:-"1 2"}
WARMUP=${WARMUP:-2s}
HOP_DURATION=${HOP_DURATION:-5s}
PROBE_DURATION=${PROBE_DURATION:-5s}
IDLE_CONNS=${IDLE_CONNS:-1000}
UPSTREAM=${UPSTREAM:-auto}
PROXIES=${PROXIES:-"shoal nginx haproxy"}
SHOAL=${SHOAL:-build/shoal}
OUT_DIR=${OUT_DIR:-bench/results}
KEEP_TMP=${KEEP_TMP:-0}
WAIT_QUIET=${WAIT_QUIET:-0}
# Other sessions' jobs (fuzzers, builds) may share the machine: as root, everything started
# here runs at nice -10 so they take little of its cpus. NICE=0 turns that off.
if [ "$(id -u)" -eq 0 ]; then NICE=${NICE:--10}; else NICE=${NICE:-0}; fi

die() {
    echo "proxy.sh: $*" >&2
    exit 1
}
log() {
    printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

case "$UPSTREAM" in auto | echo | nginx) ;; *) die "UPSTREAM must be auto, echo or nginx" ;; esac
[[ "$CONNECTIONS" =~ ^[0-9]+$ && "$THREADS" =~ ^[0-9]+$ && "$CONNECTIONS" -ge "$THREADS" ]] ||
    die "CONNECTIONS and THREADS must be numbers, CONNECTIONS >= THREADS"
for w in $WORKERS; do [[ "$w" =~ ^[1-9][0-9]*$ ]] || die "WORKERS must list positive numbers"; done
export PATH="$PATH:/usr/sbin:/sbin"
for tool in wrk nginx haproxy curl python3 taskset ss; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/install-deps.sh --bench"
done
[ -x "$SHOAL" ] || die "$SHOAL not found: build first (make)"

# With autogroup scheduling (the kernel default), CPU is shared between sessions first and
# nice only counts inside a session. So the script re-runs itself in a session of its own
# (setsid), gives that session's autogroup nice NICE, and this outer copy only waits and
# passes SIGINT/SIGTERM on.
if [ "$NICE" != 0 ] && [ -z "${PROXY_SH_INNER:-}" ] &&
    [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null)" = 1 ]; then
    PROXY_SH_INNER=1 setsid --wait bash "$SELF" "$@" &
    inner=$!
    trap 'kill -TERM "$inner" 2>/dev/null || true' INT TERM
    rc=0
    while kill -0 "$inner" 2>/dev/null; do
        wait "$inner" || rc=$?
    done
    exit "$rc"
fi
AUTOGROUP_NICE=0
if [ -n "${PROXY_SH_INNER:-}" ] && echo "$NICE" >/proc/self/autogroup 2>/dev/null; then
    AUTOGROUP_NICE=$NICE
fi

START_SECONDS=$SECONDS
TMP=$(mktemp -d /tmp/shoal-bench-proxy.XXXXXX)
chmod 755 "$TMP" # nginx workers run as nobody when started by root
RESULTS="$TMP/results.tsv"
: >"$RESULTS"
PIDS=()

# descendants PID: the PIDs of PID's children, grandchildren, ... (nginx workers).
descendants() {
    local c
    # shellcheck disable=SC2013
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        echo "$c"
        descendants "$c"
    done
}

# stop_pid PID: SIGTERM to PID (and whatever it started), SIGKILL after 3 s, then reap.
stop_pid() {
    local pid=$1 all i p
    all="$pid $(descendants "$pid" | tr '\n' ' ')"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    for p in $all; do kill -KILL "$p" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

# forget_pid PID: PID was reaped; the trap no longer needs to stop it.
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    # A failed run keeps its logs; an interrupted one (SIGINT/SIGTERM) does not.
    if [ "$KEEP_TMP" = 1 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 143 ]; }; then
        echo "proxy.sh: logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((IDLE_CONNS + 200)) ] ||
    die "ulimit -n is $(ulimit -n); IDLE_CONNS=$IDLE_CONNS needs more"

# ---- CPU layout -------------------------------------------------------------------------
NCPU=$(nproc)
[ "$NCPU" -ge 2 ] || die "needs at least 2 cpus (one for the proxy, one for wrk + upstream)"
LOAD_CPUS=$(seq -s, 0 $((NCPU - 2)))
# proxy_cpus W: the cpus a proxy with W workers is pinned to.
proxy_cpus() {
    if [ "$1" -lt "$NCPU" ]; then seq -s, $((NCPU - $1)) $((NCPU - 1)); else seq -s, 0 $((NCPU - 1)); fi
}

# pinned CPUS CMD...: runs CMD on CPUS at nice NICE. Call it only with & (it execs): the PID
# in $! is then CMD's own.
pinned() {
    local cpus=$1
    shift
    exec nice -n "$NICE" taskset -c "$cpus" "$@"
}

# ---- measurement helpers ----------------------------------------------------------------
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# cpu_ticks PID...: utime + stime of these processes (all their threads), in clock ticks.
# tcp_outsegs: TCP segments sent by the whole machine so far (/proc/net/snmp OutSegs).
tcp_outsegs() {
    awk '/^Tcp:/ { if (!n) { for (i = 1; i <= NF; i++) if ($i == "OutSegs") c = i; n = 1 } else print $c }' /proc/net/snmp
}
cpu_ticks() {
    local p t=0 v
    for p in "$@"; do
        v=$(sed 's/.*) //' /proc/"$p"/stat 2>/dev/null | awk '{print $12 + $13}') || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# mem_kib FIELD PID...: sum of a /proc/PID/status field (VmRSS, VmHWM) in KiB.
mem_kib() {
    local field=$1 p t=0 v
    shift
    for p in "$@"; do
        v=$(awk -v f="$field:" '$1 == f {print $2}' /proc/"$p"/status 2>/dev/null) || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# cpu_stat: "cpuN busy total" per cpu, from /proc/stat (jiffies).
# cpu_stat: "cpuN busy total irq" per cpu, from /proc/stat (jiffies); irq is irq + softirq,
# which on loopback is mostly the kernel moving the packets the benchmark sends.
cpu_stat() {
    awk '/^cpu[0-9]/ {print $1, $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $7 + $8}' /proc/stat
}
# busy_pct BEFORE AFTER CPULIST [COLUMN]: average busy % (or, with COLUMN 4, irq %) of the cpus
# in CPULIST between two cpu_stat files.
busy_pct() {
    awk -v list="$3" -v col="${4:-2}" 'BEGIN { n = split(list, c, ","); for (i = 1; i <= n; i++) want["cpu" c[i]] = 1 }
        FNR == NR { b[$1] = $col; t[$1] = $3; next }
        ($1 in want) { db += $col - b[$1]; dt += $3 - t[$1] }
        END { printf "%.0f", (dt > 0 ? 100 * db / dt : 0) }' "$1" "$2"
}

cat >"$TMP/stats.lua" <<'LUA'
-- Prints one machine-readable line after the run; latencies in microseconds.
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d errors=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d\n",
        summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
        math.floor(latency:percentile(50)), math.floor(latency:percentile(90)),
        math.floor(latency:percentile(99)), math.floor(latency:percentile(99.9)),
        math.floor(latency.max)))
end
LUA

# run_wrk OUTFILE CONNS THREADS DURATION URL: wrk pinned to the load cpus, in the background so
# the trap can stop it. The BENCH line lands in OUTFILE.
run_wrk() {
    local out=$1 conns=$2 threads=$3 dur=$4 url=$5 pid rc=0
    pinned "$LOAD_CPUS" wrk -t"$threads" -c"$conns" -d"$dur" --latency -s "$TMP/stats.lua" \
        "$url" >"$out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    forget_pid "$pid"
    if [ "$rc" -ne 0 ] || ! grep -q '^BENCH ' "$out"; then
        echo "proxy.sh: wrk failed against $url:" >&2
        cat "$out" >&2
        return 1
    fi
}
# field FILE KEY: the value of KEY=... on the BENCH line of a wrk output file.
field() {
    grep '^BENCH ' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'
}
rps_of() {
    awk -v r="$(field "$1" requests)" -v d="$(field "$1" duration_us)" 'BEGIN {printf "%.0f", r / (d / 1e6)}'
}

# wait_ready URL PID LOG: until URL answers 200 (10 s at most) while PID lives.
wait_ready() {
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$2" 2>/dev/null || {
            echo "proxy.sh: process $2 exited; its log:" >&2
            tail -20 "$3" >&2
            return 1
        }
        curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "proxy.sh: $1 did not answer within 10 s; log:" >&2
    tail -20 "$3" >&2
    return 1
}

# record SECTION KEY VALUE: one result line for the report.
record() {
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"
}

cat >"$TMP/idle_conns.py" <<'PY'
# Opens N keep-alive connections to HOST:PORT, sends one GET on each and reads the answer,
# then writes the count of 200 answers to READY and holds the sockets open until killed.
import os, resource, socket, sys, time

host, port, n, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < n + 64:
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 64 if hard == resource.RLIM_INFINITY else min(n + 64, hard), hard))
req = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
socks, ok = [], 0
for _ in range(n):
    try:
        s = socket.create_connection((host, port), timeout=5)
        socks.append(s)
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("closed")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("closed")
            body += chunk
        ok += head.startswith(b"HTTP/1.1 200")
    except OSError:
        pass
with open(ready + ".tmp", "w") as f:
    f.write(f"{ok}\n")
os.rename(ready + ".tmp", ready)
time.sleep(120)
PY

# idle_rss PORT PID...: sets IDLE_RSS to the RSS (KiB) of PIDs while IDLE_CONNS keep-alive
# connections are open, IDLE_OK to how many of them got a 200 and IDLE_OPEN to how many the
# proxy held open (ss) when RSS was read.
idle_rss() {
    local port=$1 ready="$TMP/idle.ready" pid i
    shift
    rm -f "$ready"
    pinned "$LOAD_CPUS" python3 "$TMP/idle_conns.py" 127.0.0.1 "$port" "$IDLE_CONNS" "$ready" \
        >"$TMP/idle.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 600; i++)); do
        [ -f "$ready" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 0.5
    IDLE_RSS=$(mem_kib VmRSS "$@")
    IDLE_OPEN=$(ss -Htn state established "( sport = :$port )" | wc -l)
    IDLE_OK=$(cat "$ready" 2>/dev/null || echo 0)
    stop_pid "$pid"
}

# ---- machine and parameters ----------------------------------------------------------------
cat >"$TMP/background.py" <<'PY'
# Processes using more than 5% of a cpu over one second, before the benchmark starts.
import os, time
def ticks():
    out = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                s = open(f"/proc/{p}/stat").read()
                comm = s[s.index("(") + 1:s.rindex(")")]
                f = s[s.rindex(")") + 2:].split()
                out[p] = (comm, int(f[11]) + int(f[12]))
            except (OSError, ValueError):
                pass
    return out
a = ticks(); time.sleep(1); b = ticks()
hz = os.sysconf("SC_CLK_TCK")
busy = sorted(((b[p][1] - a[p][1]) * 100 // hz, b[p][0]) for p in b if p in a)
print(", ".join(f"{c} {pct}%" for pct, c in reversed(busy) if pct >= 5) or "none")
PY
# Other sessions may share this machine: with WAIT_QUIET=S, wait up to S seconds for no other
# process to use 5% of a cpu. Either way the last 1 s sample goes into the results.
log "sampling background load (1 s)"
quiet_deadline=$((SECONDS + WAIT_QUIET))
while python3 "$TMP/background.py" >"$TMP/background.txt" &&
    [ "$(cat "$TMP/background.txt")" != none ] && [ "$SECONDS" -lt "$quiet_deadline" ]; do
    log "waiting for a quiet machine: $(cat "$TMP/background.txt")"
    sleep 9
done
record meta quiet_wait_s $((SECONDS - START_SECONDS))
START_SECONDS=$SECONDS
record meta nproc "$NCPU"
record meta cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
record meta kernel "$(uname -sr)"
record meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
record meta commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
record meta nginx "$(nginx -v 2>&1 | sed 's/^nginx version: //')"
record meta haproxy "$(haproxy -v 2>&1 | head -1 | awk '{print $3}')"
record meta wrk "$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
record meta shoal "$("$SHOAL" version 2>&1 | head -1)"
record meta loadavg "$(cut -d' ' -f1-3 /proc/loadavg)"
record meta background "$(cat "$TMP/background.txt")"
record meta duration "$DURATION"
record meta connections "$CONNECTIONS"
record meta threads "$THREADS"
record meta workers "$WORKERS"
record meta warmup "$WARMUP"
record meta hop_duration "$HOP_DURATION"
record meta idle_conns "$IDLE_CONNS"
record meta load_cpus "$LOAD_CPUS"
record meta nice "$NICE"
record meta autogroup_nice "$AUTOGROUP_NICE"

# ---- upstream ------------------------------------------------------------------------------
UP_PORT=$(free_port)
UP_PID=
JSON_BODY='{"method":"GET","target":"/","version":"1.1","served_by":"up","peer":"127.0.0.1:40000","body_bytes":0,"headers":{"Host":"127.0.0.1:40000","User-Agent":"wrk","Accept":"*/*"}}'

start_upstream() {
    local kind=$1 dir="$TMP/up-$1"
    mkdir -p "$dir"
    case "$kind" in
    echo)
        pinned "$LOAD_CPUS" "$SHOAL" echo --listen "127.0.0.1:$UP_PORT" --name up \
            --log-level warn >"$dir/log" 2>&1 &
        ;;
    nginx)
        cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$UP_PORT;
        default_type application/json;
        location / { return 200 '$JSON_BODY'; }
    }
}
EOF
        pinned "$LOAD_CPUS" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/log" >"$dir/stdout" 2>&1 &
        ;;
    esac
    UP_PID=$!
    PIDS+=("$UP_PID")
    wait_ready "http://127.0.0.1:$UP_PORT/" "$UP_PID" "$dir/log"
}
stop_upstream() {
    stop_pid "$UP_PID"
    UP_PID=
}

if [ "$UPSTREAM" = auto ]; then
    candidates="echo nginx"
else
    candidates=$UPSTREAM
fi
best_rps=0
best_cpu=
for kind in $candidates; do
    log "upstream probe: $kind, wrk -c$CONNECTIONS for $PROBE_DURATION, both on cpu $LOAD_CPUS"
    start_upstream "$kind"
    run_wrk "$TMP/probe-$kind-warm.txt" "$CONNECTIONS" "$THREADS" 1s "http://127.0.0.1:$UP_PORT/"
    # shellcheck disable=SC2046
    t0=$(cpu_ticks $UP_PID $(descendants "$UP_PID"))
    run_wrk "$TMP/probe-$kind.txt" "$CONNECTIONS" "$THREADS" "$PROBE_DURATION" "http://127.0.0.1:$UP_PORT/"
    # shellcheck disable=SC2046
    t1=$(cpu_ticks $UP_PID $(descendants "$UP_PID"))
    rps=$(rps_of "$TMP/probe-$kind.txt")
    reqs=$(field "$TMP/probe-$kind.txt" requests)
    record "upstream:$kind" rps "$rps"
    record "upstream:$kind" p99_us "$(field "$TMP/probe-$kind.txt" p99_us)"
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v r="$reqs" 'BEGIN {printf "%.2f", t * 1e6 / hz / r}')
    record "upstream:$kind" cpu_us_per_req "$cpu"
    stop_upstream
    # The upstream that spends less CPU per request leaves more of the shared load cpu to wrk,
    # so it serves faster; CPU per request is steadier from run to run than requests/s, so it
    # is what decides.
    if [ -z "$best_cpu" ] || awk -v a="$cpu" -v b="$best_cpu" 'BEGIN {exit !(a < b)}'; then
        best_cpu=$cpu
        best_rps=$rps
        UPSTREAM_KIND=$kind
    fi
done
record meta upstream "$UPSTREAM_KIND"
record meta upstream_choice "$UPSTREAM"
log "upstream: $UPSTREAM_KIND ($best_rps requests/s direct)"
start_upstream "$UPSTREAM_KIND"
run_wrk "$TMP/direct-warm.txt" "$CONNECTIONS" "$THREADS" 1s "http://127.0.0.1:$UP_PORT/"
log "one hop baseline: upstream direct, wrk -c1 for $HOP_DURATION"
run_wrk "$TMP/direct-hop.txt" 1 1 "$HOP_DURATION" "http://127.0.0.1:$UP_PORT/"
DIRECT_P50=$(field "$TMP/direct-hop.txt" p50_us)
DIRECT_P99=$(field "$TMP/direct-hop.txt" p99_us)
record direct hop_p50_us "$DIRECT_P50"
record direct hop_p99_us "$DIRECT_P99"

# ---- proxies -------------------------------------------------------------------------------
# start_PROXY DIR PORT WORKERS CPUS: writes the config into DIR, starts the proxy pinned to
# CPUS in the background, sets PROXY_PID.
start_shoal() {
    local dir=$1 port=$2 workers=$3 cpus=$4 admin
    admin=$(free_port)
    cat >"$dir/gateway.yaml" <<EOF
listen: 127.0.0.1:$port
workers: $workers
admin: 127.0.0.1:$admin
access_log: off
clusters:
  - name: up
    endpoints: [127.0.0.1:$UP_PORT]
routes:
  - match: {prefix: /}
    cluster: up
EOF
    pinned "$cpus" "$SHOAL" gateway -c "$dir/gateway.yaml" >"$dir/log" 2>&1 &
    PROXY_PID=$!
}

start_nginx() {
    local dir=$1 port=$2 workers=$3 cpus=$4
    cat >"$dir/nginx.conf" <<EOF
worker_processes $workers;
worker_rlimit_nofile 8192;
daemon off;
pid $dir/nginx.pid;
error_log $dir/log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port reuseport;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    pinned "$cpus" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/log" >"$dir/stdout" 2>&1 &
    PROXY_PID=$!
}

start_haproxy() {
    local dir=$1 port=$2 workers=$3 cpus=$4
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread $workers
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 60s

frontend fe
    bind 127.0.0.1:$port
    default_backend be

backend be
    server up 127.0.0.1:$UP_PORT
EOF
    haproxy -c -q -f "$dir/haproxy.cfg" >"$dir/log" 2>&1 || {
        cat "$dir/log" >&2
        return 1
    }
    pinned "$cpus" haproxy -db -f "$dir/haproxy.cfg" >>"$dir/log" 2>&1 &
    PROXY_PID=$!
}

# proxy_pids NAME: every process of the running proxy (nginx: master and workers).
proxy_pids() {
    echo "$PROXY_PID"
    descendants "$PROXY_PID"
}
# rss_pids NAME: the processes whose memory is counted (nginx: the workers, not the master).
rss_pids() {
    if [ "$1" = nginx ]; then descendants "$PROXY_PID"; else echo "$PROXY_PID"; fi
}

# bench_proxy NAME WORKERS: one full measurement; records NAME/WORKERS results.
bench_proxy() {
    local name=$1 workers=$2 sec="$1/$2" dir="$TMP/$1-$2" port cpus url t0 t1 reqs
    mkdir -p "$dir"
    port=$(free_port)
    cpus=$(proxy_cpus "$workers")
    url="http://127.0.0.1:$port/"
    log "$name, $workers worker(s) on cpu $cpus"
    "start_$name" "$dir" "$port" "$workers" "$cpus" || return 1
    PIDS+=("$PROXY_PID")
    wait_ready "$url" "$PROXY_PID" "$dir/log" || return 1
    sleep 0.5
    # shellcheck disable=SC2046
    record "$sec" rss_idle_kib "$(mem_kib VmRSS $(rss_pids "$name"))"
    record "$sec" proxy_cpus "$cpus"

    run_wrk "$dir/warm.txt" "$CONNECTIONS" "$THREADS" "$WARMUP" "$url" || return 1
    cpu_stat >"$dir/stat0"
    # shellcheck disable=SC2046
    t0=$(cpu_ticks $(proxy_pids "$name"))
    segs0=$(tcp_outsegs)
    run_wrk "$dir/wrk.txt" "$CONNECTIONS" "$THREADS" "$DURATION" "$url" || return 1
    segs1=$(tcp_outsegs)
    # shellcheck disable=SC2046
    t1=$(cpu_ticks $(proxy_pids "$name"))
    cpu_stat >"$dir/stat1"
    reqs=$(field "$dir/wrk.txt" requests)
    record "$sec" segs_per_req "$(awk -v s=$((segs1 - segs0)) -v r="$reqs" 'BEGIN {printf "%.2f", s / r}')"
    record "$sec" rps "$(rps_of "$dir/wrk.txt")"
    record "$sec" requests "$reqs"
    record "$sec" errors "$(field "$dir/wrk.txt" errors)"
    record "$sec" p50_us "$(field "$dir/wrk.txt" p50_us)"
    record "$sec" p99_us "$(field "$dir/wrk.txt" p99_us)"
    record "$sec" p999_us "$(field "$dir/wrk.txt" p999_us)"
    record "$sec" cpu_us_per_req \
        "$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v r="$reqs" 'BEGIN {printf "%.2f", t * 1e6 / hz / r}')"
    record "$sec" proxy_busy_pct "$(busy_pct "$dir/stat0" "$dir/stat1" "$cpus")"
    record "$sec" proxy_irq_pct "$(busy_pct "$dir/stat0" "$dir/stat1" "$cpus" 4)"
    record "$sec" proxy_own_pct "$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
        -v d="$(field "$dir/wrk.txt" duration_us)" -v n="$(echo "$cpus" | tr ',' '\n' | wc -l)" \
        'BEGIN {printf "%.0f", 100 * t / hz / (d / 1e6) / n}')"
    record "$sec" load_busy_pct "$(busy_pct "$dir/stat0" "$dir/stat1" "$LOAD_CPUS")"
    # shellcheck disable=SC2046
    record "$sec" rss_kib "$(mem_kib VmHWM $(rss_pids "$name"))"
    if [ "$name" = nginx ]; then record "$sec" master_rss_kib "$(mem_kib VmRSS "$PROXY_PID")"; fi

    # shellcheck disable=SC2046
    idle_rss "$port" $(rss_pids "$name")
    record "$sec" rss_1k_kib "$IDLE_RSS"
    record "$sec" idle_conns_ok "$IDLE_OK"
    record "$sec" idle_conns_open "$IDLE_OPEN"

    # One hop, twice: with the proxy where it ran the load (every request then crosses cores
    # four times, and cross-core wakeups in a VM cost tens of µs), then moved onto the load
    # cpus, where the direct baseline ran too, so the difference is the proxy's own work.
    run_wrk "$dir/hop-xcore.txt" 1 1 "$HOP_DURATION" "$url" || return 1
    record "$sec" hop_xcore_p50_us "$(($(field "$dir/hop-xcore.txt" p50_us) - DIRECT_P50))"
    record "$sec" hop_xcore_p99_us "$(($(field "$dir/hop-xcore.txt" p99_us) - DIRECT_P99))"
    local p
    for p in $(proxy_pids "$name"); do taskset -a -p -c "$LOAD_CPUS" "$p" >/dev/null; done
    run_wrk "$dir/hop.txt" 1 1 "$HOP_DURATION" "$url" || return 1
    record "$sec" hop_p50_us "$(($(field "$dir/hop.txt" p50_us) - DIRECT_P50))"
    record "$sec" hop_p99_us "$(($(field "$dir/hop.txt" p99_us) - DIRECT_P99))"
    stop_pid "$PROXY_PID"
    record "$sec" ok 1
}

SHOAL_STATUS=
for name in $PROXIES; do
    if [ "$name" = shoal ] && ! "$SHOAL" gateway --help >/dev/null 2>&1; then
        SHOAL_STATUS="shoal gateway not available: skipped"
        log "$SHOAL_STATUS"
    fi
done
record meta shoal_status "$SHOAL_STATUS"

for w in $WORKERS; do
    for name in $PROXIES; do
        [ "$name" = shoal ] && [ -n "$SHOAL_STATUS" ] && continue
        if ! bench_proxy "$name" "$w"; then
            record "$name/$w" failed "$name failed with $w worker(s): see the log above"
            [ -n "${PROXY_PID:-}" ] && stop_pid "$PROXY_PID"
        fi
        PROXY_PID=
    done
done
stop_upstream
record meta runtime_s $((SECONDS - START_SECONDS))

# ---- report --------------------------------------------------------------------------------
mkdir -p "$OUT_DIR"
python3 - "$RESULTS" "$OUT_DIR/proxy.md" "$OUT_DIR/proxy.json" "$PROXIES" "$WORKERS" <<'PY'
import json, sys

src, md_path, json_path, proxies, workers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), sys.argv[5].split()
sec = {}
for line in open(src, encoding="utf-8"):
    s, k, v = line.rstrip("\n").split("\t", 2)
    try:
        v = int(v)
    except ValueError:
        try:
            v = float(v)
        except ValueError:
            pass
    sec.setdefault(s, {})[k] = v
meta = sec["meta"]
peers = [p for p in proxies if p != "shoal"]

def run(p, w):
    r = sec.get(f"{p}/{w}")
    return r if r and r.get("ok") == 1 else None

KEYS = ["rps", "p50_us", "p99_us", "p999_us", "cpu_us_per_req", "rss_kib", "rss_idle_kib",
        "rss_1k_kib", "idle_conns_open", "segs_per_req", "hop_p50_us", "hop_p99_us", "hop_xcore_p50_us", "hop_xcore_p99_us", "errors", "proxy_own_pct", "proxy_irq_pct", "proxy_busy_pct", "load_busy_pct"]
RATIOS = [("rps", "rps"), ("p99_us", "p99"), ("cpu_us_per_req", "cpu_us_per_req"), ("rss_kib", "rss")]

def entry(p):
    by = {}
    for w in workers:
        r = run(p, w)
        if r:
            e = {"workers": int(w), **{k: r[k] for k in KEYS if k in r}}
            if p == "shoal":
                e["ratio"] = {q: {n: round(r[k] / run(q, w)[k], 3) for k, n in RATIOS if run(q, w) and run(q, w)[k]}
                              for q in peers if run(q, w)}
            by[w] = e
    if not by:
        return None
    head = by.get("1") or by[next(iter(by))]
    return {**head, "by_workers": by}

out = {p: entry(p) for p in ["shoal", "nginx", "haproxy"] if p in proxies}
out["meta"] = {
    **{k: meta[k] for k in ["date", "commit", "nproc", "cpu", "kernel", "nginx", "haproxy", "wrk",
                            "loadavg", "background", "duration", "connections", "threads", "workers",
                            "upstream", "load_cpus", "nice", "autogroup_nice", "quiet_wait_s", "runtime_s"]},
    "shoal_status": meta.get("shoal_status") or "ran",
    "upstream_probe": {k.split(":")[1]: v for k, v in sec.items() if k.startswith("upstream:")},
    "direct_hop": sec["direct"],
}
with open(json_path, "w", encoding="utf-8") as f:
    json.dump(out, f, indent=2)
    f.write("\n")

def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.2f}{unit}"
    return f"{v:,}{unit}".replace(",", " ") if isinstance(v, int) and abs(v) >= 10000 else f"{v}{unit}"

L = []
L.append("# Reverse proxy benchmark: shoal gateway, nginx, HAProxy\n")
L.append("Written by `bench/proxy.sh`; do not edit by hand. Figures from one run; the JSON twin is "
         "`proxy.json` (top-level `shoal`/`nginx`/`haproxy` hold the one-worker figures, "
         "`by_workers` every worker count).\n")
if meta.get("background", "none") != "none":
    L.append(f"**Warning: the machine was not idle** when the run started ({meta['background']} of a cpu, "
             "load average " + str(meta['loadavg']) + "); figures may be disturbed. See the notes under each table.\n")
if meta.get("shoal_status"):
    L.append(f"**{meta['shoal_status']}** (`shoal gateway --help` failed; `\"shoal\": null` in the JSON).\n")
L.append("## Machine and parameters\n")
L.append("| | |\n|---|---|")
for k, label in [("date", "date (UTC)"), ("commit", "git commit"), ("nproc", "nproc"), ("cpu", "CPU"),
                 ("kernel", "kernel"), ("nginx", "nginx"), ("haproxy", "HAProxy"), ("wrk", "wrk"),
                 ("shoal", "shoal"), ("loadavg", "load average at start"),
                 ("background", "other processes busy at start (1 s sample)"),
                 ("quiet_wait_s", "waited for a quiet machine (s)"), ("runtime_s", "script runtime after that (s)")]:
    L.append(f"| {label} | {meta.get(k, 'n/a')} |")
L.append(f"| wrk | {meta['threads']} thread(s), {meta['connections']} connections, {meta['duration']} "
         f"after a {meta['warmup']} warm-up, `--latency` + Lua `done()` for p99.9 |")
L.append(f"| idle connections | {meta['idle_conns']} keep-alive connections, one GET each, held open |")
L.append(f"| one hop | wrk 1 thread, 1 connection, {meta['hop_duration']}; proxied minus direct; proxy on cpu "
         f"{meta['load_cpus']} with wrk and upstream, then on its own cpus |")
L.append("")
L.append("## Pinning\n")
L.append(f"The machine has {meta['nproc']} cpus. wrk and the upstream are pinned (taskset) to cpu "
         f"{meta['load_cpus']}; a proxy with W workers gets the last W cpus when W < nproc, so at one worker "
         "it has a core to itself and its requests/s, CPU and latency are not disturbed by the load "
         "generator. When W >= nproc the proxy is pinned to every cpu and shares them with wrk and the "
         "upstream: those rows measure efficiency under contention, not scaling. "
         f"Everything the script starts runs at nice {meta['nice']} (its own session's autogroup at nice "
         f"{meta['autogroup_nice']}), so that other jobs on a shared machine (a fuzz run) take little of these "
         "cpus; the notes flag a row whose proxy's core was also used by others.\n")
L.append("## Upstream\n")
L.append(f"Chosen: **{meta['upstream']}** (UPSTREAM={meta['upstream_choice']}). Each candidate was driven "
         f"directly by wrk ({meta['connections']} connections), wrk and upstream both on cpu {meta['load_cpus']} "
         "as they are during the proxy runs. The one that spends less CPU per request is used: it leaves "
         "more of that cpu to wrk, so it is the faster one, and its requests/s is the ceiling any proxy can "
         "reach here. CPU per request decides rather than requests/s because it is steadier from run to run "
         "(in trial runs nginx `return 200` was 5 to 13% cheaper than shoal echo every time); "
         "UPSTREAM=echo or UPSTREAM=nginx fixes the choice.\n")
L.append("| upstream | requests/s direct | p99 | upstream CPU µs/req |\n|---|---:|---:|---:|")
for k, v in sec.items():
    if k.startswith("upstream:"):
        L.append(f"| {k.split(':')[1]}{' (chosen)' if k.split(':')[1] == meta['upstream'] else ''} | "
                 f"{fmt(v['rps'])} | {v['p99_us']} µs | {v['cpu_us_per_req']} |")
L.append("\n`echo` is `shoal echo` (JSON of ~180 bytes describing the request); `nginx` is nginx with one "
         "worker answering `return 200` with a JSON body of the same size.\n")
L.append(f"Direct at one connection: p50 {sec['direct']['hop_p50_us']} µs, p99 {sec['direct']['hop_p99_us']} µs.\n")

ceiling = sec.get(f"upstream:{meta['upstream']}", {}).get("rps")
for w in workers:
    L.append(f"## {w} worker{'s' if w != '1' else ''}\n")
    L.append("| proxy | requests/s | p50 | p99 | p99.9 | CPU µs/req | TCP segs/req | peak RSS | RSS idle | "
             f"RSS {meta['idle_conns']} conns | hop +p50 / +p99 | hop cross-core +p50 / +p99 | proxy CPU use | its cpus busy (irq) | load cpu busy | errors |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in proxies:
        r = run(p, w)
        if r is None:
            why = meta.get("shoal_status") if p == "shoal" and meta.get("shoal_status") else sec.get(f"{p}/{w}", {}).get("failed", "failed")
            L.append(f"| {p} | {why} |" + " |" * 15)
            continue
        L.append(f"| {p} | {fmt(r['rps'])} | {r['p50_us']} µs | {r['p99_us']} µs | {r['p999_us']} µs | "
                 f"{r['cpu_us_per_req']:.2f} | {r.get('segs_per_req', '–')} | {fmt(r['rss_kib'])} KiB | {fmt(r['rss_idle_kib'])} KiB | "
                 f"{fmt(r['rss_1k_kib'])} KiB ({r['idle_conns_open']} open) | {r['hop_p50_us']} / {r['hop_p99_us']} µs | {r['hop_xcore_p50_us']} / {r['hop_xcore_p99_us']} µs | "
                 f"{r['proxy_own_pct']}% | {r['proxy_busy_pct']}% ({r['proxy_irq_pct']}%, cpu {r['proxy_cpus']}) | {r['load_busy_pct']}% | {r['errors']} |")
    s = run("shoal", w)
    if s:
        for q in peers:
            r = run(q, w)
            if r:
                L.append(f"\nshoal / {q}: requests/s ×{s['rps'] / r['rps']:.2f}, p99 ×{s['p99_us'] / r['p99_us']:.2f}, "
                         f"CPU/req ×{s['cpu_us_per_req'] / r['cpu_us_per_req']:.2f}, peak RSS ×{s['rss_kib'] / r['rss_kib']:.2f}")
    notes = []
    for p in proxies:
        r = run(p, w)
        if not r:
            continue
        others = r["proxy_busy_pct"] - r["proxy_own_pct"] - r["proxy_irq_pct"]
        if others > 10 and r["proxy_cpus"] != meta["load_cpus"] and "," not in str(r["proxy_cpus"]):
            notes.append(f"{p}: other processes used {others}% of its cpu during the run (it used "
                         f"{r['proxy_own_pct']}% itself, interrupts {r['proxy_irq_pct']}%): where they took time "
                         "it wanted rather than time it left idle, its figures are disturbed.")
        if r["proxy_busy_pct"] < 85 and ceiling:
            notes.append(f"{p}: its cpus were {r['proxy_busy_pct']}% busy and the load cpu {r['load_busy_pct']}%, "
                         f"so the load side (wrk + upstream), not {p}, set its requests/s "
                         f"({100 * r['rps'] / ceiling:.0f}% of the direct ceiling); compare CPU µs/req instead.")
        if r.get("master_rss_kib"):
            notes.append(f"{p}: RSS sums the worker processes; the master adds {r['master_rss_kib']} KiB (not counted).")
        if r["idle_conns_open"] < meta["idle_conns"] or r["idle_conns_ok"] < meta["idle_conns"]:
            notes.append(f"{p}: of {meta['idle_conns']} idle connections {r['idle_conns_ok']} got a 200 and "
                         f"{r['idle_conns_open']} were open when RSS was read.")
        if r["errors"]:
            notes.append(f"{p}: wrk counted {r['errors']} errors (connect/read/write/timeout/non-2xx).")
    if notes:
        L.append("")
        L.extend(f"- {n}" for n in notes)
    L.append("")
w1 = workers[0]
best_peer = max((run(q, w1)["rps"] for q in peers if run(q, w1)), default=0)
if ceiling and best_peer and 1.2 * best_peer > 0.95 * ceiling:
    L.append("## Ceiling\n")
    L.append(f"With wrk and the upstream sharing cpu {meta['load_cpus']}, no proxy can pass about {fmt(ceiling)} "
             f"requests/s here (the upstream driven directly). 1.2× the best peer at {w1} worker(s) would be "
             f"{fmt(round(1.2 * best_peer))}, at or above that ceiling, so on this machine the requests/s target "
             "cannot be shown by requests/s alone: CPU µs per request (the proxy's cost, independent of who is "
             "the bottleneck) is the figure to compare. A machine with more cores (load on its own cores) "
             "lifts the ceiling.\n")
L.append("## How to read this\n")
L.append("- requests/s, p50/p99/p99.9: wrk over the whole run (p99.9 from wrk's latency histogram in Lua).")
L.append("- CPU µs/req: utime+stime of every process and thread of the proxy (from /proc/PID/stat, "
         "before and after the run) divided by the requests wrk completed. It is the steadiest figure from run "
         "to run; requests/s moves with how much of the proxy's core the kernel's loopback softirq work takes.")
L.append("- TCP segs/req: TCP segments the whole machine sent during the run (/proc/net/snmp OutSegs) per "
         "request: wrk to proxy, proxy to upstream, back, and back again is 4 when every message is one segment "
         "and no pure ACK is sent. On loopback each segment's delivery (softirq, the receiver's TCP, waking it) is "
         "paid by the sender, which is most of a proxy's kernel time, so at 4 a proxy can only get cheaper by "
         "putting several requests in one segment (pipelining or multiplexing to the upstream).")
L.append("- peak RSS: VmHWM after the load run (nginx: sum over workers; shoal and HAProxy are one process). "
         "RSS idle: VmRSS after start and one request. RSS at N conns: VmRSS while N keep-alive "
         "connections are open, after the load run.")
L.append("- hop +p50 / +p99: latency at one connection through the proxy minus the same against the upstream "
         f"direct, with the proxy moved onto cpu {meta['load_cpus']} where wrk and the upstream run (so both "
         "measurements have the same wakeups and the difference is the proxy's own work). Cross-core: the same "
         "with the proxy left on its own cpus, as during the load run; each request then crosses cores four "
         "times, and in a VM those wakeups cost tens of µs. p99 at one connection is sensitive to anything else "
         "the machine runs.")
L.append("- proxy CPU use: the proxy's own CPU time over the run, as a share of the cpus it is pinned to. "
         "busy: non-idle share of those cpus and of the load cpu from /proc/stat, whoever used them; "
         "irq is the interrupt and softirq part of busy (on loopback, mostly the kernel moving the "
         "benchmark's own packets; the part that runs while the proxy is on the cpu is counted in its own use "
         "too); busy well above the proxy's own use plus irq means another process ran on its core. "
         "A proxy whose cpus were below ~85% busy was not the bottleneck.")
L.append("- Targets for shoal (one worker): requests/s ≥ 1.2× nginx and HAProxy, CPU < 10 µs/req, p99 no worse, "
         "RSS < 5 MiB idle and < 20 MiB at 1,000 connections.")
with open(md_path, "w", encoding="utf-8") as f:
    f.write("\n".join(L) + "\n")
PY
log "wrote $OUT_DIR/proxy.md and $OUT_DIR/proxy.json in $((SECONDS - START_SECONDS)) s"
