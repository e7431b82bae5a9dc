#!/bin/bash
# The pitch-lag model of 2026-12-02-cpu-5 (the shipped model + model.decoder.pitch_lag_taps=5, 819 steps) continued
# for a longer CPU budget, then judged by the ship rule (tools/ship_check.py: the 120 test files, two sampling
# seeds) against the shipped model. From the repository root, nothing else running on the CPU. The split and
# cache: 2026-12-01-cpu's commands (manifest md5 7fca0c67...), in /work/diag/cpu3; the starting point:
# ../2026-12-02-cpu-5/run.sh's /work/diag/p5/lag.pt.
set -euo pipefail
work=/work/diag/p6; src=/work/diag/cpu3; start=/work/diag/p5/lag.pt
minutes=${MINUTES:-55}
mkdir -p "$work"
data=(data.train_manifest="$src/manifests/train.jsonl" data.valid_manifest="$src/manifests/valid.jsonl"
      data.speakers="$src/manifests/speakers.json" data.cache_dir="$src/cache")
# cpu-5's settings, another data order (seed 7: cpu-5 saw seed 6's first 819 batches); a warm restart of the
# cosine schedule; every weight now comes from the init, so all learn at lr (no new_weights_lr_scale)
OMP_NUM_THREADS=2 .venv/bin/speechvq train -c recipes/folder/conf/default.yaml --exp "$work/lag" --device cpu \
  --init "$start" --max-minutes "$minutes" --set "${data[@]}" model.decoder.pitch_lag_taps=5 \
  train.max_steps=100000 train.seed=7 data.segment_s=0.256 data.batch_size=4 data.num_workers=0 \
  data.valid_max_utterances=20 data.loader=device train.precision=fp32 train.compile=true \
  train.freeze_encoder=true train.lr=1e-4 train.warmup_steps=100 \
  train.log_every=50 train.valid_every=250 train.checkpoint_every=250 train.valid_audio_s=0 \
  > "$work/train.log" 2>&1
.venv/bin/speechvq export "$work/lag/best.pt" "$work/lag2.pt" --force
OMP_NUM_THREADS=2 .venv/bin/python tools/ship_check.py "$work/lag2.pt" --seeds 0 1 \
  --manifest "$src/manifests/test.jsonl" --out "$work/ship" > "$work/ship.log" 2>&1
