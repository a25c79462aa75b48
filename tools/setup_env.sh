#!/usr/bin/env bash
# Idempotent environment setup for mmkd_det: creates .venv (or $MMKD_VENV) with the pinned
# stack. mmcv 2.1.0 has no wheel for torch 2.13, so it is built from source with CPU ops
# (~25 min on 2 cores, once: pip caches the built wheel, and we keep a copy in
# ~/.cache/mmkd_det/wheels). torchvision is never installed (its registry wheel is a CUDA
# build whose import crashes on CPU torch).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMKD_VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON_BIN:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3
WHEELS="${MMKD_WHEEL_CACHE:-$HOME/.cache/mmkd_det/wheels}"
STAMP="$VENV/.mmkd_det_env"
WANT="$(cat "$ROOT/requirements.txt" "$ROOT/constraints.txt" "$ROOT/pyproject.toml" 2>/dev/null | sha1sum | cut -c1-16)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && "$VENV/bin/python" -c "import mmkd_det" 2>/dev/null; then
  exit 0
fi
echo "[setup_env] preparing $VENV" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON_BIN" -m venv "$VENV"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -c "$ROOT/constraints.txt")
"${PIP[@]}" -q "setuptools<82" wheel ninja "torch==2.13.0" numpy

if ! "$PY" -c "import mmcv, mmcv.ops" >/dev/null 2>&1; then
  mkdir -p "$WHEELS"
  if ! ls "$WHEELS"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    echo "[setup_env] building mmcv 2.1.0 with CPU ops (about 25 min on 2 cores, once)" >&2
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" "$PY" -m pip wheel --no-deps --no-build-isolation \
      -w "$WHEELS" mmcv==2.1.0
  fi
  "${PIP[@]}" -q "$WHEELS"/mmcv-2.1.0-*.whl
fi
"${PIP[@]}" -q -r "$ROOT/requirements.txt"
"${PIP[@]}" -q --no-deps --no-build-isolation -e "$ROOT"
if "$PY" -c "import torchvision" >/dev/null 2>&1; then
  echo "[setup_env] torchvision got installed by a dependency; removing it (CUDA build, crashes on CPU torch)" >&2
  "$PY" -m pip uninstall -y torchvision
fi
echo "$WANT" > "$STAMP"
echo "[setup_env] ready: $VENV" >&2
