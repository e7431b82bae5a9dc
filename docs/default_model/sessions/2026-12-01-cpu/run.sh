#!/bin/bash
# The two CPU continuations of 2026-12-01 (not shipped; this folder's README), from the repository
# root:   bash docs/default_model/sessions/2026-12-01-cpu/run.sh CORPUS [WORK]
# CORPUS: ../shared/tools/make_offline_corpus.sh's output (the original recordings, not the Opus copy).
# INIT: the model it continued, the default before it: git show 0728036:speechvq/assets/default.pt > previous.pt
# Two runs side by side, one thread each (2 cores), the same seed, data order and fixed schedule: base (the
# decoder only, lr 1e-4) and pitch10 (the same plus a pitch stream whose vectors learn at 10 x lr).
set -euo pipefail
corpus=$1; work=${2:-exp/cpu_continuation}; init=${INIT:-previous.pt}
mkdir -p "$work"
speechvq manifest folder "$corpus" --out "$work/manifests" --valid-per-speaker 2 --test-per-speaker 10
data=(data.train_manifest="$work/manifests/train.jsonl" data.valid_manifest="$work/manifests/valid.jsonl"
      data.speakers="$work/manifests/speakers.json" data.cache_dir="$work/cache")
speechvq prepare -c recipes/folder/conf/default.yaml --set "${data[@]}" --manifests "$work/manifests"
run() {  # NAME [KEY=VALUE ...]
  local name=$1; shift
  OMP_NUM_THREADS=1 speechvq train -c recipes/folder/conf/default.yaml --exp "$work/$name" --device cpu \
    --init "$init" --set "${data[@]}" train.max_steps=2300 \
    data.segment_s=0.256 data.batch_size=4 data.num_workers=0 data.valid_max_utterances=20 data.loader=device \
    train.precision=fp32 train.compile=true train.freeze_encoder=true \
    train.lr=1e-4 train.warmup_steps=100 train.log_every=50 train.valid_every=250 train.checkpoint_every=250 \
    train.valid_audio_s=0 "$@" > "$work/train_$name.log" 2>&1
  speechvq export "$work/$name/best.pt" "$work/$name.pt" --force
}
run base & run pitch10 model.pitch.bits=6 train.new_weights_lr_scale=10 & wait
# the ship rule on the whole test split (ship_check.md); the pitch vectors' part (ship_check_pitch_zeroed.md)
python tools/ship_check.py "$work/base.pt" "$work/pitch10.pt" --reference "$init" \
  --manifest "$work/manifests/test.jsonl" --out "$work/ship_check"
