#!/usr/bin/env bash
# Runs the libfanta benchmark suite against release-built fanta-server processes on loopback,
# writes docs/benchmarks/results.json and regenerates docs/BENCHMARKS.md and its plots.
#
# usage: fanta-core/benches/run.sh [--quick | --smoke]
#
#   (no option)  full run, under 20 minutes on 2 cores
#   --quick      shorter samples and fewer rounds, about 3 minutes on 2 cores
#   --smoke      tiny counts to check that every section still runs, under 1 minute after the
#                build; writes to target/benchmarks-smoke/ and leaves docs/ untouched
#
# Sections 3 (C ABI) and 4 (Python) run when fanta-ffi and the Python module build; otherwise
# the generated page marks them as not measured. Python packages (matplotlib, and the fanta
# module built as a wheel with maturin) go into the project venv .venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

profile=full
case "${1:-}" in
    "") ;;
    --quick) profile=quick ;;
    --smoke) profile=smoke ;;
    -h | --help)
        sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "run.sh: unknown option ${1:-}; expected --quick or --smoke" >&2
        exit 2
        ;;
esac

if [[ $profile == smoke ]]; then
    out_dir=$root/target/benchmarks-smoke
    doc=$out_dir/BENCHMARKS.md
else
    out_dir=$root/docs/benchmarks
    doc=$root/docs/BENCHMARKS.md
fi
mkdir -p "$out_dir"
work=$(mktemp -d)
server_pids=()

cleanup() {
    for pid in "${server_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

step() {
    printf '\n== %s (at %d s)\n' "$*" "$((SECONDS - started))" >&2
}

# Starts target/release/fanta-server with the given options on a free loopback port and sets
# server_address to the address it listens on. It must not run in a subshell (as in $(...)),
# because cleanup can only stop the servers whose process ids reach server_pids.
start_server() {
    local name=$1
    shift
    target/release/fanta-server --listen 127.0.0.1:0 "$@" >"$work/$name.out" 2>"$work/$name.err" &
    server_pids+=($!)
    for _ in $(seq 100); do
        if grep -q '^listening on ' "$work/$name.out"; then
            server_address=$(sed -n 's/^listening on //p' "$work/$name.out")
            return
        fi
        sleep 0.1
    done
    echo "run.sh: fanta-server ($name) did not start:" >&2
    cat "$work/$name.err" >&2
    exit 1
}

# Runs one Rust benchmark program; its JSON result goes to $work/NAME.json.
run_bench() {
    local bench=$1 name=$2
    shift 2
    cargo bench --quiet -p fanta-core --bench "$bench" -- --profile "$profile" "$@" >"$work/$name.json"
}

build_python_module() {
    .venv/bin/python -m pip install --quiet "maturin>=1.9,<2"
    (cd fanta-py && ../.venv/bin/maturin build --release --quiet --interpreter ../.venv/bin/python \
        --out "$work/wheels")
    .venv/bin/python -m pip install --quiet --force-reinstall --no-deps "$work"/wheels/fanta-*.whl
}

started=$SECONDS

step "build (release)"
cargo build --release -p fanta-core --bin fanta-server
cargo bench --no-run -p fanta-core --bench routing --bench closed_loop --bench latency --bench memory

ffi_ready=no
if cargo build --release -p fanta-ffi && [[ -f include/fanta.h && -f target/release/libfanta.so ]]; then
    # The library's soname is libfanta.so.0; the link in $work/lib lets the loader find it.
    mkdir -p "$work/lib"
    ln -s "$root/target/release/libfanta.so" "$work/lib/libfanta.so.0"
    ffi_ready=yes
    cc -O2 -Wall -Wextra -o "$work/fanta_bench" fanta-core/benches/c/fanta_bench.c \
        -Iinclude -Ltarget/release -lfanta -lpthread -Wl,-rpath,"$work/lib" \
        || ffi_ready=no
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import matplotlib' 2>/dev/null; then
    .venv/bin/pip install --quiet matplotlib
fi
# The Python module is built as a wheel and installed into .venv, as tests/python/run.sh does.
python_ready=no
if [[ -f fanta-py/Cargo.toml ]] && build_python_module >"$work/python-build.log" 2>&1 \
    && .venv/bin/python -c 'import fanta; fanta.Pool; fanta.AsyncPool' 2>/dev/null; then
    python_ready=yes
fi

start_server echo
server=$server_address
start_server silent --silent
silent_server=$server_address
echo "echo server on $server, silent server on $silent_server" >&2

step "1. routing cost"
run_bench routing routing --server "$server"

step "2. Rust, closed loop"
run_bench closed_loop closed_loop --server "$server"

step "3. C ABI"
if [[ $ffi_ready == yes ]]; then
    "$work/fanta_bench" --server "$server" --profile "$profile" >"$work/c.json"
else
    echo "fanta-ffi or include/fanta.h is not available; section 3 is not measured" >&2
fi

step "4. Python"
if [[ $python_ready == yes ]]; then
    .venv/bin/python fanta-core/benches/python/bench.py --server "$server" --profile "$profile" \
        >"$work/python.json"
else
    echo "the fanta Python module did not build or import; section 4 is not measured" >&2
fi

step "5. latency, open loop"
run_bench latency latency --server "$server"

step "6. memory"
for part in idle in_flight growth; do
    run_bench memory "memory_$part" --server "$server" --silent-server "$silent_server" --part "$part"
done

step "report"
command="fanta-core/benches/run.sh${1:+ $1}"
.venv/bin/python fanta-core/benches/report.py \
    --results "$work" \
    --profile "$profile" \
    --command "$command" \
    --seconds "$((SECONDS - started))" \
    --out-dir "$out_dir" \
    --doc "$doc"

echo "benchmarks finished in $((SECONDS - started)) s; wrote $doc" >&2
