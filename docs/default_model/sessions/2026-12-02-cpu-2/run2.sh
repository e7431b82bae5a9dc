#!/bin/bash
# second CPU step: continue the pitch candidate (81ffe977) for 33 min (warm restart), decoder only, seed 5
set -euo pipefail
cd /work/main
work=/work/diag/pt; src=/work/diag/cpu3
data=(data.train_manifest="$src/manifests/train.jsonl" data.valid_manifest="$src/manifests/valid.jsonl"
      data.speakers="$src/manifests/speakers.json" data.cache_dir="$src/cache")
OMP_NUM_THREADS=2 .venv/bin/speechvq train -c recipes/folder/conf/default.yaml --exp "$work/pitch2" --device cpu \
  --init "$work/pitch.pt" --max-minutes 33 --set "${data[@]}" train.max_steps=100000 train.seed=5 \
  data.segment_s=0.256 data.batch_size=4 data.num_workers=0 data.valid_max_utterances=20 data.loader=device \
  train.precision=fp32 train.compile=true train.freeze_encoder=true train.new_weights_lr_scale=10 \
  train.lr=1e-4 train.warmup_steps=100 train.log_every=50 train.valid_every=250 train.checkpoint_every=250 \
  train.valid_audio_s=0 > "$work/train_pitch2.log" 2>&1
.venv/bin/speechvq export "$work/pitch2/best.pt" "$work/pitch2.pt" --force
.venv/bin/python - <<'PY'
import torch
a = torch.load("/work/diag/pt/shipped.pt", map_location="cpu", weights_only=False)
b = torch.load("/work/diag/pt/pitch2.pt", map_location="cpu", weights_only=False)
assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"] if k.startswith(("encoder", "quantizer")))
b["code_statistics"] = a["code_statistics"]
torch.save(b, "/work/diag/pt/pitch2.pt.tmp")
PY
mv /work/diag/pt/pitch2.pt.tmp /work/diag/pt/pitch2.pt
.venv/bin/python tools/ship_check.py /work/diag/pt/pitch2.pt --seeds 0 1 --reference /work/diag/pt/shipped.pt \
  --manifest /work/diag/cpu3/manifests/test.jsonl --out /work/diag/pt/ship > /work/diag/pt/ship2.log 2>&1
