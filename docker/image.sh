#!/usr/bin/env bash
# Build the CPU serving image from a local Debian base and run it with podman, where no container
# registry is reachable (Debian's mirror and PyPI are): base image by mmdebstrap -> podman import,
# `podman build` with the base as a build argument, then the container started on a bundle, /readyz
# and a recommendation checked from outside it. Prints the image size, the build time and the cold
# start; then a second container on the same Redis (a host redis-server on loopback) takes an admin
# change made through the first (docs/benchmarks.md, "Replicas on Redis, and the serving image").
#
#   bash docker/image.sh [ARTIFACTS]      (default: artifacts; root, with podman, runc and mmdebstrap)
#
# Two settings these machines need are in docker/podman/containers.conf (runc instead of crun, no
# rlimits raised); the container uses the host's network (no port mapping needed).
set -euo pipefail
cd "$(dirname "$0")/.."
ARTIFACTS=$(realpath "${1:-artifacts}")
BASE=localhost/vitrine-base:bookworm
IMAGE=localhost/vitrine-serve:cpu
PORT=${PORT:-8790}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
export CONTAINERS_CONF=$PWD/docker/podman/containers.conf
WORK=$(mktemp -d)
NAME=vitrine-image-check-$$
REDIS_PORT=${REDIS_PORT:-8795}
TOKEN=image-check-admin-token-$$
trap 'podman rm -f "$NAME" "$NAME-2" >/dev/null 2>&1 || true; kill "${REDIS_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

for tool in podman runc mmdebstrap curl redis-server; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install podman runc mmdebstrap curl redis-server" >&2; exit 2; }
done
version=$(cat "$ARTIFACTS/CURRENT" 2>/dev/null) || { echo "no bundle: $ARTIFACTS/CURRENT is missing" >&2; exit 2; }

now() { date +%s.%N; }
t0=$(now)
if ! podman image exists "$BASE"; then
  # python3 + venv, certificates for pip, passwd for useradd; nothing else
  mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd bookworm "$WORK/base.tar" "$MIRROR"
  podman import --change 'CMD ["/bin/bash"]' "$WORK/base.tar" "$BASE" >/dev/null
fi
t1=$(now)
# the host's CA bundle, for pip behind a TLS-inspecting proxy (the Dockerfile uses it only if present)
CA=()
[ -f "${PIP_CERT:-}" ] && CA=(--volume "$(realpath "$PIP_CERT"):/etc/pip-ca.crt:ro")
podman build --network=host "${CA[@]}" --build-arg BASE="$BASE" -f docker/serve-cpu.Dockerfile -t "$IMAGE" . \
  >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log" >&2; exit 1; }
t2=$(now)

# the shared live state of both containers: a Redis on the host's loopback (they use its network)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" --appendonly yes \
  --appendfsync always >/dev/null &
REDIS_PID=$!

# each container serves its own writable copy of CURRENT's version (the service logs events there)
for d in bundles bundles2; do
  mkdir -p "$WORK/$d/bundles"
  cp -r "$ARTIFACTS/bundles/$version" "$WORK/$d/bundles/"
  echo "$version" >"$WORK/$d/CURRENT"
  chmod -R a+rwX "$WORK/$d"
done
start() {  # name, port, folder
  podman run -d --name "$1" --network=host -v "$WORK/$3:/bundles" -e VITRINE_ADMIN_TOKEN="$TOKEN" \
    -e VITRINE_STATE_URL="redis://127.0.0.1:$REDIS_PORT/0" "$IMAGE" \
    vitrine serve --host 127.0.0.1 --port "$2" --workers 0 >/dev/null
}
ready() {  # name, port, since
  until curl -sf "http://127.0.0.1:$2/readyz" >"$WORK/ready.json"; do
    if [ "$(podman inspect -f '{{.State.Running}}' "$1")" != true ]; then podman logs "$1" >&2; exit 1; fi
    if (( $(echo "$(now) - $3 > 300" | bc) )); then echo "$1 not ready in 300 s" >&2; podman logs "$1" >&2; exit 1; fi
    sleep 0.2
  done
}
t3=$(now)
start "$NAME" "$PORT" bundles
ready "$NAME" "$PORT" "$t3"
t4=$(now)
rec=$(curl -sf -X POST "http://127.0.0.1:$PORT/v1/recommendations" -H 'Content-Type: application/json' -d '{"k": 5}')
echo "$rec" | python3 -c 'import json, sys; r = json.load(sys.stdin); assert len(r["items"]) == 5, r; print("recommendation from outside the container:", [i["item_id"] for i in r["items"]], "bundle", r["bundle_version"])'
echo "readyz: $(cat "$WORK/ready.json")"
mem=$(podman stats --no-stream --format '{{.MemUsage}}' "$NAME")

# a second container on the same Redis serves an admin change made through the first
start "$NAME-2" $((PORT + 1)) bundles2
ready "$NAME-2" $((PORT + 1)) "$(now)"
item=$(echo "$rec" | python3 -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["item_id"])')
curl -sf -X PATCH "http://127.0.0.1:$PORT/v1/items/$item" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d '{"price": 12.34}' >/dev/null
t5=$(now)
until curl -sf "http://127.0.0.1:$((PORT + 1))/v1/items/$item" | grep -q '"price":12.34'; do
  if (( $(echo "$(now) - $t5 > 10" | bc) )); then echo "the second container did not take the change in 10 s" >&2; exit 1; fi
  sleep 0.02
done
t6=$(now)

size=$(podman image inspect -f '{{.Size}}' "$IMAGE")
base=$(podman image inspect -f '{{.Size}}' "$BASE")
printf '%s, %s, %s cores, podman %s (runc); image %s from %s (built here by mmdebstrap from %s)\n' \
  "$(date -u +%F)" "$(uname -m)" "$(nproc)" "$(podman version -f '{{.Client.Version}}')" "$IMAGE" "$BASE" "$MIRROR"
printf 'base image: %.0f MB, %.1f s (0 when it already existed)\n' "$(echo "$base / 1000000" | bc -l)" "$(echo "$t1 - $t0" | bc)"
printf 'serving image: %.0f MB, built in %.1f s (pip install of %s pinned wheels from PyPI included)\n' \
  "$(echo "$size / 1000000" | bc -l)" "$(echo "$t2 - $t1" | bc)" "$(grep -c '^[A-Za-z0-9]' docker/requirements-serve-cpu.txt)"
printf 'cold start (podman run to /readyz ready, bundle %s): %.1f s; memory after one request: %s\n' \
  "$version" "$(echo "$t4 - $t3" | bc)" "$mem"
printf 'a price change through container 1 served by container 2 (one Redis, change poll 1 s): %.0f ms\n' \
  "$(echo "($t6 - $t5) * 1000" | bc)"
