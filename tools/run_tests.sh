#!/usr/bin/env bash
# README command 2: install what is missing, lint the tree (pre-commit, as in OpenMMLab
# projects), then run the test suite. Fails when the lint fails. Extra arguments go to pytest.
# MMKD_SKIP_LINT=1 skips the lint (for a copy of the sources without git history).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
VENV="${MMKD_VENV:-$ROOT/.venv}"

if [ "${MMKD_SKIP_LINT:-0}" != "1" ]; then
  if ! git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "[run_tests] $ROOT is not a git checkout: pre-commit lints the files git tracks." >&2
    echo "[run_tests] Clone the repository, or set MMKD_SKIP_LINT=1 to run only the tests." >&2
    exit 2
  fi
  # The local hooks call flake8, isort, yapf and the pre-commit-hooks fixers from the venv.
  export PATH="$VENV/bin:$PATH"
  # pre-commit keeps a small database in its home (default ~/.cache/pre-commit); fall back
  # to a temporary folder where that is not writable (read-only or missing HOME in CI).
  if [ -z "${PRE_COMMIT_HOME:-}" ]; then
    PRE_COMMIT_HOME="${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/pre-commit"
    if ! { mkdir -p "$PRE_COMMIT_HOME" && [ -w "$PRE_COMMIT_HOME" ]; } 2>/dev/null; then
      PRE_COMMIT_HOME="$(mktemp -d "${TMPDIR:-/tmp}/pre-commit.XXXXXX")"
    fi
    export PRE_COMMIT_HOME
  fi
  "$VENV/bin/pre-commit" run --all-files --show-diff-on-failure
fi
exec "$VENV/bin/python" -m pytest tests -q "$@"
