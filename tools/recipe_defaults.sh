#!/usr/bin/env bash
# Options every recipe has (each can be given as --name value), and its log function.
stage=1                # first stage to run
stop_stage=5           # last stage to run
holdout_speakers=      # speakers kept out of training entirely, e.g. "p225 p226" (their utterances -> unseen)
valid_per_speaker=2
test_per_speaker=4
overrides=             # extra --set values for every stage, e.g. "train.max_steps=2000 data.batch_size=4"
device=auto
prepare_workers=2      # processes decoding audio in stage 2
stats_files=500        # stage 4 measures code statistics (entropy coding) on this many training utterances
eval_files=8           # stage 4 decodes this many test utterances...
eval_seconds=3         # ...this long at most (autoregressive decoding is slow)
vc_files=2             # stage 5 converts this many utterances...
vc_speakers=2          # ...into the voices of the first this-many training speakers
log() { echo "$(date '+%F %T') ($(basename "$0"):${BASH_LINENO[0]}) $*" >&2; }
