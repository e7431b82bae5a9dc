#!/usr/bin/env bash
# speechvq on VCTK 0.92 (109 speakers, 48 kHz FLAC, mic2 by default), the paper's voice-conversion corpus.
#
#   ./run.sh                                           # download (11 GB), then everything, paper setting
#   ./run.sh --corpus_dir /data/VCTK-Corpus-0.92 --stage 1      # a copy you already have: skip stage 0
#   ./run.sh --holdout_speakers "p225 p226 p227 p228"  # speakers kept out of training, for conversion tests
#   torchrun users: run stages 0-2 here, then stage 3 as `torchrun ... -m speechvq train` (see README)
#
# Stages; each skips itself when its done-marker exists (delete the marker to redo it). All outputs are
# under download/, data/ and exp/.
#   0  download and extract       -> download/VCTK-Corpus-0.92.zip (verified), download/VCTK-Corpus-0.92/
#   1  manifests and splits       -> data/manifests/{all,train,valid,test,unseen}.jsonl, speakers.json
#   2-5  audio check, training, reconstruction report, voice conversion: see ../../tools/recipe_stages.sh
set -euo pipefail
cd "$(dirname "$0")"
. ../../tools/recipe_defaults.sh
stage=0
corpus_dir=download/VCTK-Corpus-0.92
mic=mic2
mirror=                # base URL of a mirror of the archive (default: the official datashare.ed.ac.uk)
conf=conf/paper.yaml
. ../../tools/parse_options.sh

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "Stage 0: download and extract VCTK 0.92 -> download/"
  speechvq download vctk --dir download ${mirror:+--mirror "$mirror"}
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ] && [ ! -e data/manifests/.done ]; then
  log "Stage 1: manifests and splits of $corpus_dir ($mic) -> data/manifests"
  speechvq manifest vctk "$corpus_dir" --mic "$mic" --out data/manifests --valid-per-speaker "$valid_per_speaker" \
    --test-per-speaker "$test_per_speaker" ${holdout_speakers:+--holdout-speakers $holdout_speakers}
  touch data/manifests/.done
fi
. ../../tools/recipe_stages.sh
