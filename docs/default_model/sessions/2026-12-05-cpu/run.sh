#!/bin/bash
# The shipped model ae2dbb69 continued with 2026-12-03-cpu-3's recipe (decoder only, 4 x 0.256 s crops, lr 1e-4,
# 100 warm-up steps, cosine fitted to the budget, lag tables and pitch vectors at 10 x lr; that session's run.sh,
# called here) for a longer budget (MINUTES, default 95 against that session's 50) and another data order
# (seed 13): that session's run moved PESQ-WB (+0.011 +- 0.006) but not STOI (+0.0016 +- 0.0043) in 19.5 M
# samples; does five times the samples move STOI? Then judged by the ship rule (tools/ship_check.py, the 120 test
# files whole, seeds 0 and 1) against the shipped model, whose decodes are made here too (no earlier ones survived
# on this machine). From the repository root, nothing else running on the CPU. The split (test.jsonl md5
# 7fca0c67..., the shipped model's) and the audio cache: `speechvq manifest folder CORPUS --out $MANIFESTS
# --valid-per-speaker 2 --test-per-speaker 10` and `speechvq prepare` (README's "Training on a corpus").
# The session ran this before the recipe moved into that script (the same command); its run folder was
# /work/s7/run, here $WORK/lag, and its model /work/s7/cont.pt.
# START: the model continued; by default ae2dbb69 from git history (speechvq/assets/default.pt is 589a601e since).
set -euo pipefail
WORK=${WORK:-/work/s7} MANIFESTS=${MANIFESTS:-/work/diag/manifests} CACHE=${CACHE:-/work/gpu/cache} START=${START:-} \
  START_REVISION=b3fc56b MINUTES=${MINUTES:-95} SEED=${SEED:-13} NAME=cont REFERENCE= \
  bash "$(dirname "$0")/../2026-12-03-cpu-3/run.sh"
