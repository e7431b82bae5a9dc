#!/bin/bash
# The shipped model 589a601e (2026-12-05-cpu's continuation) continued once more with 2026-12-03-cpu-3's recipe
# (decoder only, 4 x 0.256 s crops, lr 1e-4, 100 warm-up steps, cosine fitted to the budget, lag tables and pitch
# vectors at 10 x lr; that session's run.sh, called here) for 100 minutes with another data order (seed 14):
# 2026-12-05-cpu's 105 M samples moved STOI (+0.0082 +- 0.0051) and PESQ-WB (+0.025 +- 0.007) while the lag tables
# were still growing (RMS 0.025 -> 0.050); does a second such run keep going, or has it levelled off as the
# continuations before the lag input did? Then judged by the ship rule (tools/ship_check.py, the 120 test files
# whole, seeds 0 and 1) against 589a601e. From the repository root, nothing else running on the CPU. The split
# (test.jsonl md5 7fca0c67..., the shipped model's) and the audio cache: `speechvq manifest folder CORPUS --out
# $MANIFESTS --valid-per-speaker 2 --test-per-speaker 10` and `speechvq prepare` (README's "Training on a corpus").
# START: the model continued; by default 589a601e from git history (f73fb4b). REFERENCE: earlier decodes of START
# by ship_check (the session used 2026-12-05-cpu's, /work/s7/ship/cont-589a601e); empty: decoded here.
set -euo pipefail
WORK=${WORK:-/work/s8} MANIFESTS=${MANIFESTS:-/work/diag/manifests} CACHE=${CACHE:-/work/gpu/cache} START=${START:-} \
  START_REVISION=f73fb4b MINUTES=${MINUTES:-100} SEED=${SEED:-14} NAME=cont REFERENCE=${REFERENCE-} \
  bash "$(dirname "$0")/../2026-12-03-cpu-3/run.sh"
