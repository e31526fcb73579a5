#!/usr/bin/env bash
# Set up everything the tests need on a fresh Debian machine, lint and type-check, and run the whole suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for pair in promtool:prometheus amtool:prometheus-alertmanager docker-compose:docker-compose \
      redis-server:redis-server; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi
bash scripts/setup.sh test
# The real-Loki tests find Loki through LOKI_BINARY (else `loki` on PATH); the team's checkout
# keeps Loki 3.7.6 beside the project.
if [ -z "${LOKI_BINARY:-}" ] && [ -x ../shared/tools/loki/loki ]; then
  LOKI_BINARY="$(cd ../shared/tools/loki && pwd)/loki"
  export LOKI_BINARY
fi
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
