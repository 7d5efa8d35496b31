#!/usr/bin/env bash
# Builds libfanta in release mode and installs it under PREFIX in the layout that cargo-c's
# `cargo cinstall` produces:
#
#   PREFIX/lib/libfanta.so.X.Y.Z      the shared library, soname libfanta.so.0
#   PREFIX/lib/libfanta.so.0          -> libfanta.so.X.Y.Z
#   PREFIX/lib/libfanta.so            -> libfanta.so.0
#   PREFIX/lib/libfanta.a             the static library
#   PREFIX/include/fanta/fanta.h      the header
#   PREFIX/lib/pkgconfig/fanta.pc     for `pkg-config --cflags --libs fanta`
#
# Usage: fanta-ffi/install.sh [--no-build] PREFIX
# --no-build installs the library already built in the target directory instead of running
# `cargo build --release -p fanta-ffi` first.
# DESTDIR, if set, is prepended to every installed path but not to the paths in fanta.pc, as
# packaging tools expect. CARGO_TARGET_DIR is honoured; the default is the workspace's target/.
set -euo pipefail

usage="usage: $0 [--no-build] PREFIX"
case "${1:-}" in
    -h | --help)
        echo "$usage"
        echo "Builds libfanta and installs it under PREFIX (for example /usr/local or \$HOME/.local)."
        exit 0
        ;;
esac

build=1
if [ "${1:-}" = --no-build ]; then
    build=0
    shift
fi
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "$usage" >&2
    exit 2
fi
case $1 in
    -*)
        echo "install.sh: unknown option $1; $usage" >&2
        exit 2
        ;;
esac
prefix=$1
case $prefix in
    /*) ;;
    *) prefix=$(pwd)/$prefix ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in
    /*) ;;
    *) target_dir=$root/$target_dir ;;
esac
build_dir=$target_dir/release

if [ $build = 1 ]; then
    (cd "$root" && cargo build --release -p fanta-ffi)
fi
for built in libfanta.so libfanta.a; do
    if [ ! -f "$build_dir/$built" ]; then
        echo "error: $build_dir/$built is missing; run cargo build --release -p fanta-ffi" >&2
        exit 1
    fi
done

version=$(sed -n 's/^#define FANTA_VERSION_STRING "\(.*\)"$/\1/p' "$root/include/fanta.h")
if [ -z "$version" ]; then
    echo "error: FANTA_VERSION_STRING not found in $root/include/fanta.h" >&2
    exit 1
fi

dest=${DESTDIR:-}$prefix
install -d "$dest/lib/pkgconfig" "$dest/include/fanta"
install -m 755 "$build_dir/libfanta.so" "$dest/lib/libfanta.so.$version"
ln -sf "libfanta.so.$version" "$dest/lib/libfanta.so.0"
ln -sf "libfanta.so.0" "$dest/lib/libfanta.so"
install -m 644 "$build_dir/libfanta.a" "$dest/lib/libfanta.a"
install -m 644 "$root/include/fanta.h" "$dest/include/fanta/fanta.h"

# Libs.private lists what the static library needs from the system, as printed by
# `rustc --print native-static-libs` for this crate on Linux with glibc.
cat > "$dest/lib/pkgconfig/fanta.pc" <<PC
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: fanta
Description: Routing connection pool for multiplexed protocols (C API)
Version: $version
Libs: -L\${libdir} -lfanta
Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
Cflags: -I\${includedir}/fanta
PC

echo "installed libfanta $version under ${dest}"
