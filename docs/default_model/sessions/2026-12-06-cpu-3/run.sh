#!/bin/bash
# The shipped model 45b870c2 continued DECODER ONLY for a second cosine cycle on its own codes (2026-12-03-cpu-3's
# recipe as it stands: train.freeze_encoder=true, so the encoder, codebook and their --spread code statistics stay
# 45b870c2's), an 85-minute budget (MINUTES), a new data order (train.seed 25, SEED).
# Why: 45b870c2's decoder has had one 95-minute cycle on these codes (2026-12-06-cpu, valid NLL -0.012, still
# falling at its end). The decoder-only series on the codes before (ae2dbb69 -> 589a601e -> 3310170b -> daa13eb3 ->
# 3ff81353, 2026-12-05) shipped four times in a row before it flattened (cpu-6, -7); a second cycle is the one
# single-session step with that record. The whole-model + decoder pair at half length (2026-12-06-cpu-2) did not ship,
# and this machine kept none of its folders (a new one: 2-core Intel Xeon with AVX-512), so nothing here depends on
# an earlier session's files. Judged by the ship rule against 45b870c2, decoding it anew (reference decodes are kept
# per CPU type; none survived). From the repository root, nothing else running on the CPU; the split and cache:
# 2026-12-01-cpu's commands (manifest md5 7fca0c67...).
set -euo pipefail
# START_REVISION: the wrapped recipe writes the shipped model of that revision into WORK and judges against it
# (the run itself, 10327da, wrote it here by hand as WORK/shipped-45b870c2.pt; the same bytes).
WORK=${WORK:-/work/s18} NAME=second START_REVISION=15ab8a1 REFERENCE= MINUTES=${MINUTES:-85} SEED=${SEED:-25} \
  MANIFESTS=${MANIFESTS:-/work/diag/manifests} CACHE=${CACHE:-/work/gpu/cache} \
  bash "$(dirname "$0")/../2026-12-03-cpu-3/run.sh"
