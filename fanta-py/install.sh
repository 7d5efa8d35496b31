#!/usr/bin/env bash
# Builds a release wheel of the fanta Python module and installs it into the virtual
# environment .venv at the repository root, creating it if missing. Arguments are extra pip
# packages to install into the same environment (for example pytest). Uses $PYTHON (default
# python3) to create the environment.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"

if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade "maturin>=1.9,<2" "$@"

# The wheel goes to a temporary folder and is installed as a user would install it.
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
(cd "$root/fanta-py" && "$venv/bin/maturin" build --release --quiet --interpreter "$venv/bin/python" --out "$wheels")
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$wheels"/fanta-*.whl
