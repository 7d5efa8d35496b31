#!/usr/bin/env bash
# The main job: starts the reference server (fanta-server) on a free loopback port, routes a
# stream of requests from many concurrent callers through pools of several connections, from
# Rust, C and Python, and prints a summary for each.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    -h | --help)
        cargo build --quiet --release -p fanta-core --example main_job
        exec target/release/examples/main_job --help
        ;;
esac

cargo build --release -p fanta-core --bin fanta-server --example main_job
cargo build --release -p fanta-ffi

server_output=$(mktemp)
target/release/fanta-server --listen 127.0.0.1:0 >"$server_output" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; rm -f "$server_output"' EXIT

for _ in $(seq 100); do
    grep -q '^listening on ' "$server_output" && break
    sleep 0.05
done
address=$(sed -n 's/^listening on //p' "$server_output")
if [ -z "$address" ]; then
    echo "fanta-server did not start" >&2
    exit 1
fi
echo "fanta-server listening on $address"
echo

target/release/examples/main_job --address "$address" "$@"

echo
examples/c/run.sh "$address"

echo
examples/python/run.sh --address "$address"
