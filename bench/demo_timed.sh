#!/bin/bash
# Time `./dev demo` from a fresh clone until the service answers /readyz (first run: venv, data,
# nightly, serve), then again with everything in place. Prints both durations.
#
#   bash bench/demo_timed.sh [CLONE_DIR]      (default /tmp/vitrine-demo; port 8010)
set -u
src=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
dir=${1:-/tmp/vitrine-demo}
rm -rf "$dir" && git clone -q "$src" "$dir" && cd "$dir" || exit 1
run() {  # $1 = log file; prints seconds until ready
  local start=$(date +%s)
  ./dev demo --port 8010 > "$1" 2>&1 &
  until curl -sf localhost:8010/readyz > /dev/null 2>&1; do
    sleep 1
    jobs %1 > /dev/null 2>&1 || { echo "demo exited early, see $1" >&2; exit 1; }
  done
  echo $(( $(date +%s) - start ))
  pkill -f "vitrine demo"; sleep 3
}
first=$(run "$dir/demo-first.log")
second=$(run "$dir/demo-second.log")
echo "machine: $(uname -m), $(nproc) cores; fresh clone of $(git rev-parse --short HEAD)"
echo "first run (venv + fashion-shop + nightly + serve): ${first} s; second run: ${second} s"
grep -E "step .* done in|published" "$dir/demo-first.log" | sed 's/^ *//' | cut -c1-120
