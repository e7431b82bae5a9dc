#!/bin/bash
# A DECODER-ONLY settle (encoder and codebook frozen: 2026-12-03-cpu-3's recipe, through cpu-5's) on the codes of
# 75e55d51 (2026-12-06-cpu-6's second half-lr whole-model cycle, kept in /work/s21: this machine's folders survived
# again), a 95-minute budget, train.seed 29, the recipe's peak lr (1e-4), then judged by the ship rule against the
# SHIPPED model 45b870c2, reusing the decodes of it made on this CPU type (Intel Xeon, AVX-512) in 2026-12-06-cpu-3.
# Why: 45b870c2 came from two whole-model cycles FOLLOWED by a decoder-only settle on their codes. The half-lr line
# has now done the same: whole (3accf59e) -> settle (17728b54) -> whole (75e55d51, the best MCD yet, -0.038 +- 0.011
# against 45b870c2, with STOI/PESQ-WB within the noise). Every settle so far gave back the STOI a whole cycle lost;
# this is the settle on 75e55d51's codes (84% of code frames as 17728b54's, 67% as 45b870c2's). freeze_encoder keeps
# its codes and the code statistics measured with --spread in 2026-12-06-cpu-6, which the export carries over.
# From the repository root, nothing else running on the CPU; the split and cache: 2026-12-01-cpu's commands
# (manifest md5 7fca0c67...).
set -euo pipefail
# 2026-12-06-cpu-5's run.sh (the settle on 3accf59e's codes) with this run's start, work folder, name and seed; its
# other defaults (SHIPPED, REFERENCE, MINUTES 95, MANIFESTS, CACHE) are this run's too.
WORK=${WORK:-/work/s22} NAME=${NAME:-settled2} START=${START:-/work/s21/whole2h.pt} SEED=${SEED:-29} \
  bash "$(dirname "$0")/../2026-12-06-cpu-5/run.sh"
