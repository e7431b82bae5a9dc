#!/bin/bash
# Pre-emphasis (`model.pre_emphasis=0.85`, LPCNet's) against none, from scratch at equal budgets on the 2-core CPU
# (this folder's README), from the repository root:
#   bash docs/default_model/sessions/2026-12-04-cpu-4/run.sh MANIFESTS CACHE [WORK]
# MANIFESTS: the shipped split (`speechvq manifest folder CORPUS --out MANIFESTS --valid-per-speaker 2
# --test-per-speaker 10`); CACHE: its audio cache (`speechvq prepare`). Two runs side by side, one core each, the
# same seed and data order, each for a 60-minute budget: conf/cpu_speaker.yaml (the narrow 10-layer WaveNet)
# with the shipped model's pitch stream (6 bits) and pitch-lag input (5 taps), crops of 0.384 s (whole code
# frames, so the step compiles) fed from memory. Then both are exported and decoded on the test split.
# RUNS="NAME[:OVERRIDE[,OVERRIDE...]] ..." trains other variants the same way (2026-12-04-cpu-5 does), the
# first the reference of the decoding; CHECK=0 skips the decoding.
set -euo pipefail
manifests=$1; cache=$2; work=${3:-exp/preemph}; minutes=${MINUTES:-60}
runs=${RUNS:-"plain preemph:model.pre_emphasis=0.85"}
mkdir -p "$work"
data=(data.train_manifest="$manifests/train.jsonl" data.valid_manifest="$manifests/valid.jsonl"
      data.speakers="$manifests/speakers.json" data.cache_dir="$cache")
common=(model.pitch.bits=6 model.decoder.pitch_lag_taps=5 data.segment_s=0.384 data.num_workers=0
        data.loader=device train.compile=true train.precision=fp32 train.max_steps=100000 train.seed=0
        train.valid_every=500 train.checkpoint_every=250)
run() {  # NAME EXTRA-OVERRIDE...
  local name=$1; shift
  OMP_NUM_THREADS=1 speechvq train -c recipes/folder/conf/cpu_speaker.yaml --exp "$work/$name" --device cpu \
    --max-minutes "$minutes" --set "${data[@]}" "${common[@]}" "$@" > "$work/train_$name.log" 2>&1
}
names=()
for spec in $runs; do
  name=${spec%%:*}; names+=("$name")
  extra=(); [[ $spec == *:* ]] && IFS=, read -ra extra <<< "${spec#*:}"
  run "$name" ${extra[@]+"${extra[@]}"} &
done
wait
for name in "${names[@]}"; do
  speechvq export "$work/$name/last.pt" "$work/$name.pt" --force
done
[[ ${CHECK:-1} == 0 ]] && exit 0
# Decoded scores, paired per file: each later run against the first (preemph against plain; the ship rule's
# test, here a screen)
candidates=(); for name in "${names[@]:1}"; do candidates+=("$work/$name.pt"); done
python tools/ship_check.py "${candidates[@]}" --reference "$work/${names[0]}.pt" --seeds 0 1 \
  --manifest "$manifests/test.jsonl" --max-files 48 --spread --max-seconds 3 --out "$work/ship_check"
