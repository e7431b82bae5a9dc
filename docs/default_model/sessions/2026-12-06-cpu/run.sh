#!/bin/bash
# DECODER ONLY from 2026-12-05-cpu-9's whole-model candidate 74e5f38f (/work/s15/whole2.pt: two stacked
# whole-model cycles on top of 3ff81353; MCD -0.050 +- 0.013 dB, STOI +0.0055 +- 0.0060, PESQ-WB +0.010 +- 0.012,
# DNSMOS -0.045 +- 0.048 against 3ff81353: did not ship). Its encoder and codebook are frozen here
# (2026-12-03-cpu-3's recipe as it stands: train.freeze_encoder=true, so the codes and their --spread statistics
# stay those of 74e5f38f), and the decoder gets one cosine cycle to fit codes that no longer move.
# Why: in the two whole-model cycles the decoder chased codes that kept changing (two thirds of the code frames now
# differ from 3ff81353's; the restart bump grew to +0.055 nats). If the codes are better, a decoder that settles on
# them should gain more than the decoder-only runs from 3ff81353 did (2026-12-05-cpu-6, -7: flat); if they only
# moved, it will not. Judged by the ship rule against the SHIPPED model 3ff81353, reusing its decodes made on this
# CPU type (Intel Xeon, AVX-512) in 2026-12-05-cpu-6. Another data order (train.seed 22). From the repository root,
# nothing else running on the CPU.
set -euo pipefail
WORK=${WORK:-/work/s16} MANIFESTS=${MANIFESTS:-/work/diag/manifests} CACHE=${CACHE:-/work/gpu/cache} \
  NAME=${NAME:-settled} START=${START:-/work/s15/whole2.pt} \
  SHIPPED=${SHIPPED:-/work/s12/shipped-8daf2b9.pt} REFERENCE=${REFERENCE-/work/s14/ship/reference} \
  MINUTES=${MINUTES:-95} SEED=${SEED:-22} \
  bash "$(dirname "$0")/../2026-12-03-cpu-3/run.sh"
