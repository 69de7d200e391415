#!/usr/bin/env bash
# Checks that the source tree keeps the layout of shared/design.md:
#  - every #include "X/..." between components follows the import arrows, which are the link
#    lines of CMakeLists.txt (one table);
#  - no component includes a header of the main program (src/*.h);
#  - no file includes another component's private <comp>_int.h;
#  - third-party headers are included only by their owner (style.md B1);
#  - banned functions (style.md B6) appear nowhere in src/.
# Usage: scripts/check-layout.sh [SOURCE_DIR]. Prints every violation; exit 1 if any.
set -u
root=$(cd "${1:-$(dirname "$0")/..}" && pwd) || exit 2
cd "$root/src" || exit 2

# component -> components it may include (itself is always allowed). One arrow table: it is
# read from CMakeLists.txt, where each component is a library whose link line is its arrow
# list (`target_link_libraries(shoal_proxy PUBLIC shoal_core shoal_http ...)`); the files at
# the top of src/ are the main program, linked into the `shoal` executable.
declare -A allow=()
cmake=$root/CMakeLists.txt
if [ ! -r "$cmake" ]; then
    echo "check-layout: $cmake: cannot read the link lines" >&2
    exit 2
fi
while read -r target deps; do
    comp=${target#shoal_}
    [ "$target" = "shoal" ] && comp=main
    allow[$comp]=$deps
done < <(tr '\n' ' ' <"$cmake" | grep -o -E 'target_link_libraries\([^)]*\)' |
         sed -E 's/target_link_libraries\(([a-z_]+) (PUBLIC|PRIVATE|INTERFACE)? *([^)]*)\)/\1 \3/' |
         while read -r t rest; do
             case $t in shoal | shoal_*) ;; *) continue ;; esac
             printf '%s' "$t"
             for d in $rest; do
                 case $d in shoal_*) printf ' %s' "${d#shoal_}" ;; esac
             done
             printf '\n'
         done)
# third-party header prefix -> components allowed to include it
declare -A owner=(
    ["openssl/"]="security tls"
    ["sqlite3.h"]="store observe"
    ["yaml.h"]="supervisor"
    ["jansson.h"]="admin cli events store security observe"
)

fail=0
while IFS= read -r -d '' f; do
    comp=${f%%/*}
    # files at the top of src/ (main.c, up.c, roles.h) are the main program
    [ "$comp" = "$f" ] && comp=main
    if [ -z "${allow[$comp]+x}" ]; then
        echo "check-layout: src/$f: component '$comp' has no library in CMakeLists.txt (design.md's layout)" >&2
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
    # a header without a component in its path is one of the main program's (src/up.h, ...):
    # only the main program may include those
    while IFS=: read -r line inc; do
        if [ "$comp" != main ]; then
            echo "check-layout: src/$f:$line: '$comp' may not include the main program's \"$inc\"" >&2
            fail=1
        fi
    done < <(grep -n -o -E '^#include "[^"/]+"' "$f" | sed -E 's/^([0-9]+):#include "([^"]+)"/\1:\2/')
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
