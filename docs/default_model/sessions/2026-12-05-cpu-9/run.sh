#!/bin/bash
# 2026-12-05-cpu-8's whole-model run (encoder and codebook training too, no dead-code restarts, otherwise
# 2026-12-03-cpu-3's recipe) STACKED: its candidate 7d542ce1 (STOI +0.0046 +- 0.0044, PESQ-WB +0.003 +- 0.012 against
# 3ff81353: did not ship) continued for another cosine cycle with another data order (train.seed 21), then judged
# by the ship rule against the SHIPPED model 3ff81353, not against the candidate it started from, reusing
# 3ff81353's decodes made on this CPU type (Intel Xeon, AVX-512) in 2026-12-05-cpu-6. Code statistics measured
# anew afterwards (--spread), as cpu-8's were. From the repository root, nothing else running on the CPU.
set -euo pipefail
WORK=${WORK:-/work/s15} NAME=${NAME:-whole2} START=${START:-/work/s14/whole_spread.pt} \
  SHIPPED=${SHIPPED:-/work/s12/shipped-8daf2b9.pt} REFERENCE=${REFERENCE-/work/s14/ship/reference} \
  MINUTES=${MINUTES:-100} SEED=${SEED:-21} \
  bash "$(dirname "$0")/../2026-12-05-cpu-8/run.sh"
