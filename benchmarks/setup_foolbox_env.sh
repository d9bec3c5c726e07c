#!/usr/bin/env bash
# Builds the benchmark-only peer environment of benchmarks/attacks.py: foolbox 3.3.4 on CPU torch.
# Never needed by `make test`; foolbox is no dependency of gpbound.
#   Usage: FBENV=/path/to/fbenv bash benchmarks/setup_foolbox_env.sh
set -euo pipefail
: "${FBENV:?set FBENV to the folder of the new virtual environment}"
python3 -m venv "$FBENV"
"$FBENV/bin/pip" install -q torch==2.13.0 foolbox==3.3.4 numpy
