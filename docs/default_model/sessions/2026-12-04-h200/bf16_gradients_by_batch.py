"""bf16 against fp32 gradients of the shipped model (decoder only) on real crops, by batch and crop length."""
import copy, sys
sys.path.insert(0, "/work/main/tools")
import torch
from check_fast_path import gradients, compare
from speechvq.checkpoint import load_checkpoint
from speechvq.data import AudioCache, read_manifest
from speechvq.data.device import DeviceBatches, DeviceCorpus

checkpoint = load_checkpoint("/work/main/speechvq/assets/default.pt")
source = checkpoint.build_model(torch.device("cpu"))
source.freeze_encoder()
cfg = source.config
cache = AudioCache("/work/gpu/cache", cfg.sample_rate, cfg.level_dbfs)
corpus = DeviceCorpus(read_manifest("/work/diag/manifests/train.jsonl"), source.speakers, cache, torch.device("cpu"))
for batch_size, seconds in [(4, 0.256), (4, 0.5), (16, 0.256), (16, 0.5), (32, 0.5)]:
    batch = DeviceBatches(corpus, batch_size, int(seconds * 16000), seed=0).batch(0)
    ref = gradients(copy.deepcopy(source), batch, bf16=False)
    found = compare(ref, gradients(copy.deepcopy(source), batch, bf16=True), worst=4)
    worst = ", ".join(f"{w['tensor']} cos {w['cosine']:.3f} x{w['norm_ratio']:.2f}" for w in found["worst"])
    print(f"batch {batch_size} x {seconds} s: global x{found['global_norm_ratio']:.4f}; worst {worst}", flush=True)
