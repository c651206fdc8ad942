#!/usr/bin/env bash
# Set up, list the objectives, and run the offline objective benchmark (quick mode): dense vs exact tiled
# InfoNCE loss + backward on this machine. Needs no network and no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/contrastkit objectives
.venv/bin/python bench/objectives.py --quick
