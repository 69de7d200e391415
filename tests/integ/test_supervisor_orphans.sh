#!/usr/bin/env bash
# Children never outlive the supervisor, also after kill -9: procs_driver starts instances
# through the trampoline `$1 __child --` (and the reaper `$1 __reaper`) and prints their pids;
# we kill -9 the driver and require every child, and every process a child started itself, to
# be gone, waited for up to 20 s (a zombie left to a container's init counts as gone).
#   1. three `sleep 30`: the trampoline's PDEATHSIG takes them;
#   2. two `sh -c 'sleep 30 & wait'`: the sleeps are grandchildren of the driver, which only the
#      reaper (killing the process groups) takes along.
# Bounded; on exit it kills by pid only what it started. Needs SHOAL_PROCS_DRIVER.
set -euo pipefail
shoal=${1:?usage: test_supervisor_orphans.sh SHOAL_BINARY}
driver=${SHOAL_PROCS_DRIVER:?SHOAL_PROCS_DRIVER must name the procs_driver tool}
work=$(mktemp -d /tmp/shoal-orphans-XXXXXX)
dpid=""
pids=()
cleanup() {
    if [ -n "$dpid" ]; then kill -9 "$dpid" 2>/dev/null || true; fi
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Alive: /proc/<pid> exists and the process is not a zombie.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ] && [ "${stat%% *}" != X ]
}

# run_case COUNT COMM CMD...: starts the driver, checks each child (COMM, parent, own group)
# and, for sh, finds its grandchild; kill -9 of the driver; all must be gone (20 s at most:
# their sleep 30 outlives that, so a survivor cannot pass).
run_case() {
    local count=$1 comm=$2
    shift 2
    pids=()
    "$driver" "$shoal" "$count" "$@" >"$work/pids" 2>"$work/err" &
    dpid=$!
    for _ in $(seq 1 400); do # 20 s at most
        [ "$(grep -c '' "$work/pids" || true)" -ge "$count" ] && break
        sleep 0.05
    done
    mapfile -t pids <"$work/pids"
    if [ "${#pids[@]}" -ne "$count" ]; then
        echo "driver did not print $count pids" >&2
        cat "$work/err" >&2
        exit 1
    fi
    local kids=() p c
    for p in "${pids[@]}"; do
        if ! alive "$p"; then
            echo "child $p is not running before the kill" >&2
            exit 1
        fi
        # The trampoline execs, so the child is CMD in its own group, its parent the driver. The
        # driver prints the pid at the spawn: the exec may not have happened yet on a busy
        # machine (CI saw comm=shoal, the trampoline): wait for it, 20 s at most.
        for _ in $(seq 1 1000); do
            c=$(cat "/proc/$p/comm" 2>/dev/null || true)
            [ "$c" = "$comm" ] && break
            sleep 0.02
        done
        local ppid pgid
        ppid=$(awk '{print $4}' "/proc/$p/stat")
        pgid=$(awk '{print $5}' "/proc/$p/stat")
        if [ "$c" != "$comm" ] || [ "$ppid" != "$dpid" ] || [ "$pgid" != "$p" ]; then
            echo "child $p: comm=$c ppid=$ppid (driver $dpid) pgid=$pgid" >&2
            exit 1
        fi
        if [ "$comm" = sh ]; then
            local g=""
            for _ in $(seq 1 1000); do # 20 s at most
                g=$(cat "/proc/$p/task/$p/children" 2>/dev/null || true)
                [ -n "$g" ] && break
                sleep 0.02
            done
            [ -n "$g" ] || { echo "child $p started no process" >&2; exit 1; }
            kids+=($g)
        fi
    done
    pids+=("${kids[@]}")
    echo "driver $dpid started ${pids[*]}"
    kill -9 "$dpid"
    wait "$dpid" 2>/dev/null || true
    dpid=""
    local deadline=$((SECONDS + 20)) left=()
    while :; do
        left=()
        for p in "${pids[@]}"; do
            if alive "$p"; then left+=("$p"); fi
        done
        [ "${#left[@]}" -eq 0 ] && break
        [ $SECONDS -ge $deadline ] && break
        sleep 0.05
    done
    if [ "${#left[@]}" -ne 0 ]; then
        echo "still alive 20 s after kill -9 of their supervisor: ${left[*]}" >&2
        exit 1
    fi
}

run_case 3 sleep sleep 30
echo "all children died with their supervisor"
run_case 2 sh sh -c 'sleep 30 & wait'
echo "the processes the children started died too (the reaper)"
