#!/usr/bin/env bash
# Checks that the source tree keeps the layout of shared/design.md:
#  - every #include "X/..." between components follows the import arrows;
#  - no file includes another component's private <comp>_int.h;
#  - third-party headers are included only by their owner (style.md B1);
#  - banned functions (style.md B6) appear nowhere in src/.
# Usage: scripts/check-layout.sh [SOURCE_DIR]. Prints every violation; exit 1 if any.
set -u
root=${1:-$(dirname "$0")/..}
cd "$root/src" || exit 2

# component -> components it may include (itself is always allowed)
declare -A allow=(
    [core]=""
    [http]="core"
    [telemetry]="core"
    [proxy]="core http telemetry"
    [store]="core"
    [registry]="core store http"
    [config]="core store"
    [security]="core"
    [events]="core store http"
    [supervisor]="core registry config telemetry"
    [admin]="core http proxy telemetry store registry config security events supervisor"
    [cli]="core http"
    [main]="core http proxy telemetry store registry config security events supervisor admin cli"
)
# third-party header prefix -> components allowed to include it
declare -A owner=(
    ["openssl/"]="security http"
    ["sqlite3.h"]="store"
    ["yaml.h"]="supervisor"
    ["jansson.h"]="admin cli events store"
)

fail=0
while IFS= read -r -d '' f; do
    comp=${f%%/*}
    # files at the top of src/ (main.c, up.c, roles.h) are the main program
    [ "$comp" = "$f" ] && comp=main
    if [ -z "${allow[$comp]+x}" ]; then
        echo "check-layout: src/$f: component '$comp' is not in design.md's layout" >&2
        fail=1
        continue
    fi
    while IFS=: read -r line inc; do
        target=${inc%%/*}
        if [ "$target" != "$comp" ] && [[ " ${allow[$comp]} " != *" $target "* ]]; then
            echo "check-layout: src/$f:$line: '$comp' may not include \"$inc\" (allowed: ${allow[$comp]:-nothing})" >&2
            fail=1
        fi
        if [[ "$inc" == *_int.h ]] && [ "$target" != "$comp" ]; then
            echo "check-layout: src/$f:$line: \"$inc\" is private to '$target'" >&2
            fail=1
        fi
    done < <(grep -n -o -E '^#include "[a-z_]+/[^"]+"' "$f" | sed -E 's/^([0-9]+):#include "([^"]+)"/\1:\2/')
    for hdr in "${!owner[@]}"; do
        if grep -q -E "^#include <${hdr}" "$f" && [[ " ${owner[$hdr]} " != *" $comp "* ]]; then
            echo "check-layout: src/$f: <${hdr}...> may be included only in: ${owner[$hdr]}" >&2
            fail=1
        fi
    done
done < <(find . -name '*.[ch]' -printf '%P\0')

banned='\b(strcpy|strcat|strncpy|sprintf|vsprintf|strtok|atoi|atol|gets|sscanf)[[:space:]]*\('
if grep -rn -E "$banned" --include='*.[ch]' . >&2; then
    echo "check-layout: banned functions above (style.md B6)" >&2
    fail=1
fi
# raw allocation outside core/alloc.c: everything goes through sh_malloc & co.
if grep -rn -E '(^|[^_a-z])(malloc|calloc|realloc|free)[[:space:]]*\(' --include='*.c' . | grep -v '^./core/alloc.c:' >&2; then
    echo "check-layout: raw allocation above; use sh_malloc/sh_calloc/sh_realloc/sh_free" >&2
    fail=1
fi
[ $fail -eq 0 ] && echo "check-layout: ok ($(find . -name '*.[ch]' | wc -l) files)"
exit $fail
