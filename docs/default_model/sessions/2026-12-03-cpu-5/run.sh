#!/bin/bash
# Screening (not a candidate): does the decoder use more of the codes around a frame? Two runs of 600 fixed steps
# from the shipped model ae2dbb69 with 2026-12-03-cpu-3's recipe (decoder only, 4 x 0.256 s, lr 1e-4, 100 warm-up
# steps, lag tables and pitch vectors at 10 x lr, train.seed 9: the same crops in the same order and the same 20
# validation crops), but a cosine over the step count instead of a wall-clock budget, so that both runs share
# their schedule exactly: `base` as shipped, `ctx4` with model.decoder.cond_context_layers=4 (new blocks, at 10 x
# lr as new weights). Then whole validation utterances scored teacher-forced (score_nll.py). From the repository
# root, one run at a time, nothing else on the CPU. The split and cache: 2026-12-01-cpu's commands, in /work/diag/cpu3.
set -euo pipefail
work=/work/diag/cc; src=/work/diag/cpu3
mkdir -p "$work"
data=(data.train_manifest="$src/manifests/train.jsonl" data.valid_manifest="$src/manifests/valid.jsonl"
      data.speakers="$src/manifests/speakers.json" data.cache_dir="$src/cache")
run() {  # NAME [OVERRIDE ...]
  local name=$1; shift
  OMP_NUM_THREADS=2 .venv/bin/speechvq train -c recipes/folder/conf/default.yaml --exp "$work/$name" --device cpu \
    --init speechvq/assets/default.pt --set "${data[@]}" \
    train.max_steps=600 train.seed=9 data.segment_s=0.256 data.batch_size=4 data.num_workers=0 \
    data.valid_max_utterances=20 data.loader=device train.precision=fp32 train.compile=true \
    train.freeze_encoder=true train.lr=1e-4 train.warmup_steps=100 \
    train.new_weights_lr_scale=10 "train.new_weights_include=[decoder.lag_embedding.*, pitch_embedding.*]" \
    train.log_every=50 train.valid_every=150 train.checkpoint_every=150 train.valid_audio_s=0 "$@" \
    > "$work/$name.log" 2>&1
}
run base
run ctx4 model.decoder.cond_context_layers=4
OMP_NUM_THREADS=2 .venv/bin/python docs/default_model/sessions/2026-12-03-cpu-5/score_nll.py \
  "$src/manifests/valid.jsonl" "$work/score_valid.json" speechvq/assets/default.pt "$work/base/last.pt" "$work/ctx4/last.pt"
