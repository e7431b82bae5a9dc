#!/usr/bin/env bash
# speechvq on any speaker-folder corpus: CORPUS/<speaker>/**/*.{wav,flac,ogg}, any rate, any channels.
#
#   ./run.sh --corpus_dir /data/my_corpus                          # everything, paper setting
#   ./run.sh --corpus_dir /data/my_corpus --conf conf/tiny.yaml    # a CPU smoke run
#   ./run.sh --corpus_dir ... --stage 3 --stop_stage 3              # only (re)run training, which resumes
#   ./run.sh --corpus_dir ... --holdout_speakers "alice bob"        # keep two voices out of training
#
# Stages; each skips itself when its done-marker exists (delete the marker to redo it). All outputs are
# under data/ and exp/, so `rm -rf data exp && ./run.sh ...` reproduces a run from scratch.
#   1  manifests and splits       -> data/manifests/{all,train,valid,test,unseen}.jsonl, speakers.json
#   2-5  audio check, training, reconstruction report, voice conversion: see ../../tools/recipe_stages.sh
set -euo pipefail
cd "$(dirname "$0")"
. ../../tools/recipe_defaults.sh
corpus_dir=
conf=conf/paper.yaml
. ../../tools/parse_options.sh
[ -n "$corpus_dir" ] || { echo "$0: --corpus_dir is required" >&2; exit 2; }

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ] && [ ! -e data/manifests/.done ]; then
  log "Stage 1: manifests and splits of $corpus_dir -> data/manifests"
  speechvq manifest folder "$corpus_dir" --out data/manifests --valid-per-speaker "$valid_per_speaker" \
    --test-per-speaker "$test_per_speaker" ${holdout_speakers:+--holdout-speakers $holdout_speakers}
  touch data/manifests/.done
fi
. ../../tools/recipe_stages.sh
