#!/bin/bash
# The second CPU continuation of 2026-12-01 (this folder's README), from the repository root:
#   bash docs/default_model/sessions/2026-12-01-cpu-2/run.sh [WORK]
# It continues `base` of ../2026-12-01-cpu (run that first with the same WORK: it leaves WORK/base.pt and the
# split of the original recordings, manifests and cache) with both cores, another data order (train.seed=2)
# and a fixed schedule of 4,800 steps of 4 crops of 0.256 s, lr 1e-4 with 100 warm-up steps and a cosine
# decay, the decoder only.
set -euo pipefail
work=${1:-exp/cpu_continuation}; init=${INIT:-$work/base.pt}
data=(data.train_manifest="$work/manifests/train.jsonl" data.valid_manifest="$work/manifests/valid.jsonl"
      data.speakers="$work/manifests/speakers.json" data.cache_dir="$work/cache")
OMP_NUM_THREADS=2 speechvq train -c recipes/folder/conf/default.yaml --exp "$work/base2" --device cpu \
  --init "$init" --set "${data[@]}" train.max_steps=4800 train.seed=2 \
  data.segment_s=0.256 data.batch_size=4 data.num_workers=0 data.valid_max_utterances=20 data.loader=device \
  train.precision=fp32 train.compile=true train.freeze_encoder=true \
  train.lr=1e-4 train.warmup_steps=100 train.log_every=50 train.valid_every=250 train.checkpoint_every=250 \
  train.valid_audio_s=0 > "$work/train_base2.log" 2>&1
speechvq export "$work/base2/best.pt" "$work/base2.pt" --force
# the ship rule on the whole test split under two sampling seeds (ship_check.md); base's decodes are reused when
# ../2026-12-01-cpu's check left them in the same --out
# REFERENCE: the model it was judged against, the H100 one (git show 0728036:speechvq/assets/default.pt >
# previous.pt; today's shipped model is base2 itself)
python tools/ship_check.py "$init" "$work/base2.pt" --seeds 0 1 --reference "${REFERENCE:-previous.pt}" \
  --manifest "$work/manifests/test.jsonl" --out "$work/ship_check"
