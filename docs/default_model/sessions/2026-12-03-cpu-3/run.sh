#!/bin/bash
# The shipped model ae2dbb69 (2026-12-03-cpu-2's lag3: the pitch-lag model) continued once more with the same
# settings and another data order (seed 9): its validation NLL had still been falling at the end of that run (2.7342 at
# step 1,250, 2.7304 at 1,500, 2.7300 at 1,658), and the lag tables still grow at 10 x lr. Then judged by the ship
# rule (tools/ship_check.py, 120 test files, seeds 0 and 1) against the shipped model; the shipped model's decodes
# of 2026-12-03-cpu-2 (/work/diag/p6/ship/lag3-ae2dbb69, the same decode key) are copied in as the reference.
# From the repository root, nothing else running on the CPU. The split and cache: 2026-12-01-cpu's commands
# (manifest md5 7fca0c67...), in /work/diag/cpu3.
# Later sessions run this recipe again through the environment (defaults: this session's run): WORK, MANIFESTS,
# CACHE, START (the model continued), MINUTES, SEED, LR (peak learning rate), NAME (of the exported model), SHIPPED
# (the model the ship check judges against; default START, set it when START is a candidate that did not ship),
# REFERENCE (earlier decodes of SHIPPED to reuse; none: ship_check decodes it too). START_REVISION (when START is
# not given): START is the shipped model as of that git revision, written into WORK. SETTINGS: more `--set`
# overrides, space-separated, after (so overriding) the recipe's own (2026-12-05-cpu-8: the encoder side training).
# SHIP_CHECK=0: train and export only (2026-12-06-cpu-2: the first of two cycles in one session).
set -euo pipefail
read -r -a settings <<< "${SETTINGS:-}"
work=${WORK:-/work/diag/p8}; start=${START:-speechvq/assets/default.pt}
manifests=${MANIFESTS:-/work/diag/cpu3/manifests}; cache=${CACHE:-/work/diag/cpu3/cache}
minutes=${MINUTES:-50}; seed=${SEED:-9}; lr=${LR:-1e-4}; name=${NAME:-lag4}; reference=${REFERENCE-/work/diag/p6/ship/lag3-ae2dbb69}
mkdir -p "$work"
if [ -z "${START:-}" ] && [ -n "${START_REVISION:-}" ]; then
  start=$work/shipped-$START_REVISION.pt; git show "$START_REVISION:speechvq/assets/default.pt" > "$start"
fi
data=(data.train_manifest="$manifests/train.jsonl" data.valid_manifest="$manifests/valid.jsonl"
      data.speakers="$manifests/speakers.json" data.cache_dir="$cache")
OMP_NUM_THREADS=2 .venv/bin/speechvq train -c recipes/folder/conf/default.yaml --exp "$work/lag" --device cpu \
  --init "$start" --max-minutes "$minutes" --set "${data[@]}" \
  train.max_steps=100000 train.seed="$seed" data.segment_s=0.256 data.batch_size=4 data.num_workers=0 \
  data.valid_max_utterances=20 data.loader=device train.precision=fp32 train.compile=true \
  train.freeze_encoder=true train.lr="$lr" train.warmup_steps=100 \
  train.new_weights_lr_scale=10 "train.new_weights_include=[decoder.lag_embedding.*, pitch_embedding.*]" \
  train.log_every=50 train.valid_every=250 train.checkpoint_every=250 train.valid_audio_s=0 \
  ${settings[@]+"${settings[@]}"} > "$work/train.log" 2>&1
.venv/bin/speechvq export "$work/lag/best.pt" "$work/$name.pt" --force
if [ "${SHIP_CHECK:-1}" = 0 ]; then exit 0; fi
mkdir -p "$work/ship"
if [ -n "$reference" ] && [ ! -d "$work/ship/reference" ]; then cp -r "$reference" "$work/ship/reference"; fi
OMP_NUM_THREADS=2 .venv/bin/python tools/ship_check.py "$work/$name.pt" --reference "${SHIPPED:-$start}" --seeds 0 1 \
  --manifest "$manifests/test.jsonl" --out "$work/ship" > "$work/ship.log" 2>&1
