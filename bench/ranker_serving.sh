#!/usr/bin/env bash
# The served request rate with the shipped ranker against another one, same bundle otherwise, one
# run (issue 32): bench/serving_bench.py on ARTIFACTS and on NEW (bench/bundle_with_ranker.py),
# alternated, two rounds, one and two workers. Prints each run's table row for /v1/recommendations.
#
#   bash bench/ranker_serving.sh artifacts /tmp/art-student [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2 SECONDS_PER=${3:-20}
echo "$(date -u +%F) $(uname -m) $(nproc) cores; commit $(git rev-parse --short HEAD); old: $OLD, new: $NEW"
for workers in 1 2; do
  for round in 1 2; do
    for art in "$OLD" "$NEW"; do
      out=$(.venv/bin/python bench/serving_bench.py --artifacts "$art" --workers "$workers" --seconds "$SECONDS_PER" 2>/dev/null)
      echo "workers $workers round $round $art: $(echo "$out" | grep 'POST /v1/recommendations')"
    done
  done
done
