#!/usr/bin/env bash
# Create .venv and install contrastkit with its dev tools.
# torch is installed first, pinned to the CPU build (pip install torch==2.13.0 takes a local file on our
# machines); installing anything that depends on torch before it would pull several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  pip install --quiet "torch==$TORCH_VERSION"
fi
pip install --quiet -e ".[dev,quickstart]"
echo "setup: $("$VENV/bin/python" -c 'import torch, contrastkit; print("contrastkit", contrastkit.__version__, "torch", torch.__version__)')"
