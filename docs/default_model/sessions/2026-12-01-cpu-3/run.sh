#!/bin/bash
# The third CPU continuation of 2026-12-01 (this folder's README), from the repository root:
#   bash docs/default_model/sessions/2026-12-01-cpu-3/run.sh CORPUS [WORK]
# CORPUS: ../shared/tools/make_offline_corpus.sh's output (the original recordings). It makes the same split as
# ../2026-12-01-cpu (manifest folder, 2 valid and 10 test files per speaker) and continues the model shipped by
# ../2026-12-01-cpu-2 (speechvq/assets/default.pt at that commit, 82c41438) with that folder's recipe on both
# cores: a fixed schedule of 4 crops of 0.256 s, lr 1e-4 with 100 warm-up steps and a cosine decay, the decoder
# only, another data order (train.seed=3).
set -euo pipefail
corpus=$1; work=${2:-exp/cpu_continuation}; init=${INIT:-speechvq/assets/default.pt}; steps=${STEPS:-4500}
mkdir -p "$work"
[[ -f $work/manifests/test.jsonl ]] ||
  speechvq manifest folder "$corpus" --out "$work/manifests" --valid-per-speaker 2 --test-per-speaker 10
data=(data.train_manifest="$work/manifests/train.jsonl" data.valid_manifest="$work/manifests/valid.jsonl"
      data.speakers="$work/manifests/speakers.json" data.cache_dir="$work/cache")
speechvq prepare -c recipes/folder/conf/default.yaml --set "${data[@]}" --manifests "$work/manifests"
cp "$init" "$work/shipped.pt"  # the reference, kept apart from the file this run may replace
OMP_NUM_THREADS=2 speechvq train -c recipes/folder/conf/default.yaml --exp "$work/base3" --device cpu \
  --init "$work/shipped.pt" --set "${data[@]}" train.max_steps="$steps" train.seed=3 \
  data.segment_s=0.256 data.batch_size=4 data.num_workers=0 data.valid_max_utterances=20 data.loader=device \
  train.precision=fp32 train.compile=true train.freeze_encoder=true \
  train.lr=1e-4 train.warmup_steps=100 train.log_every=50 train.valid_every=250 train.checkpoint_every=250 \
  train.valid_audio_s=0 > "$work/train_base3.log" 2>&1
speechvq export "$work/base3/best.pt" "$work/base3.pt" --force
# the ship rule on the whole test split under two sampling seeds (ship_check.md)
python tools/ship_check.py "$work/base3.pt" --seeds 0 1 --reference "$work/shipped.pt" \
  --manifest "$work/manifests/test.jsonl" --out "$work/ship_check"
