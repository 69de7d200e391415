#!/usr/bin/env bash
# Checks that every C file git tracks is formatted as .clang-format says (`make format` fixes
# them). Usage: scripts/check-format.sh [SOURCE_DIR]. Exit 0 clean, 1 with the files and lines
# that differ, 77 (a ctest SKIP) when clang-format is missing.
set -u
root=$(cd "${1:-$(dirname "$0")/..}" && pwd) || exit 2
cd "$root" || exit 2
if ! command -v clang-format >/dev/null 2>&1; then
    echo "SKIP: clang-format not found (scripts/install-deps.sh installs it)"
    exit 77
fi
mapfile -t files < <(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'fuzz/*.c' 'bench/*.c' 2>/dev/null)
if [ ${#files[@]} -eq 0 ]; then # not a git checkout: every C file below these folders
    mapfile -t files < <(find src tests fuzz bench -name '*.[ch]' 2>/dev/null)
fi
if ! out=$(clang-format --dry-run --Werror "${files[@]}" 2>&1); then
    printf '%s\n' "$out" | grep -E '^[^ ].*: (error|warning):' | head -40 >&2
    echo "check-format: $(printf '%s\n' "$out" | grep -c -E ': (error|warning):') places differ from .clang-format; run 'make format'" >&2
    exit 1
fi
echo "check-format: ok (${#files[@]} files)"
