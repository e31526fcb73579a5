#!/usr/bin/env bash
# Install the project into .venv and run a command of it; default: the shipper's scheduled loop.
#   bash scripts/run.sh                 -> shipper run
#   bash scripts/run.sh shipper check   -> any shipper/gateway command
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ $# -eq 0 ]; then set -- shipper run; fi
exec ".venv/bin/$1" "${@:2}"
