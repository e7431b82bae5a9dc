#!/bin/bash
# 2026-12-05-cpu-4's candidate 014bc196 (daa13eb3 continued 100 minutes at peak lr 5e-5; STOI +0.0054 +- 0.0039,
# PESQ-WB +0.006 +- 0.007 against daa13eb3: did not ship on its own) continued another 100 minutes with
# 2026-12-03-cpu-3's recipe (that session's run.sh, called here) at the full peak lr 1e-4 (lag tables and pitch
# vectors at 10 x lr) and another data order (seed 17). Why: each 100-minute CPU run now moves the model by less
# than the ship rule can tell apart from decoding noise, so two runs are stacked before judging; the candidate's
# valid NLL had ended below its start (2.557, flat from step 4,250 of 5,139, against 2.563). Judged by the ship rule
# (tools/ship_check.py, the 120 test files whole, seeds 0 and 1) against the SHIPPED model daa13eb3, not against
# the candidate; 2026-12-05-cpu-4's decodes of daa13eb3 (same decode key) are reused as the reference.
# From the repository root, nothing else running on the CPU; the split and cache as in 2026-12-05-cpu-4.
# START: 2026-12-05-cpu-4's cont.pt (fingerprint 014bc196...); SHIPPED: daa13eb3 (git f51fc9a's default.pt).
set -euo pipefail
WORK=${WORK:-/work/s11} START=${START:-/work/s10/cont.pt} SHIPPED=${SHIPPED:-/work/s10/shipped-f51fc9a.pt} \
  REFERENCE=${REFERENCE-/work/s10/ship/reference} SEED=${SEED:-17} LR=${LR:-1e-4} \
  bash "$(dirname "$0")/../2026-12-05-cpu-4/run.sh"
