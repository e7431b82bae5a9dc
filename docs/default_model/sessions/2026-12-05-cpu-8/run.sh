#!/bin/bash
# The shipped model 3ff81353 continued with its ENCODER SIDE TRAINING TOO (encoder and codebook; every CPU
# continuation since 2026-12-01 froze them), otherwise 2026-12-03-cpu-3's recipe (that session's run.sh, called
# here): 4 x 0.256 s crops, compiled, fp32, peak lr 1e-4 with 100 warm-up steps and a cosine fitted to the budget,
# the lag tables and pitch vectors at 10 x lr, train.seed 20. No dead-code restarts
# (model.quantizer.dead_code_window=0): a re-seeded code would mean something else to the decoder that learned it.
# Why: two stacked decoder-only runs from 3ff81353 (2026-12-05-cpu-6, -7; 210 min) and the average of the three
# cycle ends (this session's swa3, average.py) moved neither STOI nor PESQ-WB: with the codes fixed, the decoder's
# returns have flattened on this CPU. The codes are the other half: the first (GPU) run's VQ loss rose from 0.006
# to 0.122 (the encoder drifted from its codebook), and an EMA codebook from scratch scored STOI +0.008.
# Judged by the ship rule against 3ff81353, reusing the decodes of it made on this CPU type (Intel Xeon, AVX-512)
# in 2026-12-05-cpu-6. Codes change, so --init's code statistics are dropped and measured anew afterwards
# (speechvq code-stats on 3,000 training files of all 12 voices, --spread, as the shipped model's were; the ship
# check does not use them). As run this session the experiment folder was WORK/whole (cpu-3's: WORK/lag), and the
# statistics were measured before the ship check and without --spread (see README).
set -euo pipefail
work=${WORK:-/work/s14} manifests=${MANIFESTS:-/work/diag/manifests} name=${NAME:-whole}
WORK=$work MANIFESTS=$manifests NAME=$name CACHE=${CACHE:-/work/gpu/cache} \
  START=${START:-/work/s12/shipped-8daf2b9.pt} REFERENCE=${REFERENCE-/work/s12/ship/reference} \
  MINUTES=${MINUTES:-75} SEED=${SEED:-20} LR=${LR:-1e-4} \
  SETTINGS="train.freeze_encoder=false model.quantizer.dead_code_window=0 ${SETTINGS:-}" \
  bash "$(dirname "$0")/../2026-12-03-cpu-3/run.sh"
OMP_NUM_THREADS=2 .venv/bin/speechvq code-stats --model "$work/$name.pt" --manifest "$manifests/train.jsonl" \
  --max-files 3000 --spread > "$work/code_stats.log" 2>&1
