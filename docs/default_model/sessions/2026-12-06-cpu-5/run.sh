#!/bin/bash
# A DECODER-ONLY cycle (encoder and codebook frozen: 2026-12-03-cpu-3's recipe, called here) on the codes of 3accf59e
# (2026-12-06-cpu-4's half-lr whole-model cycle, kept in /work/s19: this machine's folders survived again), a
# 95-minute budget, train.seed 27, the recipe's peak lr (1e-4), then judged by the ship rule against the SHIPPED model
# 45b870c2, reusing the decodes of it made on this CPU type (Intel Xeon, AVX-512) in 2026-12-06-cpu-3.
# Why: 45b870c2 itself came from whole-model cycles FOLLOWED by a decoder-only cycle on their codes (that settle gave
# +0.0057 STOI and -0.036 MCD over its whole-model start). 3accf59e moved the codes less than the full-lr cycles (77%
# of code frames kept) and already had MCD measurably better than 45b870c2 (-0.021 +- 0.010) with STOI/PESQ-WB within
# the noise; the settle is what is left to try on it. freeze_encoder keeps its codes and so its code statistics
# (measured anew with --spread in 2026-12-06-cpu-4), which the export carries over.
# From the repository root, nothing else running on the CPU; the split and cache: 2026-12-01-cpu's commands
# (manifest md5 7fca0c67...).
set -euo pipefail
WORK=${WORK:-/work/s20} NAME=${NAME:-settled} START=${START:-/work/s19/halflr.pt} \
  SHIPPED=${SHIPPED:-/work/s18/shipped-45b870c2.pt} REFERENCE=${REFERENCE-/work/s18/ship/reference} \
  MINUTES=${MINUTES:-95} SEED=${SEED:-27} \
  MANIFESTS=${MANIFESTS:-/work/diag/manifests} CACHE=${CACHE:-/work/gpu/cache} \
  bash "$(dirname "$0")/../2026-12-03-cpu-3/run.sh"
