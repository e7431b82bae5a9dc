#!/bin/bash
# A WHOLE-MODEL cycle (encoder and codebook training too, no dead-code restarts: 2026-12-05-cpu-8's settings, its
# run.sh called here) at HALF the peak learning rate (LR 5e-5 instead of 1e-4), continuing e328c003 (2026-12-06-cpu-3's
# second decoder-only cycle on 45b870c2's codes, kept in /work/s18: this machine's folders survived), a 95-minute
# budget, train.seed 26, then judged by the ship rule against the SHIPPED model 45b870c2, reusing the decodes of it
# made on this CPU type (Intel Xeon, AVX-512) in 2026-12-06-cpu-3. Code statistics measured anew afterwards
# (--spread), as cpu-8's were.
# Why: single CPU cycles from 45b870c2 have not shipped in either form (decoder-only, 2026-12-06-cpu-3; the
# half-length whole + decoder pair at 1e-4, 2026-12-06-cpu-2). What made 45b870c2 was the encoder side moving; at the
# full peak lr a whole-model cycle first costs the settled decoder (its valid NLL bumps as the codes move). Half the
# lr moves the codes less, so the decoder's two settled cycles should lose less. Untested until now.
# From the repository root, nothing else running on the CPU; the split and cache: 2026-12-01-cpu's commands
# (manifest md5 7fca0c67...).
set -euo pipefail
WORK=${WORK:-/work/s19} NAME=${NAME:-halflr} START=${START:-/work/s18/second.pt} \
  SHIPPED=${SHIPPED:-/work/s18/shipped-45b870c2.pt} REFERENCE=${REFERENCE-/work/s18/ship/reference} \
  MINUTES=${MINUTES:-95} SEED=${SEED:-26} LR=${LR:-5e-5} \
  bash "$(dirname "$0")/../2026-12-05-cpu-8/run.sh"
