#!/usr/bin/env bash
# README command 2: install what is missing, then run the test suite.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec "${MMKD_VENV:-$ROOT/.venv}/bin/python" -m pytest tests -q "$@"
