#!/bin/bash
# 2026-12-05-cpu-6's candidate 8664583f (the shipped 3ff81353 continued 90 minutes at peak lr 1e-4, seed 18; STOI
# +0.0033 +- 0.0043, PESQ-WB -0.005 +- 0.010, MCD -0.013 +- 0.009 against 3ff81353: did not ship on its own)
# continued another 120 minutes with the same recipe (that session's run.sh, called here, which calls
# 2026-12-03-cpu-3's): decoder only, encoder and codebook frozen, peak lr 1e-4 (lag tables and pitch vectors at
# 10 x lr), another data order (seed 19).
# Why: this session's working folders survived (unlike the last two), so the candidate can be stacked as
# 2026-12-05-cpu-5 stacked cpu-4's (that is how 3ff81353 shipped); one CPU run moves the model by less than the
# ship rule can tell from decoding noise. Judged by the ship rule (tools/ship_check.py, the 120 test files whole,
# seeds 0 and 1) against the SHIPPED model 3ff81353, not the candidate; cpu-6's decodes of 3ff81353 (same Intel
# Xeon AVX-512 CPU type, so the same decode key) are reused as the reference.
# From the repository root, nothing else running on the CPU; the split and cache as in 2026-12-05-cpu-6 (manifest
# md5 7fca0c67...). START: cpu-6's cont.pt (fingerprint 8664583f...); SHIPPED: 3ff81353 (git 8daf2b9's default.pt).
set -euo pipefail
WORK=${WORK:-/work/s13} START=${START:-/work/s12/cont.pt} SHIPPED=${SHIPPED:-/work/s12/shipped-8daf2b9.pt} \
  REFERENCE=${REFERENCE-/work/s12/ship/reference} MINUTES=${MINUTES:-120} SEED=${SEED:-19} \
  bash "$(dirname "$0")/../2026-12-05-cpu-6/run.sh"
