#!/bin/bash
# The fair gate on fashion-shop: two consecutive nights with the same recipe (day 0, then one more
# simulated day), the second gated against the first on the same holdout (pipelines/gate.py).
# Prints each night's wall time and gate record (bench/gate_report.py).
#
#   bash bench/gate_nights.sh [DATA_DAY0] [OUT]   (default data/fashion-shop, bench/out/nights; ~30 min on 2 cores)
set -eu
cd "$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)"
src=${1:-data/fashion-shop}
out=${2:-bench/out/nights}
data=$out/data
rm -rf "$out" && mkdir -p "$out" && cp -r "$src" "$data"
cfg=pipelines/configs/nightly-cpu.yaml
.venv/bin/vitrine nightly --data "$data" --artifacts "$out/artifacts" --config $cfg
.venv/bin/vitrine data fashion-shop --out "$data" --append-days 1
.venv/bin/vitrine nightly --data "$data" --artifacts "$out/artifacts" --config $cfg
echo "machine: $(uname -m), $(nproc) cores; $(date -u +%F); commit $(git rev-parse --short HEAD)"
.venv/bin/python bench/gate_report.py "$out/artifacts"
