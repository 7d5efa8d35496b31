#!/usr/bin/env bash
# Builds and runs libfanta's C test suite, then runs it again under valgrind memcheck.
#
# Expects `cargo build --release -p fanta-ffi` to have run (it builds the library itself if
# target/release/libfanta.so is missing). Installs the library into a temporary prefix with
# fanta-ffi/install.sh and compiles every test with the system C compiler through
# `pkg-config --cflags --libs fanta`, so the install layout and fanta.pc are tested too.
# Installs valgrind and pkg-config with apt-get when they are missing.
#
# Every test case prints "PASS name" or "FAIL name"; this script counts them and ends with the
# line "N passed, N failed". It exits non-zero if any case failed.
#
# Environment:
#   CARGO_TARGET_DIR      where the library was built (default: target/ of the workspace)
#   FANTA_VALGRIND_SCALE  divides the request counts under valgrind (default 1: full counts)
#   FANTA_SKIP_VALGRIND   set to 1 to skip the valgrind pass
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in
    /*) ;;
    *) target_dir=$root/$target_dir ;;
esac
export CARGO_TARGET_DIR=$target_dir
valgrind_scale=${FANTA_VALGRIND_SCALE:-1}

passed=0
failed=0

pass() {
    echo "PASS $1"
    passed=$((passed + 1))
}

fail() {
    echo "FAIL $1"
    failed=$((failed + 1))
}

finish() {
    echo "$passed passed, $failed failed"
    if [ $failed -ne 0 ]; then
        exit 1
    fi
    exit 0
}

ensure_tools() {
    if command -v valgrind > /dev/null && command -v pkg-config > /dev/null; then
        return
    fi
    echo "installing valgrind and pkg-config with apt-get"
    if ! { apt-get update && apt-get install -y valgrind pkg-config; } > /dev/null; then
        echo "error: apt-get could not install valgrind and pkg-config" >&2
    fi
}

# Runs one test program, echoing and counting its PASS/FAIL lines under the label `$1`.
# The remaining arguments are the command. A non-zero exit without a FAIL line (a crash, a
# timeout, a memcheck error) counts as one more failure.
run_program() {
    local label=$1
    shift
    local output=$work/output.txt
    "$@" > "$output"
    local code=$?

    local failures_before=$failed
    while read -r verdict name; do
        case $verdict in
            PASS) pass "$label: $name" ;;
            FAIL) fail "$label: $name" ;;
        esac
    done < "$output"
    if [ $code -ne 0 ] && [ $failed -eq $failures_before ]; then
        fail "$label: exited with status $code"
    fi
}

ensure_tools
if [ ! -f "$target_dir/release/libfanta.so" ] || [ ! -f "$target_dir/release/libfanta.a" ]; then
    echo "building libfanta: cargo build --release -p fanta-ffi"
    cargo build --release -p fanta-ffi || { fail "cargo build --release -p fanta-ffi"; finish; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

# Install, and check the layout that pkg-config users and the dynamic loader rely on.
if fanta-ffi/install.sh --no-build "$prefix" > /dev/null; then
    pass "install.sh installs into a prefix"
else
    fail "install.sh installs into a prefix"
    finish
fi
soname=$(readelf -d "$prefix/lib/libfanta.so" 2> /dev/null | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ "$soname" = libfanta.so.0 ] && [ -L "$prefix/lib/libfanta.so.0" ] \
    && [ -f "$prefix/lib/libfanta.a" ] && [ -f "$prefix/include/fanta/fanta.h" ]; then
    pass "installed layout and soname libfanta.so.0"
else
    fail "installed layout and soname libfanta.so.0 (soname: '$soname')"
fi
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
if ! cflags=$(pkg-config --cflags fanta) || ! libs=$(pkg-config --libs fanta) \
    || ! static_libs=$(pkg-config --static --libs-only-l fanta); then
    fail "pkg-config finds fanta.pc"
    finish
fi
pass "pkg-config finds fanta.pc"

# The header alone must compile as strict C99 and as C++.
if cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c include/fanta.h; then
    pass "header compiles as C99 with -pedantic"
else
    fail "header compiles as C99 with -pedantic"
fi
if command -v c++ > /dev/null; then
    if c++ -Wall -Wextra -Werror -fsyntax-only -x c++ include/fanta.h; then
        pass "header compiles as C++"
    else
        fail "header compiles as C++"
    fi
fi

c_flags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -pthread)
programs=(test_api test_blocking test_async test_fork)
built=()
for program in "${programs[@]}"; do
    # shellcheck disable=SC2086 # pkg-config output is a list of flags
    if cc "${c_flags[@]}" $cflags "tests/c/$program.c" $libs -Wl,-rpath,"$prefix/lib" \
        -o "$work/$program"; then
        pass "compile $program"
        built+=("$program")
    else
        fail "compile $program"
    fi
done

# One program linked against the static library, to check libfanta.a and Libs.private.
static_system_libs=${static_libs//-lfanta/}
# shellcheck disable=SC2086
if cc "${c_flags[@]}" $cflags tests/c/test_api.c -L"$prefix/lib" -Wl,-Bstatic -lfanta \
    -Wl,-Bdynamic $static_system_libs -o "$work/test_api_static"; then
    pass "compile test_api against libfanta.a"
    built+=(test_api_static)
else
    fail "compile test_api against libfanta.a"
fi

started=$(date +%s)
for program in "${built[@]}"; do
    run_program "$program" timeout 300 "$work/$program"
done
echo "native run: $(($(date +%s) - started)) s"

if [ "${FANTA_SKIP_VALGRIND:-0}" != 1 ]; then
    if command -v valgrind > /dev/null; then
        started=$(date +%s)
        memcheck=(valgrind --quiet --error-exitcode=99 --leak-check=full
            --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect)
        for program in "${built[@]}"; do
            [ "$program" = test_api_static ] && continue
            extra=()
            if [ "$program" = test_fork ]; then
                # A forked child contains copies of the parent's runtime memory that no live
                # thread references, so its leak report is noise. test_fork reads the child's
                # checks through a pipe, not from its exit status.
                extra=(--child-silent-after-fork=yes)
            fi
            FANTA_TEST_SCALE=$valgrind_scale run_program "valgrind $program" \
                timeout 600 "${memcheck[@]}" "${extra[@]}" "$work/$program"
        done
        echo "valgrind run (request counts divided by $valgrind_scale): $(($(date +%s) - started)) s"
    else
        fail "valgrind is available"
    fi
fi

finish
