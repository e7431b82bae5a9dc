#!/bin/bash
# A SECOND half-lr WHOLE-MODEL cycle (encoder and codebook training too, no dead-code restarts, peak lr 5e-5:
# 2026-12-06-cpu-4's run.sh, called here) continuing 17728b54 (2026-12-06-cpu-5's decoder-only settle on 3accf59e's
# codes, kept in /work/s20: this machine's folders survived again), a 95-minute budget, train.seed 28, then judged by
# the ship rule against the SHIPPED model 45b870c2, reusing the decodes of it made on this CPU type (Intel Xeon,
# AVX-512) in 2026-12-06-cpu-3. Code statistics measured anew afterwards (--spread).
# Why: 45b870c2 came from TWO whole-model cycles followed by a decoder-only settle on their codes. The one half-lr
# whole cycle + settle so far (3accf59e -> 17728b54) gave the best candidate against 45b870c2 yet (STOI +0.0048 +-
# 0.0046, MCD -0.032 +- 0.011) but PESQ-WB flat; it moved the codes less (77% of code frames kept) than the full-lr
# cycles did. A second half-lr whole cycle moves them further while keeping the bump small; the decoder-only settle
# on its codes is for the next session (the two do not fit one 180-minute CPU session at full length).
# From the repository root, nothing else running on the CPU (not even the test suite); the split and cache:
# 2026-12-01-cpu's commands (manifest md5 7fca0c67...).
set -euo pipefail
WORK=${WORK:-/work/s21} NAME=${NAME:-whole2h} START=${START:-/work/s20/settled.pt} \
  SHIPPED=${SHIPPED:-/work/s18/shipped-45b870c2.pt} REFERENCE=${REFERENCE-/work/s18/ship/reference} \
  MINUTES=${MINUTES:-95} SEED=${SEED:-28} \
  bash "$(dirname "$0")/../2026-12-06-cpu-4/run.sh"
