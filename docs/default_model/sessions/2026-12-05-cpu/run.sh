#!/bin/bash
# The shipped model ae2dbb69 continued with 2026-12-03-cpu-3's recipe (decoder only, 4 x 0.256 s crops, lr 1e-4,
# 100 warm-up steps, cosine fitted to the budget, lag tables and pitch vectors at 10 x lr) for a longer budget
# (MINUTES, default 95 against that session's 50) and another data order (train.seed 13): that session's run
# moved PESQ-WB (+0.011 +- 0.006) but not STOI (+0.0016 +- 0.0043) in 19.5 M samples; does twice the samples move
# STOI? Then judged by the ship rule (tools/ship_check.py, the 120 test files whole, seeds 0 and 1) against the
# shipped model, whose decodes are made here too (no earlier ones survived on this machine).
# From the repository root, nothing else running on the CPU. The split (test.jsonl md5 7fca0c67..., the shipped
# model's) and the audio cache: `speechvq manifest folder CORPUS --out $src/manifests --valid-per-speaker 2
# --test-per-speaker 10` and `speechvq prepare` (README's "Training on a corpus").
set -euo pipefail
work=${WORK:-/work/s7}; manifests=${MANIFESTS:-/work/diag/manifests}; cache=${CACHE:-/work/gpu/cache}
start=speechvq/assets/default.pt
minutes=${MINUTES:-95}
mkdir -p "$work"
data=(data.train_manifest="$manifests/train.jsonl" data.valid_manifest="$manifests/valid.jsonl"
      data.speakers="$manifests/speakers.json" data.cache_dir="$cache")
OMP_NUM_THREADS=2 .venv/bin/speechvq train -c recipes/folder/conf/default.yaml --exp "$work/run" --device cpu \
  --init "$start" --max-minutes "$minutes" --set "${data[@]}" \
  train.max_steps=100000 train.seed=13 data.segment_s=0.256 data.batch_size=4 data.num_workers=0 \
  data.valid_max_utterances=20 data.loader=device train.precision=fp32 train.compile=true \
  train.freeze_encoder=true train.lr=1e-4 train.warmup_steps=100 \
  train.new_weights_lr_scale=10 "train.new_weights_include=[decoder.lag_embedding.*, pitch_embedding.*]" \
  train.log_every=50 train.valid_every=250 train.checkpoint_every=250 train.valid_audio_s=0 \
  > "$work/train.log" 2>&1
.venv/bin/speechvq export "$work/run/best.pt" "$work/cont.pt" --force
OMP_NUM_THREADS=2 .venv/bin/python tools/ship_check.py "$work/cont.pt" --seeds 0 1 \
  --manifest "$manifests/test.jsonl" --out "$work/ship" > "$work/ship.log" 2>&1
