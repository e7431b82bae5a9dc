#!/bin/bash
# The shipped model 3310170b (2026-12-05-cpu-2's continuation) continued a third time with 2026-12-03-cpu-3's recipe
# (decoder only, 4 x 0.256 s crops, lr 1e-4, 100 warm-up steps, cosine fitted to the budget, lag tables and pitch
# vectors at 10 x lr; that session's run.sh, called here) for 100 minutes with another data order (seed 15): the
# two 100-minute runs before moved STOI by +0.0082 and +0.0092 while the lag tables still grew (RMS 0.025 -> 0.050
# -> 0.068); does a third keep going? Then judged by the ship rule (tools/ship_check.py, the 120 test files whole,
# seeds 0 and 1) against 3310170b. From the repository root, nothing else running on the CPU. The split (test.jsonl
# md5 7fca0c67..., the shipped model's) and the audio cache: `speechvq manifest folder CORPUS --out $MANIFESTS
# --valid-per-speaker 2 --test-per-speaker 10` and `speechvq prepare` (README's "Training on a corpus").
# START: the model continued; by default 3310170b from git history (69c8bad). REFERENCE: earlier decodes of START
# by ship_check (none survived from 2026-12-05-cpu-2, so this session decoded 3310170b again).
set -euo pipefail
WORK=${WORK:-/work/s9} MANIFESTS=${MANIFESTS:-/work/diag/manifests} CACHE=${CACHE:-/work/gpu/cache} START=${START:-} \
  START_REVISION=69c8bad MINUTES=${MINUTES:-100} SEED=${SEED:-15} NAME=cont REFERENCE=${REFERENCE-} \
  bash "$(dirname "$0")/../2026-12-03-cpu-3/run.sh"
