#!/usr/bin/env bash
# Every GPU figure of docs/benchmarks.md in one run (under 8 minutes on one H100/H200), as one table.
#   here, once:        .venv/bin/python bench/gpu_bench.py pack --data data/fashion-shop --out .gpu
#   on the GPU host:   bash bench/gpu_bench.sh .gpu OUT_DIR [extra gpu_bench.py run options]
# then the GPU tests (-m gpu): they fail, loudly, where CUDA or faiss-gpu is missing.
set -uo pipefail
PACK=${1:-.gpu}
OUT=${2:-runs/gpu-bench}
shift $(( $# < 2 ? $# : 2 ))
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" bench/gpu_bench.py run --pack "$PACK" --out "$OUT" --work "${WORK:-/tmp/gpu-bench-work}" "$@"
"$PY" -m pytest -q -m gpu tests/gpu -p no:cacheprovider 2>&1 | tail -n 20
