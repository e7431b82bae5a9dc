"""Is bf16's gradient error systematic? For two independent batches (BATCH x SECONDS, real crops, shipped model,
decoder only): cosine between the two batches' float32 gradients (sampling noise), and between their bf16 errors
(bf16 - fp32).

    python bf16_error_systematic.py 16 0.5

Reads the shipped model, the prepared audio cache and the shipped split's training manifest (CACHE and MANIFEST
below: where they were on 2026-12-04; `speechvq prepare` and `speechvq manifest folder` make them).
"""
import copy
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[4]  # the checkout: docs/default_model/sessions/<this folder>/
sys.path.insert(0, str(ROOT / "tools"))
from check_fast_path import gradients  # noqa: E402
from speechvq.checkpoint import load_checkpoint  # noqa: E402
from speechvq.data import AudioCache, read_manifest  # noqa: E402
from speechvq.data.device import DeviceBatches, DeviceCorpus  # noqa: E402

CACHE, MANIFEST = "/work/gpu/cache", "/work/diag/manifests/train.jsonl"


def shipped_decoder_and_corpus():
    """(the shipped model on the CPU with its encoder side frozen, its training set as a `DeviceCorpus`)."""
    source = load_checkpoint(ROOT / "speechvq" / "assets" / "default.pt").build_model(torch.device("cpu"))
    source.freeze_encoder()
    cache = AudioCache(CACHE, source.config.sample_rate, source.config.level_dbfs)
    return source, DeviceCorpus(read_manifest(MANIFEST), source.speakers, cache, torch.device("cpu"))


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


def flat(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.flatten() for v in grads.values()])


def main() -> None:
    batch_size, seconds = int(sys.argv[1]), float(sys.argv[2])
    source, corpus = shipped_decoder_and_corpus()
    batches = DeviceBatches(corpus, batch_size, int(seconds * source.config.sample_rate), seed=0)
    fp32, error = [], []
    for k in (0, 1):
        batch = batches.batch(k)
        ref = gradients(copy.deepcopy(source), batch, bf16=False)
        low = gradients(copy.deepcopy(source), batch, bf16=True)
        fp32.append(ref)
        error.append({name: low[name] - ref[name] for name in ref})
    print(f"batch {batch_size} x {seconds} s")
    print("tensor | cos(fp32 grad batch 0, batch 1) | cos(bf16 error batch 0, batch 1) | |error| / |fp32 grad| (batch 0)")
    for name in ["decoder.layers.0.out.bias", "decoder.layers.1.out.bias", "decoder.layers.2.out.bias",
                 "decoder.layers.3.out.bias", "decoder.layers.1.out.weight", "decoder.layers.10.out.bias",
                 "decoder.post_logits.bias"]:
        if name in fp32[0]:
            print(f"{name} | {cos(fp32[0][name], fp32[1][name]):.3f} | {cos(error[0][name], error[1][name]):.3f} | "
                  f"{(error[0][name].norm() / fp32[0][name].norm()).item():.3f}")
    print(f"all | {cos(flat(fp32[0]), flat(fp32[1])):.3f} | {cos(flat(error[0]), flat(error[1])):.3f} | "
          f"{(flat(error[0]).norm() / flat(fp32[0]).norm()).item():.3f}")


if __name__ == "__main__":
    main()
