#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the checks: ruff, mypy (src/contrastkit, [tool.mypy] in pyproject.toml),
# then the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
