#!/usr/bin/env bash
# Runs every libFuzzer target built in build-fuzz/ (make fuzz) for SECONDS each, one after
# the other (one fuzzer process at a time), each from a copy of its seed corpus
# fuzz/corpus/<name without fuzz_>/ with the dictionary fuzz/<comp>.dict.
#
# Usage: scripts/fuzz-run.sh SECONDS [TARGET...]     (default: every build-fuzz/fuzz/fuzz_*)
# Env:   FUZZ_BUILD   build dir (default build-fuzz)
#        FUZZ_WORK    where copies, logs and artifacts go (default: a new mktemp -d, kept and
#                     printed so the grown corpus can be merged back with -merge=1)
# Prints one summary line per target from libFuzzer's final stats and exits 1 if any target
# found a crash, leak, timeout or OOM (the artifact paths are printed), 2 on usage errors.
# Every run stops by itself: -max_total_time, and `timeout` as a backstop.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-}
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: scripts/fuzz-run.sh SECONDS [TARGET...]" >&2
    exit 2
fi
shift
build=${FUZZ_BUILD:-$root/build-fuzz}
work=${FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/shoal-fuzz.XXXXXX")}
mkdir -p "$work"

targets=()
if [ $# -gt 0 ]; then
    for t in "$@"; do targets+=("$build/fuzz/$t"); done
else
    for t in "$build"/fuzz/fuzz_*; do
        [ -x "$t" ] && [ -f "$t" ] && targets+=("$t")
    done
fi
if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz-run: no fuzz targets in $build/fuzz (run make fuzz first)" >&2
    exit 2
fi

# "#123 DONE cov: 1 ft: 2 corp: 3/4b ..." -> the value after <key>
stat_of() { # key file
    grep -E '^#[0-9]+' "$2" | tail -1 | sed -nE "s/.* $1 ([^ ]+).*/\\1/p"
}
final_stat() { # name file   (from -print_final_stats=1)
    sed -nE "s/^stat::$1: *([0-9]+).*/\\1/p" "$2" | tail -1
}

failed=0
echo "fuzz-run: ${#targets[@]} target(s), ${secs}s each, work dir $work"
for t in "${targets[@]}"; do
    name=$(basename "$t")
    comp_thing=${name#fuzz_}
    comp=${comp_thing%%_*}
    seeds=$root/fuzz/corpus/$comp_thing
    dict=$root/fuzz/$comp.dict
    corpus=$work/$name/corpus
    artifacts=$work/$name/artifacts
    log=$work/$name/log
    if [ ! -x "$t" ]; then
        echo "fuzz-run: $t is not built" >&2
        failed=1
        continue
    fi
    mkdir -p "$corpus" "$artifacts"
    [ -d "$seeds" ] && cp -r "$seeds"/. "$corpus"/
    dict_arg=()
    [ -f "$dict" ] && dict_arg=(-dict="$dict")
    start=$(date +%s)
    timeout --kill-after=30 $((secs + 120)) "$t" "$corpus" "${dict_arg[@]}" \
        -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    elapsed=$(($(date +%s) - start))
    execs=$(final_stat number_of_executed_units "$log")
    eps=$(final_stat average_exec_per_sec "$log")
    newu=$(final_stat new_units_added "$log")
    cov=$(stat_of cov: "$log")
    ft=$(stat_of ft: "$log")
    corp=$(stat_of corp: "$log")
    arts=$(find "$artifacts" -type f | sort)
    status=ok
    if [ $rc -ne 0 ] || [ -n "$arts" ]; then
        status="FAILED (exit $rc)"
        failed=1
    fi
    printf '%s: execs=%s exec/s=%s cov: %s ft: %s corpus=%s new=%s time=%ss %s\n' \
        "$name" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${newu:-?}" \
        "$elapsed" "$status"
    if [ "$status" != ok ]; then
        for a in $arts; do echo "  artifact: $a"; done
        grep -m1 -E 'ERROR:|contract violated|SUMMARY' "$log" | sed 's/^/  /'
        echo "  log: $log"
    fi
done
exit $failed
