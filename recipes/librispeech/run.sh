#!/usr/bin/env bash
# speechvq on LibriSpeech (read audiobooks, 16 kHz FLAC) with the paper's 128x-downsampling setting.
#
#   ./run.sh                                              # train-clean-100 + dev-clean: download, then all
#   ./run.sh --subsets "train-clean-100 train-clean-360"  # more data
#   ./run.sh --corpus_dir /data/LibriSpeech --stage 1     # a copy you already have: skip stage 0
#
# Stages; each skips itself when its done-marker exists (delete the marker to redo it). All outputs are
# under download/, data/ and exp/.
#   0  download and extract       -> download/<subset>.tar.gz (verified), download/LibriSpeech/<subset>/
#   1  manifests and splits       -> data/manifests/{all,train,valid,test,unseen}.jsonl, speakers.json
#      (validation and test utterances come from the training speakers: the model needs their embedding)
#   2-5  audio check, training, reconstruction report, voice conversion: see ../../tools/recipe_stages.sh
set -euo pipefail
cd "$(dirname "$0")"
. ../../tools/recipe_defaults.sh
stage=0
corpus_dir=download/LibriSpeech
subsets="train-clean-100"
mirror=                # base URL of a mirror (default: the official www.openslr.org/resources/12)
conf=conf/librispeech.yaml
. ../../tools/parse_options.sh

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "Stage 0: download and extract LibriSpeech $subsets -> download/"
  speechvq download librispeech --subset $subsets --dir download ${mirror:+--mirror "$mirror"}
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ] && [ ! -e data/manifests/.done ]; then
  log "Stage 1: manifests and splits of $corpus_dir ($subsets) -> data/manifests"
  speechvq manifest librispeech "$corpus_dir" --subset $subsets --out data/manifests \
    --valid-per-speaker "$valid_per_speaker" --test-per-speaker "$test_per_speaker" \
    ${holdout_speakers:+--holdout-speakers $holdout_speakers}
  touch data/manifests/.done
fi
. ../../tools/recipe_stages.sh
