#!/bin/bash
# The 2026-12-02 CPU continuation that taught the pitch vectors (this folder's README), from the repository root:
#   bash docs/default_model/sessions/2026-12-02-cpu-2/run.sh CORPUS [WORK]
# CORPUS: ../shared/tools/make_offline_corpus.sh's output (the original recordings). It makes the shipped split
# (manifest folder, 2 valid and 10 test files per speaker) and continues the shipped model (the pitch twin
# 9b21b754, whose pitch vectors are all zero) on both cores for a 65-minute budget: 4 crops of 0.256 s, lr 1e-4
# with 100 warm-up steps and a cosine decay fitted to the budget, the decoder side only, and the untrained pitch
# vectors at 10 x lr (`--init` reports them as untrained; `train.new_weights_lr_scale`).
# Nothing else may run on the machine meanwhile: a single-threaded scorer beside it made its steps 5 x slower.
set -euo pipefail
corpus=$1; work=${2:-exp/cpu_pitch}; init=${INIT:-speechvq/assets/default.pt}; minutes=${MINUTES:-65}
mkdir -p "$work"
[[ -f $work/manifests/test.jsonl ]] ||
  speechvq manifest folder "$corpus" --out "$work/manifests" --valid-per-speaker 2 --test-per-speaker 10
data=(data.train_manifest="$work/manifests/train.jsonl" data.valid_manifest="$work/manifests/valid.jsonl"
      data.speakers="$work/manifests/speakers.json" data.cache_dir="$work/cache")
speechvq prepare -c recipes/folder/conf/default.yaml --set "${data[@]}" --manifests "$work/manifests"
cp "$init" "$work/shipped.pt"  # the reference, kept apart from the file this run may replace
OMP_NUM_THREADS=2 speechvq train -c recipes/folder/conf/default.yaml --exp "$work/pitch" --device cpu \
  --init "$work/shipped.pt" --max-minutes "$minutes" --set "${data[@]}" train.max_steps=100000 train.seed=4 \
  data.segment_s=0.256 data.batch_size=4 data.num_workers=0 data.valid_max_utterances=20 data.loader=device \
  train.precision=fp32 train.compile=true train.freeze_encoder=true train.new_weights_lr_scale=10 \
  train.lr=1e-4 train.warmup_steps=100 train.log_every=50 train.valid_every=250 train.checkpoint_every=250 \
  train.valid_audio_s=0 > "$work/train_pitch.log" 2>&1
speechvq export "$work/pitch/best.pt" "$work/pitch.pt" --force
# new code statistics for the candidate's files (the shipped ones were measured on the same codes, but the
# export drops them with the history's new entry), then the ship rule on the whole test split under two seeds
speechvq code-stats --model "$work/pitch.pt" --manifest "$work/manifests/train.jsonl" --max-files 3000 --spread
python tools/ship_check.py "$work/pitch.pt" --seeds 0 1 --reference "$work/shipped.pt" \
  --manifest "$work/manifests/test.jsonl" --out "$work/ship_check"
