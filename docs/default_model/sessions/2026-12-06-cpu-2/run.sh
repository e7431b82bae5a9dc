#!/bin/bash
# The pair that shipped 45b870c2, fitted into ONE session: the shipped model 45b870c2 continued with the encoder and
# codebook training too (2026-12-05-cpu-8's recipe: no dead-code restarts, code statistics measured anew with
# --spread), then its decoder alone settled on the new codes (2026-12-06-cpu's step: train.freeze_encoder=true,
# 2026-12-03-cpu-3's default), each a 45-minute cosine cycle (MINUTES) where the sessions before gave each its own
# 75-100 minutes. Why: 45b870c2 came from two whole-model cycles (cpu-8, cpu-9) and a decoder-only cycle (2026-12-06-cpu)
# spread over three sessions whose working folders survived; this session's did not (a new machine: 2-core AMD EPYC
# with AVX-512, where the earlier ones were Intel Xeon), so a candidate that needs the next session to finish it
# may be lost. Only the end of the pair is judged, by the ship rule against the shipped 45b870c2, decoding it anew
# (reference decodes are kept per CPU type; none exist for this one). Seeds 23 and 24 (new data orders; SEED, SEED2). From the
# repository root, nothing else running on the CPU; the split and cache: 2026-12-01-cpu's commands.
set -euo pipefail
work=${WORK:-/work/s17} minutes=${MINUTES:-45}
export MANIFESTS=${MANIFESTS:-/work/diag/manifests} CACHE=${CACHE:-/work/gpu/cache}
mkdir -p "$work"
shipped=$work/shipped-45b870c2.pt
[ -f "$shipped" ] || git show 15ab8a1:speechvq/assets/default.pt > "$shipped"
WORK=$work/whole NAME=whole START=$shipped SHIPPED=$shipped MINUTES=$minutes SEED=${SEED:-23} SHIP_CHECK=0 \
  bash "$(dirname "$0")/../2026-12-05-cpu-8/run.sh"
WORK=$work/settled NAME=settled START=$work/whole/whole.pt SHIPPED=$shipped REFERENCE= MINUTES=$minutes \
  SEED=${SEED2:-24} bash "$(dirname "$0")/../2026-12-03-cpu-3/run.sh"
