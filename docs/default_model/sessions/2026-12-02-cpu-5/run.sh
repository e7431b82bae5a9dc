#!/bin/bash
# The pitch-lag input as a model option (model.decoder.pitch_lag_taps=5), decoded for the first time: continue the
# shipped model with the lag taps added (they start at zero), decoder only, for a short CPU budget, then decode
# the same spread of test utterances with the shipped model and with this one (speechvq eval: decoded audio).
# From the repository root, nothing else running on the CPU. The split and cache: 2026-12-01-cpu's commands
# (manifest md5 7fca0c67...), in /work/diag/cpu3.
set -euo pipefail
here=docs/default_model/sessions/2026-12-02-cpu-5; work=/work/diag/p5; src=/work/diag/cpu3
minutes=${MINUTES:-32}; files=${FILES:-12}; seconds=${SECONDS_PER_FILE:-2}
mkdir -p "$work"
data=(data.train_manifest="$src/manifests/train.jsonl" data.valid_manifest="$src/manifests/valid.jsonl"
      data.speakers="$src/manifests/speakers.json" data.cache_dir="$src/cache")
# cpu-3's and cpu-4's settings (seed 6: the same crops in the same order, the same 20 validation crops)
OMP_NUM_THREADS=2 .venv/bin/speechvq train -c recipes/folder/conf/default.yaml --exp "$work/lag" --device cpu \
  --init speechvq/assets/default.pt --max-minutes "$minutes" --set "${data[@]}" model.decoder.pitch_lag_taps=5 \
  train.max_steps=100000 train.seed=6 data.segment_s=0.256 data.batch_size=4 data.num_workers=0 \
  data.valid_max_utterances=20 data.loader=device train.precision=fp32 train.compile=true \
  train.freeze_encoder=true train.new_weights_lr_scale=10 train.lr=1e-4 train.warmup_steps=100 \
  train.log_every=50 train.valid_every=250 train.checkpoint_every=250 train.valid_audio_s=0 \
  > "$work/train.log" 2>&1
.venv/bin/speechvq export "$work/lag/best.pt" "$work/lag.pt" --force
# with the default pitch post-filter (what users get) and without it (what the decoder itself makes)
for name in shipped lag; do
  model=$work/lag.pt; [ "$name" = shipped ] && model=speechvq/assets/default.pt
  for post in default 0; do
    extra=(); [ "$post" = 0 ] && extra=(--postfilter 0)
    OMP_NUM_THREADS=2 .venv/bin/speechvq eval --model "$model" --manifest "$src/manifests/test.jsonl" \
      --out "$work/eval_${name}_post$post" --max-files "$files" --spread --max-seconds "$seconds" --device cpu \
      --plots 2 "${extra[@]}" > "$work/eval_${name}_post$post.log" 2>&1
  done
done
