#!/usr/bin/env bash
# Stages 2-5 shared by every recipe, sourced by recipes/<corpus>/run.sh after its own stages 0-1.
# Expects: stage, stop_stage, conf, overrides, device, eval_files, eval_seconds, vc_files, vc_speakers.
#   2  audio check and cache      -> data/manifests/{check.json,rejected.jsonl}, data/cache/
#   3  training (resumes)         -> exp/<conf>/{last,best}.pt, config.yaml, metrics.jsonl, tensorboard/
#   4  code statistics for entropy coding (stored in best.pt), then reconstruct the test split (and the
#      held-out speakers' utterances, when there are any)
#                                 -> exp/<conf>/eval/{report.md,report.json,wav/}, exp/<conf>/eval/unseen/
#   5  voice-conversion samples   -> exp/<conf>/vc/<utterance>.<speaker>.wav
exp=exp/$(basename "$conf" .yaml)
manifests=data/manifests
set_args=(); [ -n "$overrides" ] && read -r -a extra <<< "$overrides" && set_args=(--set "${extra[@]}")

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ] && [ ! -e $manifests/.checked ]; then
  log "Stage 2: check every utterance and fill the audio cache"
  speechvq prepare -c "$conf" "${set_args[@]}" --manifests $manifests --workers "$prepare_workers"
  touch $manifests/.checked
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ] && [ ! -e "$exp/.done" ]; then
  log "Stage 3: train -> $exp (resumes from $exp/last.pt when present)"
  speechvq train -c "$conf" "${set_args[@]}" --exp "$exp" --device "$device"
  touch "$exp/.done"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ] && [ ! -e "$exp/eval/.done" ]; then
  log "Stage 4: code statistics from $stats_files training utterances, then reconstruct $eval_files test utterances"
  speechvq code-stats --model "$exp/best.pt" --manifest $manifests/train.jsonl --max-files "$stats_files" --spread \
    --device "$device"
  speechvq eval --model "$exp/best.pt" --manifest $manifests/test.jsonl --out "$exp/eval" \
    --max-files "$eval_files" --spread --max-seconds "$eval_seconds" --device "$device"
  if [ -s $manifests/unseen.jsonl ]; then  # voices the model never trained on, reported on their own
    speechvq eval --model "$exp/best.pt" --manifest $manifests/unseen.jsonl --out "$exp/eval/unseen" \
      --max-files "$eval_files" --spread --max-seconds "$eval_seconds" --device "$device"
  fi
  touch "$exp/eval/.done"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ] && [ ! -e "$exp/vc/.done" ]; then
  source_manifest=$manifests/unseen.jsonl   # held-out voices when there are any, else test utterances
  [ -s "$source_manifest" ] || source_manifest=$manifests/test.jsonl
  mapfile -t targets < <(speechvq info --model "$exp/best.pt" --speakers | head -n "$vc_speakers")
  log "Stage 5: convert $vc_files utterances of $source_manifest into ${targets[*]} -> $exp/vc"
  speechvq convert "$source_manifest" --max-files "$vc_files" --max-seconds "$eval_seconds" \
    --speaker "${targets[@]}" --model "$exp/best.pt" --out-dir "$exp/vc" --device "$device" --force
  touch "$exp/vc/.done"
fi
log "Done (stages $stage to $stop_stage)."
