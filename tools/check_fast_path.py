#!/usr/bin/env python3
"""Which part of the fast training path changes what training computes, on the model a run continues.

Both GPU leases' continuations on the fast path (device loader, compiled step, fused Adam, bf16) got worse from
their first validation on, while the old path (worker loader, eager step, multi-tensor Adam) and this CPU's runs
of the same fast path did not (README, "Training on a lent GPU"). The gradient check of the throughput probe
(tools/bench_train.py) passed both times, but it compares one batch of noise on a fresh model. This compares each
part with the old path on the trained model and real training crops, on the device itself:

    loader     the device loader's crops against the same crops cut from the prepared audio on the host
               (`data.loader=device`; must be equal)
    gradients  one batch's gradients, tensor by tensor, against the eager IEEE float32 step: eager TF32 (how
               float32 runs computed on CUDA until 2026-12-04), eager bf16 (the rounding floor), compiled
               bf16 (`train.compile`), compiled float32. Per tensor: the cosine with the reference and the
               ratio of norms; the worst tensors and the global norm
    adam       fused Adam (`train.fused_optimizer`) against the multi-tensor one, three steps from the same
               weights and gradients: the largest difference as a share of the largest update
    steps      --steps training steps (`speechvq.train.loop`'s own step, constant lr) from the same weights on
               the same batches for each path: old (eager, multi-tensor Adam) and fast (compiled step and
               fused Adam), each in float32 and bf16, then the old path in float32 with TF32, then compiled
               and fused alone in bf16; the float32 NLL of a held-out batch every --every steps. A part that
               makes the NLL climb where old-fp32 does not is the one

Float32 here is IEEE float32 (TF32 off) and bf16 runs with TF32 on, as `speechvq train` sets them
(`loop.configure_cuda_math`); the held-out NLL is always IEEE float32.

    python tools/check_fast_path.py --model speechvq/assets/default.pt --manifest data/manifests/train.jsonl \
        --cache-dir data/cache --json fast_path.json       # on a GPU (bf16 as the runs train)
    python tools/check_fast_path.py --model tiny.pt --manifest train.jsonl --cache-dir cache --device cpu \
        --batch 2 --seconds 0.256 --steps 4 --every 2       # the same on the CPU (CPU autocast for bf16)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import time

import numpy as np
import torch

from speechvq.checkpoint import load_checkpoint
from speechvq.data import AudioCache, Batch, read_manifest
from speechvq.data.dataset import to_float
from speechvq.data.device import DeviceBatches, DeviceCorpus
from speechvq.models import SpeechVQ
from speechvq.train import loop

# the paths of the steps check: (compiled step, fused Adam, bf16, TF32)
# in the order they run, should the deadline stop the rest: the old path and the whole fast path, each in float32
# and in bf16 (at batch 16 x 0.5 s on the CPU, bf16 turned the gradients of the first residual blocks' output
# biases to cosine 0.42-0.68 with float32's), the old path in float32 with TF32 (its rounding error is as
# systematic, an eighth the size: docs/default_model/sessions/2026-12-04-cpu-4/), then compiled and fused alone
PATHS = {"old-fp32": (False, False, False, False), "old": (False, False, True, True),
         "fast-fp32": (True, True, False, False), "fast": (True, True, True, True),
         "old-tf32": (False, False, False, True), "compiled": (True, False, True, True),
         "fused": (False, True, True, True)}


@contextlib.contextmanager
def tf32(enabled: bool):
    """Within: cuDNN's and cuBLAS's float32 products at TF32 (10-bit mantissa operands) or IEEE float32 (no-op
    on the CPU, which has no TF32); the previous settings are restored after."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def loader_check(corpus: DeviceCorpus, cache: AudioCache, entries, segment: int, count: int, seed: int) -> int:
    """Crops the device gathers against the same crops cut on the host; returns how many differ (0 expected).

    Args:
        corpus: the device-resident set of `entries`; cache: where their prepared audio is; segment: crop
            length in samples; count: crops compared; seed: which utterances and offsets.
    """
    rng = np.random.default_rng(seed)
    items = rng.choice(len(corpus), size=count, replace=len(corpus) < count)
    lengths = corpus.lengths[items].numpy()
    offsets = (rng.random(count) * np.maximum(lengths - segment // 2, 1)).astype(np.int64)  # some run past the end
    gathered, _ = corpus.crops(items, offsets, segment)
    differ = 0
    for row, (item, offset) in enumerate(zip(items, offsets)):
        host = np.zeros(segment, dtype=np.float32)
        piece = to_float(cache.load(entries[item].path))[offset:offset + segment]
        host[:piece.shape[0]] = piece
        differ += int(not torch.equal(gathered[row, 0].cpu(), torch.from_numpy(host)))
    return differ


def gradients(model: SpeechVQ, batch: Batch, bf16: bool, with_tf32: bool = False) -> dict[str, torch.Tensor]:
    """Each parameter's gradient of one training pass (float32 copies), the global RNG seeded first; the float32
    products (all of them, or what bf16 autocast leaves in float32) at TF32 when `with_tf32` (CUDA only)."""
    torch.manual_seed(0)
    model.train()
    model.zero_grad(set_to_none=True)
    with tf32(with_tf32):
        with torch.autocast(device_type=batch.wav.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(batch.wav, batch.speaker if model.has_speakers else None)
        out.loss.backward()
    return {name: p.grad.detach().float().clone() for name, p in model.named_parameters() if p.grad is not None}


def compare(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor], worst: int = 3) -> dict:
    """Per-tensor agreement of gradients: cosine and norm ratio; the `worst` tensors by min(cosine, 1 - |ratio - 1|)."""
    rows = []
    for name, ref in reference.items():
        got = other.get(name)
        if got is None or ref.norm() == 0:
            continue
        cosine = torch.nn.functional.cosine_similarity(ref.flatten(), got.flatten(), dim=0).item()
        ratio = (got.norm() / ref.norm()).item()
        rows.append((min(cosine, 1.0 - abs(ratio - 1.0)), name, cosine, ratio))
    rows.sort()
    norm = lambda grads: math.sqrt(sum(float(g.pow(2).sum()) for g in grads.values()))  # noqa: E731
    return {"global_norm_ratio": norm(other) / norm(reference), "missing": sorted(set(reference) - set(other)),
            "finite": all(bool(torch.isfinite(g).all()) for g in other.values()),
            "worst": [{"tensor": name, "cosine": cosine, "norm_ratio": ratio}
                      for _, name, cosine, ratio in rows[:worst]]}


def adam_check(model: SpeechVQ, grads: dict[str, torch.Tensor], lr: float) -> float:
    """Fused against multi-tensor Adam, three steps from the same weights and gradients: the largest weight
    difference as a share of the largest weight change (float rounding: about 1e-6 or less)."""
    named = {name: p for name, p in model.named_parameters() if name in grads}
    finals = []
    for fused in (False, True):
        params = [p.detach().clone().requires_grad_(True) for p in named.values()]
        optimizer = torch.optim.Adam(params, lr=lr, fused=fused, foreach=None if fused else True)
        for _ in range(3):
            for p, name in zip(params, named):
                p.grad = grads[name].clone()
            optimizer.step()
        finals.append(params)
    change = max(float((a.detach() - p.detach()).abs().max()) for a, p in zip(finals[0], named.values()))
    differ = max(float((a.detach() - b.detach()).abs().max()) for a, b in zip(*finals))
    return differ / max(change, 1e-30)


def steps_check(source: SpeechVQ, checkpoint, batches: DeviceBatches, held: Batch, path: tuple, steps: int,
                every: int, lr: float, freeze_encoder: bool) -> list[tuple[int, float, float]]:
    """`steps` training steps of one path from `source`'s weights.

    Returns:
        [(step, held-out NLL in float32 nats per sample, mean gradient norm of the steps since the last row)];
        the first row is the init's (gradient norm 0).
    """
    compiled, fused, bf16, with_tf32 = path
    model = copy.deepcopy(source)
    if freeze_encoder:
        model.freeze_encoder()
    if compiled:
        model.compile_training()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr, betas=tuple(checkpoint.config.train.adam_betas), fused=fused,
                                 foreach=None if fused else True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)  # constant: the paths, not a schedule
    sums = loop._DeviceSums(held.wav.device)
    torch.manual_seed(0)
    trajectory = [(0, held_nll(model, held), 0.0)]
    with tf32(with_tf32):  # held_nll switches it off for its own pass
        for k in range(steps):
            # the config is read for train.grad_clip only; the rate is the optimizer's
            loop._train_step(model, model, optimizer, scheduler, batches.batch(k), checkpoint.config, bf16, sums)
            if (k + 1) % every == 0 or k + 1 == steps:
                means, count = sums.take(k + 1, 0)
                trajectory.append((k + 1, held_nll(model, held), means["grad_norm"] / count))
    return trajectory


@torch.no_grad()
def held_nll(model: SpeechVQ, held: Batch) -> float:
    """Teacher-forced NLL (nats per sample) of a held-out batch, eval mode, IEEE float32."""
    model.eval()
    with tf32(False):
        return float(model(held.wav, held.speaker if model.has_speakers else None).nll)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint or exported model (the runs' --init)")
    parser.add_argument("--manifest", required=True, help="training manifest (its speakers in the model's table)")
    parser.add_argument("--cache-dir", required=True, help="the prepared audio (`speechvq prepare`)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=0.5, help="crop length (whole code frames)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--whole-model", action="store_true", help="train the encoder side too in the steps check")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    device = torch.device(args.device)
    checkpoint = load_checkpoint(args.model)
    source = checkpoint.build_model(device)
    config = source.config
    segment = int(round(args.seconds * config.sample_rate))
    cache = AudioCache(args.cache_dir, config.sample_rate, config.level_dbfs)
    entries = read_manifest(args.manifest)
    began = time.monotonic()
    corpus = DeviceCorpus(entries, source.speakers, cache, device)
    if corpus.skipped:  # it leaves them out, and its rows would no longer be the manifest's
        raise SystemExit(f"{corpus.skipped} unreadable file(s) in {args.manifest}: prepare them first")
    result = {"model": args.model, "device": str(device), "batch": args.batch, "seconds": args.seconds,
              "lr": args.lr, "decoder_only": not args.whole_model}
    result["loader_differing_crops"] = loader_check(corpus, cache, entries, segment, min(64, 4 * args.batch), args.seed)
    print(f"loader: {result['loader_differing_crops']} of {min(64, 4 * args.batch)} device crops differ from "
          f"the host's ({len(corpus)} utterances on {device}, {time.monotonic() - began:.0f} s)", flush=True)

    batches = DeviceBatches(corpus, args.batch, segment, seed=args.seed)
    first, held = batches.batch(0), batches.batch(10**6)  # the held-out batch: far past any step's
    reference = gradients(copy.deepcopy(source), first, bf16=False)
    result["gradients"] = {}
    variants = [("eager tf32", False, False, True), ("eager bf16", False, True, True),
                ("compiled bf16", True, True, True), ("compiled fp32", True, False, False)]
    for label, compiled, bf16, with_tf32 in variants:  # (compiled step, bf16, TF32) each
        model = copy.deepcopy(source)
        if compiled:
            model.compile_training()
        found = compare(reference, gradients(model, first, bf16, with_tf32))
        result["gradients"][label] = found
        worst = ", ".join(f"{w['tensor']} cos {w['cosine']:.4f} x{w['norm_ratio']:.3f}" for w in found["worst"])
        print(f"gradients {label} vs eager fp32: global norm x{found['global_norm_ratio']:.4f}, finite "
              f"{found['finite']}, worst: {worst}", flush=True)
    try:
        result["adam_fused_vs_foreach"] = adam_check(source, reference, args.lr)
        print(f"adam: fused vs multi-tensor after 3 steps: largest difference "
              f"{result['adam_fused_vs_foreach']:.2e} of the largest update", flush=True)
    except RuntimeError as err:  # fused Adam on a device without it
        print(f"adam: fused not available here ({str(err)[:200]})", flush=True)

    result["steps"] = {}
    for name in args.paths:
        began = time.monotonic()
        trajectory = steps_check(source, checkpoint, batches, held, PATHS[name], args.steps, args.every, args.lr,
                                 freeze_encoder=not args.whole_model)
        result["steps"][name] = trajectory
        print(f"steps {name:>8}: held-out NLL (gradient norm) " + " ".join(
            f"{step}:{nll:.4f}" + (f"({norm:.2f})" if step else "") for step, nll, norm in trajectory)
              + f" ({time.monotonic() - began:.0f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
