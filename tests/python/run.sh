#!/usr/bin/env bash
# Runs the pytest suite in tests/python against a freshly built release wheel of fanta,
# installed into .venv at the repository root by fanta-py/install.sh. Builds fanta-server
# (in $CARGO_TARGET_DIR, default target/) if missing. Extra arguments go to pytest.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
"$root/fanta-py/install.sh" pytest pytest-timeout

target_dir="${CARGO_TARGET_DIR:-$root/target}"
export FANTA_SERVER_BIN="$target_dir/release/fanta-server"
if [ ! -x "$FANTA_SERVER_BIN" ]; then
    (cd "$root" && cargo build --release --quiet -p fanta-core --bin fanta-server)
fi

# Run from the tests folder so that `import fanta` finds the installed wheel, not the source tree.
cd "$root/tests/python"
exec "$root/.venv/bin/python" -m pytest -p no:cacheprovider "$@" .
