#!/usr/bin/env bash
# Set up, migrate, load demo data and serve the platform on SQLite at http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/guahao db upgrade
.venv/bin/guahao demo
exec .venv/bin/guahao serve --with-worker --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
