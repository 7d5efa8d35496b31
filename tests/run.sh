#!/usr/bin/env bash
# Runs every libfanta test: formatting and lints, the Rust unit and integration tests, the C suite
# (including valgrind) and the Python suite. On a fresh Debian machine it installs what it needs:
# Debian packages through the C runner, Python packages into .venv through the Python runner.
#
# Everything builds once, in release mode, into target/; later steps reuse that build.
set -euo pipefail
cd "$(dirname "$0")/.."

step() {
    printf '\n== %s\n' "$*"
}

started=$SECONDS

step "formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (cargo clippy)"
cargo clippy --release --workspace --all-targets -- -D warnings

step "Rust tests (fanta-core, fanta-ffi)"
cargo test --release -p fanta-core -p fanta-ffi

step "C tests"
cargo build --release -p fanta-ffi
tests/c/run.sh

step "Python tests"
tests/python/run.sh

step "benchmark smoke run (tiny counts; keeps the benchmark code from rotting)"
fanta-core/benches/run.sh --smoke

printf '\nall test suites passed in %d s\n' "$((SECONDS - started))"
