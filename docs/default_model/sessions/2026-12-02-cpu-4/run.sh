#!/bin/bash
# Screening of a pitch-lag input (pitch_lag.py's docstring), from the repository root, nothing else running:
#   bash docs/default_model/sessions/2026-12-02-cpu-4/run.sh
# The shipped split (2026-12-01-cpu's manifest command) and cache are in /work/diag/cpu3; the run is
# 2026-12-02-cpu-3's (same config, seed, crops, schedule fitted to 110 min) with the lag input, stopped early.
set -euo pipefail
here=docs/default_model/sessions/2026-12-02-cpu-4; work=/work/diag/p4; src=/work/diag/cpu3
OMP_NUM_THREADS=2 .venv/bin/python "$here/pitch_lag.py" train "$work/lag" speechvq/assets/default.pt \
  "$src/manifests" "$src/cache" "${STOP_AT_STEP:-3000}" > "$work/train_lag.log" 2>&1 || true  # stopped by hand after step 2,250 (time)
for model in speechvq/assets/default.pt "$work/lag/best.pt"; do  # best.pt: step 2,000
  OMP_NUM_THREADS=2 .venv/bin/python "$here/pitch_lag.py" score "$model" "$src/manifests/valid.jsonl" "$src/cache"
done > "$work/score.jsonl"
