#!/bin/bash
# The session's second run, in the time left after run.sh's ship check: this session's candidate 17728b54
# (/work/s20/settled.pt) continued as a WHOLE MODEL at half the peak lr (2026-12-06-cpu-4's run.sh: encoder and
# codebook training, no dead-code restarts, LR 5e-5, code statistics measured anew with --spread), a 50-minute budget,
# train.seed 28, trained and exported only (SHIP_CHECK=0): no time is left this session to judge or settle it.
# Why: 45b870c2 came from TWO whole-model cycles and then a decoder-only settle; 17728b54 had one half-lr whole-model
# cycle and a settle. This is the second whole-model cycle, shorter than the first (50 min against 95), for a next
# session whose folders survive to settle (2026-12-03-cpu-3's run.sh with START=/work/s21/whole2h.pt) and judge.
# CI ran beside it for its first minutes, so its step times are not comparable with other sessions'.
set -euo pipefail
WORK=${WORK:-/work/s21} NAME=${NAME:-whole2h} START=${START:-/work/s20/settled.pt} \
  SHIPPED=${SHIPPED:-/work/s18/shipped-45b870c2.pt} MINUTES=${MINUTES:-50} SEED=${SEED:-28} SHIP_CHECK=0 \
  bash "$(dirname "$0")/../2026-12-06-cpu-4/run.sh"
