#!/usr/bin/env bash
# Creates bench/.venv-recbole with RecBole 1.2.1 (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv-recbole
if [ ! -f "$V/.ok" ]; then
  python3.11 -m venv "$V"
  "$V/bin/pip" install -q --upgrade pip
  "$V/bin/pip" install -q -r recbole/requirements.txt
  "$V/bin/pip" install -q --no-deps recbole==1.2.1
  touch "$V/.ok"
fi
