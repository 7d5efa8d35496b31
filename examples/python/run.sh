#!/usr/bin/env bash
# Runs the Python examples, threaded.py and asyncio_requests.py, and prints each one's summary
# line. Arguments go to both (for example --address HOST:PORT; without it each starts an
# embedded server). First builds and installs the module into .venv
# with fanta-py/install.sh, unless FANTA_SKIP_INSTALL=1.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ "${FANTA_SKIP_INSTALL:-0}" != 1 ]; then
    "$root/fanta-py/install.sh"
fi

cd "$root/examples/python"
"$root/.venv/bin/python" threaded.py "$@"
"$root/.venv/bin/python" asyncio_requests.py "$@"
