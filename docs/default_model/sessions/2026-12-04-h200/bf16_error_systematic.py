"""Is bf16's gradient error systematic? For two independent batches (16 x 0.5 s, real crops, shipped model):
cosine between the two batches' float32 gradients (sampling noise), and between their bf16 errors (bf16 - fp32)."""
import copy, sys
sys.path.insert(0, "/work/main/tools")
import torch
from check_fast_path import gradients
from speechvq.checkpoint import load_checkpoint
from speechvq.data import AudioCache, read_manifest
from speechvq.data.device import DeviceBatches, DeviceCorpus

batch_size, seconds = int(sys.argv[1]), float(sys.argv[2])
checkpoint = load_checkpoint("/work/main/speechvq/assets/default.pt")
source = checkpoint.build_model(torch.device("cpu"))
source.freeze_encoder()
cfg = source.config
cache = AudioCache("/work/gpu/cache", cfg.sample_rate, cfg.level_dbfs)
corpus = DeviceCorpus(read_manifest("/work/diag/manifests/train.jsonl"), source.speakers, cache, torch.device("cpu"))
batches = DeviceBatches(corpus, batch_size, int(seconds * 16000), seed=0)
fp32, error = [], []
for k in (0, 1):
    batch = batches.batch(k)
    ref = gradients(copy.deepcopy(source), batch, bf16=False)
    low = gradients(copy.deepcopy(source), batch, bf16=True)
    fp32.append(ref)
    error.append({name: low[name] - ref[name] for name in ref})
cos = lambda a, b: torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()  # noqa: E731
print(f"batch {batch_size} x {seconds} s")
print("tensor | cos(fp32 grad batch 0, batch 1) | cos(bf16 error batch 0, batch 1) | |error| / |fp32 grad| (batch 0)")
for name in ["decoder.layers.0.out.bias", "decoder.layers.1.out.bias", "decoder.layers.2.out.bias",
             "decoder.layers.3.out.bias", "decoder.layers.1.out.weight", "decoder.layers.10.out.bias",
             "decoder.post_logits.bias"]:
    if name not in fp32[0]:
        continue
    print(f"{name} | {cos(fp32[0][name], fp32[1][name]):.3f} | {cos(error[0][name], error[1][name]):.3f} | "
          f"{(error[0][name].norm() / fp32[0][name].norm()).item():.3f}")
allg = lambda d: torch.cat([v.flatten() for v in d.values()])  # noqa: E731
print(f"all | {cos(allg(fp32[0]), allg(fp32[1])):.3f} | {cos(allg(error[0]), allg(error[1])):.3f} | "
      f"{(allg(error[0]).norm() / allg(fp32[0]).norm()).item():.3f}")
