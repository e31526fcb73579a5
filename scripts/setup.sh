#!/usr/bin/env bash
# Create .venv and install the project into it (with the test extra when asked: setup.sh test).
# The install is skipped when .venv already holds it for this pyproject.toml (a stamp file; the
# test install covers a plain one), so scripts/run.sh starts at once after its first call.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ "${1:-}" = "test" ]; then
  [ -f "$stamp-test" ] && exit 0
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp-test"
else
  { [ -f "$stamp" ] || [ -f "$stamp-test" ]; } && exit 0
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
