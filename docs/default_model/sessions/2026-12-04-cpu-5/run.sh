#!/bin/bash
# Code jitter (`model.code_jitter=0.12`, Chorowski et al. 2019) and EMA codebook updates (`model.quantizer.ema`)
# from scratch, each against 2026-12-04-cpu-4's plain run (same config, seed, data order and 60-minute budget on
# one core of this CPU), then plain and ema again side by side at train.seed=1. From the repository root:
#   bash docs/default_model/sessions/2026-12-04-cpu-5/run.sh MANIFESTS CACHE PLAIN [WORK]
# PLAIN: that session's exported plain run (its run.sh with CHECK=0 RUNS=plain). Every model is decoded on the
# same 48 test files x 3 s against PLAIN; copying PLAIN's ship_check "reference" folder into WORK/ship_check and
# WORK/seed1/ship_check first reuses its decodes.
set -euo pipefail
manifests=$1; cache=$2; plain=$3; work=${4:-exp/ablate}
here=$(dirname "$0")
check() {  # OUT CANDIDATE...
  local out=$1; shift
  python tools/ship_check.py "$@" --reference "$plain" --seeds 0 1 --manifest "$manifests/test.jsonl" \
    --max-files 48 --spread --max-seconds 3 --out "$out"
}
RUNS="jitter:model.code_jitter=0.12 ema:model.quantizer.ema=true" CHECK=0 \
  bash "$here/../2026-12-04-cpu-4/run.sh" "$manifests" "$cache" "$work"
check "$work/ship_check" "$work/jitter.pt" "$work/ema.pt"
RUNS="plain1:train.seed=1 ema1:model.quantizer.ema=true,train.seed=1" CHECK=0 \
  bash "$here/../2026-12-04-cpu-4/run.sh" "$manifests" "$cache" "$work/seed1"
check "$work/seed1/ship_check" "$work/seed1/plain1.pt" "$work/seed1/ema1.pt"
# ema against plain at each seed, and both seeds pooled per file
folder() { ls -d "$1"-*/ | head -1; }
python "$here/pool_replicates.py" "$(folder "$work/seed1/ship_check/plain1"):$(folder "$work/seed1/ship_check/ema1")"
python "$here/pool_replicates.py" "$work/ship_check/reference:$(folder "$work/ship_check/ema")" \
  "$(folder "$work/seed1/ship_check/plain1"):$(folder "$work/seed1/ship_check/ema1")"
