#!/usr/bin/env bash
# The prepared GPU run of the paper-scale reproduction (Figs 1-2), at most 10 minutes on one GPU:
#   1. attacked points per second at s = 12, 32, 60 (the faithful network, full width, depth 20,
#      float32, boxed [0, 1], 100 attack steps), batched (NetworkEnsemble) vs one network at a time;
#   2. as much of the paper protocol as fits: all 13 sizes s = 12..60 with 25 networks x 10 points
#      per size (the paper: 200 x 10), a fresh network per norm, resumable (a killed run keeps every
#      finished block of results.jsonl);
#   3. the paper protocol's cost model on this device (--dry-run, measured calibration).
# Then `gpbound report --results $OUT/paper` rebuilds the figure from the saved sweep.
#
# Usage, in the repository root on the GPU machine, with a python that has torch (CUDA) and gpbound
# installed (`python -m pip install --no-deps -e .` where the dependencies are present):
#     OUT=/path/to/out PY=python bash benchmarks/paper_gpu.sh
set -euo pipefail
: "${OUT:?set OUT to the output folder}"
PY=${PY:-python}
DEV=${DEV:-cuda}
mkdir -p "$OUT"
"$PY" -c "import torch, gpbound; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name(0), 'gpbound', gpbound.__version__)" | tee "$OUT/device.txt"
t0=$(date +%s)
timeout 200 "$PY" benchmarks/fig1.py --throughput --device "$DEV" --sizes 12 32 60 --networks 8 --points 10 \
    --steps 100 --json "$OUT/throughput.json" | tee "$OUT/throughput.txt" || echo "throughput stopped at its limit: rows so far in $OUT/throughput.json"
timeout 300 "$PY" -m gpbound.cli reproduce fig1 --protocol paper --num-networks 25 --device "$DEV" --threads 8 \
    --out "$OUT/paper" | tee "$OUT/paper.txt" || echo "protocol run stopped at its limit: finished blocks are in $OUT/paper/results.jsonl"
timeout 60 "$PY" -m gpbound.cli reproduce fig1 --protocol paper --device "$DEV" --dry-run | tee "$OUT/dry_run.txt"
echo "total $(( $(date +%s) - t0 )) s"
