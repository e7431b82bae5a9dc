#!/bin/bash
# The pitch-lag candidate of 2026-12-03-cpu (/work/diag/p6/lag2.pt: shipped + 5 lag taps, 2,549 decoder-only steps)
# continued once more, now with its two young tensors at 10 x lr (train.new_weights_include): the lag tables (RMS
# 0.015 beside input embeddings of 1.0) and the pitch vectors (0.028 beside code vectors of 0.6) hardly grew at 1 x
# lr last time. Then judged by the ship rule (tools/ship_check.py, 120 test files, seeds 0 and 1) against the
# shipped model; the reference decodes of 2026-12-03-cpu (/work/diag/p6/ship/reference, same decode key) are reused.
# From the repository root, nothing else running on the CPU. The split and cache: 2026-12-01-cpu's commands
# (manifest md5 7fca0c67...), in /work/diag/cpu3.
set -euo pipefail
work=/work/diag/p7; src=/work/diag/cpu3; start=/work/diag/p6/lag2.pt
minutes=${MINUTES:-60}
mkdir -p "$work"
data=(data.train_manifest="$src/manifests/train.jsonl" data.valid_manifest="$src/manifests/valid.jsonl"
      data.speakers="$src/manifests/speakers.json" data.cache_dir="$src/cache")
# 2026-12-03-cpu's settings, another data order (seed 8), a warm restart of the cosine schedule
OMP_NUM_THREADS=2 .venv/bin/speechvq train -c recipes/folder/conf/default.yaml --exp "$work/lag" --device cpu \
  --init "$start" --max-minutes "$minutes" --set "${data[@]}" model.decoder.pitch_lag_taps=5 \
  train.max_steps=100000 train.seed=8 data.segment_s=0.256 data.batch_size=4 data.num_workers=0 \
  data.valid_max_utterances=20 data.loader=device train.precision=fp32 train.compile=true \
  train.freeze_encoder=true train.lr=1e-4 train.warmup_steps=100 \
  train.new_weights_lr_scale=10 "train.new_weights_include=[decoder.lag_embedding.*, pitch_embedding.*]" \
  train.log_every=50 train.valid_every=250 train.checkpoint_every=250 train.valid_audio_s=0 \
  > "$work/train.log" 2>&1
.venv/bin/speechvq export "$work/lag/best.pt" "$work/lag3.pt" --force
OMP_NUM_THREADS=2 .venv/bin/python tools/ship_check.py "$work/lag3.pt" --seeds 0 1 \
  --manifest "$src/manifests/test.jsonl" --out /work/diag/p6/ship > "$work/ship.log" 2>&1
