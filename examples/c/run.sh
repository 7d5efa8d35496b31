#!/usr/bin/env bash
# Builds examples/c/client.c the way a C project would, against libfanta installed into a
# temporary prefix and found with pkg-config, and runs it against an embedded server.
#
# Expects `cargo build --release -p fanta-ffi` to have run (it builds the library itself if it
# is missing). Arguments are passed to the client: [ADDRESS [REQUESTS]].
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in
    /*) ;;
    *) target_dir=$root/$target_dir ;;
esac
export CARGO_TARGET_DIR=$target_dir

if ! command -v pkg-config > /dev/null; then
    apt-get update > /dev/null && apt-get install -y pkg-config > /dev/null
fi
if [ ! -f "$target_dir/release/libfanta.so" ]; then
    cargo build --release -p fanta-ffi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fanta-ffi/install.sh --no-build "$work/prefix" > /dev/null
export PKG_CONFIG_PATH=$work/prefix/lib/pkgconfig

# shellcheck disable=SC2046 # pkg-config output is a list of flags
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -pthread examples/c/client.c \
    $(pkg-config --cflags --libs fanta) -Wl,-rpath,"$work/prefix/lib" -o "$work/client"

"$work/client" "$@"
