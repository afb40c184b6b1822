#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest (PostgreSQL on 127.0.0.1:5432 and Debian's
# chromium are used for real; see README "Running the tests").
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check src tests bench examples
.venv/bin/ruff format --check src tests bench examples
.venv/bin/mypy
(cd frontend && npm test --silent)
exec .venv/bin/pytest -q -n 2 --dist loadfile -p no:cacheprovider "$@"
