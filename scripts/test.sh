#!/usr/bin/env bash
# Set up and run the whole test suite. PostgreSQL cases run when a server answers at
# GUAHAO_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test) and skip
# otherwise; GUAHAO_REQUIRE_POSTGRES=1 makes a missing PostgreSQL a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
