#!/usr/bin/env bash
# README command 1: install what is missing, then the FRS/TID demo on synthetic data.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec "${MMKD_VENV:-$ROOT/.venv}/bin/python" "$ROOT/tools/misc/demo.py" "$@"
