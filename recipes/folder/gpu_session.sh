#!/usr/bin/env bash
# One prepared GPU session: continue the shipped model, run ablations beside it, evaluate, export.
#
#   ./gpu_session.sh --corpus_dir PACKED --out "$OUT"          # on a lent GPU (about 8 minutes)
#
# On the lent machine: torch is there, this package is run from the checkout, and soundfile, cffi, pycparser,
# pystoi and constriction travel as wheels
# (`python tools/lent_image.py wheels .whl`; README's "Training on a lent GPU"); PESQ (no wheel) is left to the
# CPU evaluation afterwards. `python tools/lent_image.py run -- bash gpu_session.sh --cpu-smoke` runs the smoke
# with only what the lent machine has importable, as the test does.
#   ./gpu_session.sh --cpu-smoke                                # the same stages on the CPU, tiny model, < 2 min
#
# A GPU is lent for minutes at a time, so every lease continues the model from where the last one left it
# (--init, default the shipped speechvq/assets/default.pt), and runs short ablations beside it: each is a
# continuation with one change (--ablations "name:key=value,key=value ..."), all at the same, shorter budget
# (--ablation_minutes), with `base` (the main run's settings) among them as their reference. Short, because runs
# on one GPU share its time rather than fill idle gaps: in the first lease three compiled runs side by side made
# 3.56 M samples/s each and one alone 11.0 M (10.7 vs 11.0 M in all), so every ablation running as long as the
# main run took a share of the main run's training; once the ablations end, the main run has the GPU to itself.
#   1  manifests of --corpus_dir with the shipped model's split (10 test and 2 valid utterances per speaker,
#      no held-out speaker) and the audio cache (--prepare_workers processes)
#   2  throughput probe (tools/bench_train.py): the step before and after each speed change, the batch size,
#      the compiled step, the data loaders -> WORK/probe.json; runs on the GPU while stage 1 decodes audio
#   3  training, all runs at once: `speechvq train --init INIT --max-minutes MINUTES`, the main run on the old
#      path (--main_changes: worker loader, eager step, unfused Adam, batch 32), each ablation with one part of
#      the fast path (training set held on the device, compiled step, fused Adam, batch 64)
#   4  export each run's best.pt, measure its code statistics (entropy coding) on --stats_files utterances
#      (all runs at once); a run whose encoder side stayed frozen keeps its init's instead (the same codes,
#      and the shipped model's were counted on 3,000 files, ten times --stats_files)
#   5  decoded (not teacher-forced) scores of the init model and every run on --eval_files test utterances
#      (their first --eval_seconds), on the machine's CPUs until --deadline_s, then WORK/summary.md
#      (tools/session_summary.py); beside stages 4 and 5, the tests marked gpu (pytest -m gpu)
#   6  copy the summary and the logs to --out (the models went there in stage 4: the main run's first)
# With --more true: the lease's second call, for the device time the first leaves (a call may run 10 minutes, a
# lease lasts 15, the machine's start included). On the machine the first call left warm (it stays 30 s) the first
# call's manifests, audio cache and probe are still there: no stage 1 or 2, no ablations, GPU tests or evaluations
# (tools/ship_check.py decodes here afterwards); the run `more` continues the first call's main model (--init
# defaults to WORK/models/main.pt when it exists) alone, on the whole GPU, for --minutes, and stage 4 puts
# more.pt into --out. On a fresh machine stages 1 and 2 run first, and more starts from --init as main did.
# With --cpu-smoke: a synthetic corpus, conf/tiny.yaml, a tiny model trained first to stand in for the shipped
# one, 0.35-minute runs, the CPU; every stage above runs. CI runs it (tests/test_train_continuation.py).
set -euo pipefail
cd "$(dirname "$0")"
left_s() { local left=$((deadline_s - SECONDS)); echo $((left > 10 ? left : 10)); }  # seconds to --deadline_s
. ../../tools/recipe_defaults.sh
corpus_dir=
conf=conf/default.yaml
init=../../speechvq/assets/default.pt
default_init=$init
minutes=4.5            # training budget of the main run, start-up and compilation included
default_minutes=$minutes
ablation_minutes=1.5   # the same for each ablation (the main run's share of the GPU while they run: 1 / runs)
# Learning rate of the continuations (each run; an ablation may set its own). Not the config's 5e-4: on the CPU
# (eager, fp32, batch 4 x 0.256 s, 2026-12-01) continuing the shipped model at 3e-4 with a fresh Adam raised the
# valid NLL from 2.751 to 2.946 at the peak of the schedule, back only as it annealed (2.752 at step 393); at
# 5e-5 it stayed within 0.01 (2.750 at the end). The original run was still improving at 1e-4 on its way down.
lr=1e-4
# Every run trains the decoder side only (train.freeze_encoder: the shipped encoder and codebook as they are,
# no code restarts) unless its ablation says otherwise. The first lease (2026-11-30, H200) continued the whole
# model at 3e-4: its encoder drifted from the codebook (VQ loss 0.12 -> 0.39, codes used 465 -> 270) and the
# NLL climbed for the whole run in all three runs. On the CPU (batch 4 x 0.256 s, 3e-4, 2026-12-01) a frozen
# encoder side peaked at valid NLL 2.846 where the whole model peaked at 2.888 (from 2.758), gradient norms
# 1.5-5 against 2.5-25. Beside the main run: base (the main run's settings at the ablations' budget: what each
# ablation is compared with), joint (the whole model, as before), control (the whole model on the old path:
# worker loader, eager, unfused Adam, batch 32; tells the fast path from the warm restart) and pitch (the pitch
# stream's vectors at 10 x lr, as at 1e-4 they hardly move: an RMS of 0.003 after 750 CPU steps). Since
# 2026-12-02 the shipped model and conf/default.yaml have the stream (a log-F0 + voicing symbol every 4 codes,
# used by the pitch post-filter), so every run keeps it; model.pitch.bits=6 in the pitch run adds it where the
# init lacks it (the smoke's tiny model, whose ablations keep the pitch run). Since the later 2026-12-02 CPU
# session the shipped vectors are trained (mean norm about 0.2), so from the shipped model the pitch run was the
# base run again; lowlr took its place (2026-12-02, third CPU session): half the main run's rate, which on the CPU
# kept the valid NLL flat where 3e-4 raised it (above), so whether 1e-4 is still too high at the GPU's batch is
# the open question. Waiting for a later lease: "pitch:model.pitch.bits=6,train.new_weights_lr_scale=10" (from
# an init without a pitch stream), "preemph:model.pre_emphasis=0.85" (LPCNet's targets),
# "jitter:model.code_jitter=0.12" and "ema:model.quantizer.ema=true,train.freeze_encoder=false" (the EMA codebook
# moves only if the encoder side trains). The last three were screened from scratch on the CPU (2026-12-04,
# fifth and sixth sessions: narrow model, an hour of one core each, paired at one seed): preemph and jitter moved
# no decoded score; ema lowered the valid NLL at two seeds and MCD (STOI +0.008 +- 0.007, PESQ-WB unmoved), so
# ema is the one of them worth a from-scratch lease. Since 2026-12-03 the shipped model and conf/default.yaml have the
# pitch-lag input (model.decoder.pitch_lag_taps=5; docs/default_model/sessions/2026-12-03-cpu-2), so every run
# keeps it; both GPU engines carry it (triton since the third 2026-12-03 session, graph since the second; neither
# has run on a GPU yet, so the GPU tests check both against the reference). The lag ablation that added it became the base run; young
# took its place: the lag tables (RMS 0.02-0.03 beside input embeddings of 1.0) at 10 x lr, as in the CPU step
# that shipped them.
# The second lease (2026-12-04, H200) found the fast path itself harmful: from the shipped model every run on
# it (device loader, compiled step, fused Adam, batch 64: main, base, joint, lowlr, young) got worse from the
# first validation on (main's training NLL 2.60 -> 4.2 with its gradient norm 0.6 -> 90, valid NLL on the
# original recordings 2.5787 -> 2.6226 at its best step), as all three runs of the first lease had; the one
# run on the old path (control: worker loader, eager, unfused Adam, batch 32) did not (2.5782). The same
# fast path on the CPU (compiled, device loader, fp32 or CPU bf16; batch 4 x 0.256 s) trains as the old one
# does (docs/default_model/sessions/2026-12-04-h200/). So until a lease tells which part does it, the main
# run takes the old path (main_changes), and the ablations each add one part of the fast path to it: compiled,
# device (the device loader), fused (fused Adam), b64 (batch 64); base is the main run's settings at their
# budget. A run's first validation is its init's (valid NLL at step 0 in summary.md): an ablation worse than
# base at the same budget marks its part.
# Later the same day, on the CPU (tools/check_fast_path.py on the shipped model, docs/.../2026-12-04-h200): at
# batch 16 x 0.5 s bf16 autocast turned the gradients of the first three residual blocks' output biases to
# cosine 0.42-0.68 with float32's (at batch 4 x 0.256 s: 0.997), though 100 steps on the CPU were not hurt by it
# (held-out NLL 2.5849 against 2.5858 in float32); the error points the same way in every batch (cosine
# 0.87-0.91 between two batches' errors, a third of the gradient at 32 x 0.5 s). Every CPU continuation that improved the model trained in
# float32 (bf16 applies on CUDA only), every GPU continuation in bf16, and on the H100 bf16 was only 13% faster
# than float32. So the main run also trains in float32, and bf16 is one of the ablations. The device loader
# left the list: check_fast_path.py compares its crops with the host's on the device itself.
# Until then "float32" on CUDA had meant TF32 products (10-bit mantissa operands), whose error on the shipped
# model is as systematic as bf16's and eight times smaller (4% of the gradient at 32 x 0.5 s, cosine 0.89
# between two batches' errors; docs/default_model/sessions/2026-12-04-cpu-4/): since the fourth CPU session of
# 2026-12-04 a float32 run computes in IEEE float32 on CUDA too (TF32 only under bf16), so the main run
# computes as the CPU continuations that improved the model did. The probe's `fp32` row says what that costs.
main_changes="train.freeze_encoder=true data.loader=workers train.compile=false train.fused_optimizer=false data.batch_size=32 train.precision=fp32"
default_main_changes=$main_changes
ablations="base: bf16:train.precision=bf16 compiled:train.compile=true fused:train.fused_optimizer=true b64:data.batch_size=64"
default_ablations=$ablations
probe_batches="32 64 128"
probe_steps=10         # timed steps per probe setting (tools/bench_train.py --steps)
test_per_speaker=10    # the shipped model's split
holdout_speakers=
work=exp/gpu_session
out=
eval_files=12
eval_seconds=2
# Seconds after the start by which the evaluations and GPU tests end, so that the summary and the logs come back:
# one device command may run 600 s, and the lease of 2026-12-04 lost them when its evaluations ran past it.
deadline_s=540
fast_path_options=     # tools/check_fast_path.py's (its defaults on the GPU: batch 32 x 0.5 s, 200 steps per path)
stats_files=300
out_limit_mib=63       # what --out may hold (a device call returns 64 MiB)
prepare_workers=$(nproc)
device=cuda
more=false
smoke=false
if [ "${1:-}" = "--cpu-smoke" ]; then smoke=true; shift; fi
. ../../tools/parse_options.sh
# A lent GPU machine has torch but not this package installed: run it from the checkout.
command -v speechvq > /dev/null || speechvq() { PYTHONPATH="$(cd ../.. && pwd)${PYTHONPATH:+:$PYTHONPATH}" python3 -m speechvq "$@"; }
export PYTHONPATH="$(cd ../.. && pwd)${PYTHONPATH:+:$PYTHONPATH}"

if $smoke; then
  work=exp/gpu_session_smoke; device=cpu; conf=conf/tiny.yaml; ablation_minutes=0.3
  [ "$minutes" = "$default_minutes" ] && minutes=0.35  # unless --minutes says otherwise
  # 3 timed steps per probe setting: the smoke checks that the stages fit together, not the numbers
  probe_batches="2 8"; probe_steps=3
  fast_path_options="--batch 2 --seconds 0.256 --steps 4 --every 2 --paths old-fp32 fast"
  overrides="data.segment_s=0.256 $overrides"   # whole code frames, as train.compile needs
  eval_files=2; eval_seconds=0.2; stats_files=10; test_per_speaker=1; valid_per_speaker=1
  # the main run on the old path at the probe's batch; the lease's single-part ablations run the same code as
  # these two: fast (the whole fast path, and the whole model, whose code statistics are measured) and pitch
  # (the stream and the pitch-lag input added to a tiny init that has neither) take the other code paths (< 2 min)
  [ "$main_changes" = "$default_main_changes" ] &&
    main_changes="train.freeze_encoder=true data.loader=workers train.compile=false train.fused_optimizer=false train.precision=fp32"
  [ "$ablations" = "$default_ablations" ] &&
    ablations="fast:train.freeze_encoder=false,data.loader=device,train.compile=true,train.fused_optimizer=true,train.precision=bf16 pitch:model.pitch.bits=6,model.decoder.pitch_lag_taps=5,train.new_weights_lr_scale=10"
  export OMP_NUM_THREADS=1
  corpus_dir=$work/corpus
  if ! $more; then
    rm -rf "$work"
    log "Smoke: a synthetic corpus in $corpus_dir"
    (cd ../.. && python3 -c "import sys; from tests.helpers import make_folder_corpus
make_folder_corpus(sys.argv[1], speakers=3, utterances=5, seconds=0.5)" "recipes/folder/$corpus_dir")
  fi
fi
[ -n "$corpus_dir" ] || { echo "$0: --corpus_dir is required (or --cpu-smoke)" >&2; exit 2; }
out=${out:-$work/out}
mkdir -p "$work/logs" "$out"
manifests=$work/manifests
data=(data.train_manifest=$manifests/train.jsonl data.valid_manifest=$manifests/valid.jsonl
      data.speakers=$manifests/speakers.json data.cache_dir=$work/cache)
set_args=("${data[@]}"); [ -n "$overrides" ] && read -r -a extra <<< "$overrides" && set_args+=("${extra[@]}")

previous_model() {  # the smoke's stand-in for the shipped model, with code statistics as that has them (a
  # frozen-encoder run keeps its init's, the others measure their own)
  speechvq train -c "$conf" --set "${set_args[@]}" train.max_steps=10 --exp "$work/exp/previous" \
    --device cpu > "$work/logs/previous.log" 2>&1 &&
  speechvq export "$work/exp/previous/best.pt" "$work/previous.pt" --force >> "$work/logs/previous.log" 2>&1 &&
  speechvq code-stats --model "$work/previous.pt" --manifest "$manifests/train.jsonl" --max-files "$stats_files" \
    --spread --device cpu > "$work/logs/stats_previous.log" 2>&1
}

prepared=false  # --more on the machine the first call left: its manifests, audio cache and probe are there
$more && [ -f "$manifests/train.jsonl" ] && grep -q "^choice: batch=" "$work/logs/probe.log" 2>/dev/null && prepared=true
if $prepared; then
  log "Stages 1 and 2: the first call's manifests, audio cache and probe in $work"
else
  log "Stage 2 (in the background): throughput probe of $conf"
  python3 ../../tools/bench_train.py --preset "$conf" --device "$device" --batches $probe_batches --compile \
    --steps "$probe_steps" --set "${set_args[@]}" --json "$work/probe.json" > "$work/logs/probe.log" 2>&1 &
  probe=$!

  log "Stage 1: manifests and audio cache of $corpus_dir"
  speechvq manifest folder "$corpus_dir" --out "$manifests" --valid-per-speaker "$valid_per_speaker" \
    --test-per-speaker "$test_per_speaker" ${holdout_speakers:+--holdout-speakers $holdout_speakers} \
    > "$work/logs/manifest.log" 2>&1 || { tail -n 5 "$work/logs/manifest.log" >&2; exit 1; }
  speechvq prepare -c "$conf" --set "${set_args[@]}" --manifests "$manifests" --workers "$prepare_workers" \
    > "$work/logs/prepare.log" 2>&1 || { tail -n 5 "$work/logs/prepare.log" >&2; exit 1; }
  tail -n 1 "$work/logs/prepare.log" | tr '\r' '\n' | tail -n 1 >&2
  if $smoke; then  # beside the probe, which leaves a core idle on a 2-core machine (CI)
    log "Smoke: a tiny model to stand in for the shipped one (in the background)"
    previous_model &
    previous=$!
  fi
  # a failed probe costs its numbers, not the session: the runs then take the config's batch, uncompiled
  wait $probe || { tail -n 5 "$work/logs/probe.log" >&2; log "the probe failed: config batch, eager runs"; }
  grep -v "Warning\|warn" "$work/logs/probe.log" >&2 || true
fi
batch=$(sed -n 's/^choice: batch=//p' "$work/logs/probe.log")
[ -n "$batch" ] || batch=$(python3 -c "from speechvq.config import load_config as l; import sys
print(l(sys.argv[1], sys.argv[2:]).data.batch_size)" "$conf" "${set_args[@]}")
compile=true   # the probe compared the compiled step's gradients with the eager ones on this device
grep -q "^compile-check: ok" "$work/logs/probe.log" || { compile=false; log "compiled gradients disagree: eager runs"; }
$more || python3 ../../tools/bench_train.py --preset "$conf" --device "$device" --batch "$batch" --loaders-only \
  --set "${set_args[@]}" --loader-manifest "$manifests/train.jsonl" --speakers-file "$manifests/speakers.json" \
  --cache-dir "$work/cache" --json "$work/loaders.json" 2>&1 | grep "^loader" >&2 || log "the loader timing failed"

main_name=main
if $more; then
  main_name=more; ablations=""
  if [ "$init" = "$default_init" ]; then
    if [ -f "$work/models/main.pt" ]; then init=$work/models/main.pt
    else log "no first call's main.pt in $work (a fresh machine): more starts from $init, as main did"; fi
  fi
elif $smoke; then
  wait $previous || { tail -n 5 "$work/logs/previous.log" >&2; echo "$0: the smoke's stand-in model failed" >&2; exit 1; }
  init=$work/previous.pt
fi

runs=("$main_name:")
set -f  # split the list on spaces, but leave patterns in it (new_weights_include=[...*]) to the trainer
for spec in $ablations; do runs+=("$spec"); done
set +f
log "Stage 3: ${#runs[@]} run(s) from $init at batch $batch, $main_name $minutes min${ablations:+, ablations $ablation_minutes min}: ${runs[*]}"
pids=()
for spec in "${runs[@]}"; do
  name=${spec%%:*}; changes=${spec#*:}
  budget=$ablation_minutes; [ "$name" = "$main_name" ] && budget=$minutes
  run_set=("${set_args[@]}" data.loader=device train.compile=$compile data.batch_size="$batch" train.lr="$lr"
           $main_changes)
  # (not `more`: that is the --more flag, read again in stages 4-6)
  [ -n "$changes" ] && IFS=, read -r -a run_changes <<< "$changes" && run_set+=("${run_changes[@]}")
  rm -rf "$work/exp/$name"
  speechvq train -c "$conf" --set "${run_set[@]}" --exp "$work/exp/$name" --device "$device" --init "$init" \
    --max-minutes "$budget" > "$work/logs/train_$name.log" 2>&1 &
  pids+=($!)
done
# Beside the runs (the old path leaves the GPU mostly idle): each part of the fast path against the old one on
# the init model and real crops (tools/check_fast_path.py; the runs of both leases on the fast path got worse).
# From here it has until --deadline_s (after training about 160 s would be left, for three compilations and
# 1,000 training steps).
fast_path=
if ! $more; then
  log "Fast-path check (in the background): tools/check_fast_path.py on $init"
  (timeout "$(left_s)" python3 ../../tools/check_fast_path.py --model "$init" --manifest "$manifests/train.jsonl" \
     --cache-dir "$work/cache" --device "$device" $fast_path_options --json "$work/fast_path.json" \
     > "$work/logs/fast_path.log" 2>&1 || log "check_fast_path.py failed or reached --deadline_s (logs/fast_path.log)") &
  fast_path=$!
fi
# A run that fails (or ends without a checkpoint) costs its own results, not the others': the later stages go on
# with the runs that finished, and the script's status says that one failed.
finished=(); failed=0
for i in "${!pids[@]}"; do
  name=${runs[$i]%%:*}
  if wait "${pids[$i]}" && [ -f "$work/exp/$name/best.pt" ]; then finished+=("${runs[$i]}"); else
    failed=$((failed + 1)); tail -n 20 "$work/logs/train_$name.log" >&2; log "run $name failed"; fi
done
[ "${#finished[@]}" -gt 0 ] || { echo "$0: every run failed" >&2; exit 1; }
runs=("${finished[@]}")

# The tests that need a GPU (CUDA-graph capture, the compiled Triton kernel against the reference, noise drawn on the
# device, training steps that never wait for it) run here, where one is, while stages 4 and 5 leave it mostly idle.
# In the smoke they are collected in the lent image's view and skipped. Not again in a --more call.
gpu_tests=
if ! $more; then
  repo=$(python3 -c "import os, speechvq; print(os.path.dirname(os.path.dirname(os.path.abspath(speechvq.__file__))))")
  log "GPU tests (in the background): pytest -m gpu in $repo"
  gpu_tests_s=$(left_s); [ "$gpu_tests_s" -gt 200 ] && gpu_tests_s=200
  (cd "$repo" && timeout "$gpu_tests_s" python3 -m pytest -q -m gpu -rfEs -p no:cacheprovider -p no:hypothesispytest \
     tests/generation/test_gpu.py tests/test_train_continuation.py tests/test_inference.py) \
    > "$work/logs/gpu_tests.log" 2>&1 &
  gpu_tests=$!
  # then generation speed of the shipped decoder's shape (the pitch-lag input) on the triton and graph engines,
  # each first checked against the reference, alone on the GPU (until --deadline_s)
  if [ "$device" = cuda ]; then
    (while kill -0 "$gpu_tests" 2> /dev/null || kill -0 "$fast_path" 2> /dev/null; do sleep 2; done  # siblings
     timeout "$(left_s)" python3 ../../tools/bench_generate_gpu.py --pitch-lag-taps 5 \
       --batches 64 1024 --samples 16384 > "$work/logs/bench_generate_gpu.log" 2>&1 ||
     log "bench_generate_gpu.py failed or reached --deadline_s (logs/bench_generate_gpu.log)") &
    bench=$!
  fi
fi

log "Stage 4: export and code statistics"
mkdir -p "$work/models"
pids=()
for spec in "${runs[@]}"; do  # each run's in parallel: two or three processes, each seconds of start-up
  name=${spec%%:*}
  (if speechvq export "$work/exp/$name/best.pt" "$work/models/$name.pt" --force | grep "with code statistics" > /dev/null; then
     log "$name: the encoder side was frozen, so its init's code statistics still hold (kept, not measured)"
   else
     speechvq code-stats --model "$work/models/$name.pt" --manifest "$manifests/train.jsonl" \
       --max-files "$stats_files" --spread --device "$device" > "$work/logs/stats_$name.log" 2>&1
   fi
  ) &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
# What comes back is limited (--out_limit_mib): the main run's model first, then the others while they fit
# beside 4 MiB kept for the logs (six models of 12.5 MB did not fit on 2026-12-04); the summary has every run.
for spec in "${runs[@]}"; do name=${spec%%:*}; [ "$name" = "$main_name" ] && echo "$name"; done > "$work/copy_order"
for spec in "${runs[@]}"; do name=${spec%%:*}; [ "$name" = "$main_name" ] || echo "$name"; done >> "$work/copy_order"
while read -r name; do
  [ -f "$work/models/$name.pt" ] || continue
  used=$(du -cb "$out" | tail -n 1 | cut -f1); size=$(du -b "$work/models/$name.pt" | cut -f1)
  if [ "$name" = "$main_name" ] || [ $((used + size + 4 * 1024 * 1024)) -le $((out_limit_mib * 1024 * 1024)) ]; then
    cp "$work/models/$name.pt" "$out/$name.pt"
  else
    log "$name.pt stays here: it does not fit under --out_limit_mib beside the others (its numbers are in summary.md)"
  fi
done < "$work/copy_order"

if ! $more; then
  log "Stage 5: decoded scores on $eval_files test utterances (first $eval_seconds s)"
  # --spread: the test manifest lists each speaker's utterances together; the first 12 were 10 of allison's and
  # 2 of carlo's, 2 of the 12 speakers
  # On the machine's CPUs, all at once, each with its share of the cores, until --deadline_s. Not on the GPU: a
  # decode is one stream per file, and on the H200 on 2026-12-04 seven one-stream decodes side by side ran at
  # 700-1,000 samples/s each (the triton kernel alone makes 5,600-10,000 on an H100): none finished in 100 s.
  names=(init $(for spec in "${runs[@]}"; do echo "${spec%%:*}"; done))
  threads=$(( $(nproc) / ${#names[@]} )); [ "$threads" -ge 1 ] || threads=1
  eval_s=$(left_s)
  pids=()
  for name in "${names[@]}"; do
    model=$work/models/$name.pt; [ "$name" = init ] && model=$init
    (OMP_NUM_THREADS=$threads timeout "$eval_s" python3 -m speechvq eval --model "$model" \
       --manifest "$manifests/test.jsonl" --out "$work/eval/$name" --max-files "$eval_files" --spread \
       --max-seconds "$eval_seconds" --device cpu --plots 2 >> "$work/logs/eval_$name.log" 2>&1 ||
     { status=$?; tail -n 3 "$work/logs/eval_$name.log" >&2
       if [ "$status" = 124 ]; then log "evaluation of $name not finished by --deadline_s ($deadline_s s)"
       else log "evaluation of $name failed (see $work/logs/eval_$name.log)"; fi; }) &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
fi
gpu_tests_ok=true
[ -z "$fast_path" ] || wait "$fast_path" || true
[ -z "${bench:-}" ] || wait "$bench" || true
if [ -n "$gpu_tests" ]; then
  wait $gpu_tests || { gpu_tests_ok=false; grep "^FAILED\|^ERROR" "$work/logs/gpu_tests.log" >&2; log "GPU tests failed"; }
  tail -n 1 "$work/logs/gpu_tests.log" >&2
fi
python3 ../../tools/session_summary.py "$work" --init "$init" > "$work/summary.md"
cat "$work/summary.md" >&2

log "Stage 6: results -> $out"
cp "$work/summary.md" "$out/"
# A device call returns at most 64 MiB from $OUT (8 files): five models of 12 MiB leave about 4 for the logs. The
# big manifests are left out (the split is rebuilt from the corpus for ship_check), and the spectrogram plots too
# when the files would not fit under --out_limit_mib.
# The archive is written beside the work directory and then moved: --out lies inside it by default, and GNU tar
# stops with "file changed as we read it" (exit 1) when it reads the archive it is still writing (CI on 2026-12-02).
pack_logs() {
  local partial="$work.logs.tar.gz.partial"
  tar -czf "$partial" --exclude=cache --exclude=corpus --exclude='*.pt' --exclude='*.wav' \
    --exclude=manifests/all.jsonl --exclude=manifests/train.jsonl --exclude="./${out#"$work"/}" "$@" -C "$work" . &&
    mv "$partial" "$out/logs.tar.gz"
}
pack_logs
if [ "$(du -cb "$out"/* | tail -n 1 | cut -f1)" -gt $((out_limit_mib * 1024 * 1024)) ]; then
  log "--out would exceed $out_limit_mib MiB: the logs without the spectrogram plots"
  pack_logs --exclude='*.png'
fi
log "Done: $(ls "$out" | tr '\n' ' ')"
[ "$failed" -eq 0 ] || { echo "$0: $failed run(s) failed (see the logs in $out/logs.tar.gz)" >&2; exit 1; }
$gpu_tests_ok || { echo "$0: GPU tests failed (logs/gpu_tests.log in $out/logs.tar.gz)" >&2; exit 1; }
