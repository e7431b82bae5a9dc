#!/usr/bin/env python3
"""Time training steps (forward, backward, clipping, Adam) of a preset's model, change by change.

Each variant adds one change to the one before, all in the same process on the same speech-like batch, so the
ratios compare like with like on a noisy machine:

    before     the step as the shipped model was trained: eight `.item()` reads and a finiteness check per
               step (each waits for the device), Adam's multi-tensor update
    fp32       (bf16 configs on CUDA) the no-sync step below in IEEE float32, TF32 off, as a float32 run
               computes: what leaving bf16 costs (not part of the chain of ratios below)
    no-sync    statistics summed on the device and read once per interval (what `speechvq train` does now)
    fused      + Adam's fused single-kernel update (CUDA only)
    batch N    the same at other batch sizes (--batches): the probe that chooses the batch
    compiled   + torch.compile of the decoder's teacher-forced loss, at the chosen batch (--compile)

    python tools/bench_train.py                                   # paper preset, this machine's device
    python tools/bench_train.py --preset tiny --steps 3 --threads 2
    python tools/bench_train.py --preset conf.yaml --batches 32 64 128 --compile --json probe.json
    python tools/bench_train.py --preset conf.yaml --fit-seconds 400   # + the max_steps that fit in 400 s
    python tools/bench_train.py --loader-manifest train.jsonl --cache-dir data/cache   # + batches/s of loaders

The chosen batch is the smallest whose samples/s is within --tolerance of the best one (a larger batch
takes fewer optimizer steps from the same samples, so it must pay for itself): `choice: batch=N`.
With --fit-seconds, the last line is `fit: max_steps=N`: the steps of the config's batch and precision that fit
in that time, after an allowance of 15% for data loading, logging, validation and checkpoints.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from speechvq.config import load_config
from speechvq.models import SpeechVQ
from speechvq.train.loop import configure_cuda_math


def make_step(model: SpeechVQ, optimizer, bf16: bool, syncs: bool):
    """One training step as a closure over (wav, speaker); `syncs` reads the statistics on the host each step."""
    sums = None

    def one_step(wav, speaker):
        nonlocal sums
        with torch.autocast(device_type=wav.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(wav, speaker)
        if syncs:  # the shipped loop's checks and metrics, each a host round trip
            if not bool(torch.isfinite(out.loss)):
                raise RuntimeError("non-finite loss")
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        optimizer.step()
        values = [out.loss, out.nll, out.vq_loss, out.commitment_loss, out.perplexity, out.used_codes, out.restarts,
                  grad_norm]
        if syncs:
            [float(v.detach()) for v in values]
        else:
            stacked = torch.stack([v.detach().float().reshape(()) for v in values])
            sums = stacked if sums is None else sums + stacked

    return one_step


def check_compiled_gradients(model: SpeechVQ, wav, speaker, bf16: bool, tolerance: float = 0.02) -> bool:
    """Compile the model's training loss and compare its gradients with the eager ones on one batch, tensor by
    tensor (the encoder's come through the code vectors, a path the global norm would hide).

    True when every gradient is finite and each tensor's gradient points the same way as the eager one (cosine
    similarity at least 1 - tolerance) with a norm within `tolerance` of it; bf16 rounding differs between
    fused and unfused kernels, hence a tolerance. Leaves the model compiled.
    """
    def gradients():
        model.zero_grad(set_to_none=True)
        with torch.autocast(device_type=wav.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(wav, speaker)
        out.loss.backward()
        return {name: p.grad.detach().float().clone() for name, p in model.named_parameters() if p.grad is not None}

    eager = gradients()
    model.compile_training()
    compiled = gradients()
    model.zero_grad(set_to_none=True)
    worst, worst_name, ok = 1.0, "", eager.keys() == compiled.keys()
    for name, reference in eager.items():
        other = compiled.get(name)
        if other is None or not bool(torch.isfinite(other).all()):
            ok = False
            continue
        ref_norm, other_norm = reference.norm().item(), other.norm().item()
        if ref_norm == 0.0:
            ok &= other_norm == 0.0
            continue
        cosine = torch.nn.functional.cosine_similarity(reference.flatten(), other.flatten(), dim=0).item()
        score = min(cosine, 1.0 - abs(other_norm / ref_norm - 1.0))
        if score < worst:
            worst, worst_name = score, name
    ok &= worst >= 1.0 - tolerance
    print(f"compiled gradients: {len(compiled)} tensors, worst agreement {worst:.5f} ({worst_name}; 1 = identical)",
          flush=True)
    return ok


def time_steps(step, wav, speaker, steps: int, warmup: int = 2) -> float:
    """Median seconds per step over `steps` timed steps (each timed alone, the device drained first), after
    `warmup` untimed ones (compilation, cuDNN autotuning)."""
    device = wav.device
    for _ in range(warmup):
        step(wav, speaker)

    def drain():
        if device.type == "cuda":
            torch.cuda.synchronize()

    drain()
    # groups of steps, timed together (a single step would time the launch queue, not the work)
    group = max(1, steps // 5)
    times = []
    for _ in range(max(1, steps // group)):
        start = time.perf_counter()
        for _ in range(group):
            step(wav, speaker)
        drain()
        times.append((time.perf_counter() - start) / group)
    return sorted(times)[len(times) // 2]


def speech_like(batch: int, n_samples: int, sample_rate: int, device) -> torch.Tensor:
    """A voiced tone with noise, float32 `[batch, 1, n_samples]` (the codebook's k-means needs varied frames)."""
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(n_samples) / sample_rate
    f0 = 100 + 100 * torch.rand(batch, 1, 1, generator=generator)
    wav = 0.3 * torch.sin(2 * math.pi * f0 * t) + 0.02 * torch.randn(batch, 1, n_samples, generator=generator)
    return wav.to(device)


def time_loaders(args, config, batch: int, n_samples: int, device) -> list[dict]:
    """Batches per second that each loader delivers onto the device, without training."""
    from torch.utils.data import DataLoader

    from speechvq.data import (AudioCache, ResumableBatchSampler, SegmentDataset, collate_segments, read_manifest,
                               read_speakers)
    from speechvq.data.device import DeviceBatches, DeviceCorpus

    entries = read_manifest(args.loader_manifest)
    speakers = read_speakers(args.speakers_file) if args.speakers_file else sorted({e.speaker for e in entries})
    cache = AudioCache(args.cache_dir, config.model.sample_rate, config.model.level_dbfs)
    rows = []
    dataset = SegmentDataset(entries, speakers, cache, n_samples)
    loader = DataLoader(dataset, batch_sampler=ResumableBatchSampler(len(dataset), batch), num_workers=args.workers,
                        collate_fn=collate_segments, pin_memory=device.type == "cuda",
                        persistent_workers=args.workers > 0)
    iterator = iter(loader)
    next(iterator)  # workers started
    start = time.perf_counter()
    for _ in range(args.loader_batches):
        next(iterator).to(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rows.append({"loader": f"workers ({args.workers})", "batches_per_s": args.loader_batches /
                 (time.perf_counter() - start)})
    began = time.perf_counter()
    corpus = DeviceCorpus(entries, speakers, cache, device)
    load_s = time.perf_counter() - began
    batches = iter(DeviceBatches(corpus, batch, n_samples))
    next(batches)
    start = time.perf_counter()
    for _ in range(args.loader_batches):
        next(batches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rows.append({"loader": "device", "batches_per_s": args.loader_batches / (time.perf_counter() - start),
                 "load_s": load_s, "mib": corpus.nbytes / 2**20})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch", type=int, default=None, help="default: the config's data.batch_size")
    parser.add_argument("--batches", type=int, nargs="*", default=[], help="more batch sizes to probe")
    parser.add_argument("--tolerance", type=float, default=0.1,
                        help="choose the smallest batch within this fraction of the best samples/s")
    parser.add_argument("--compile", action="store_true", help="also time the compiled step at the chosen batch")
    parser.add_argument("--seconds", type=float, default=None, help="crop length (default: data.segment_s)")
    parser.add_argument("--fit-seconds", type=float, default=None,
                        help="print the train.max_steps that fit in this many seconds")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--speakers", type=int, default=12)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None, help="write the measurements here")
    parser.add_argument("--loader-manifest", default=None, help="also time the data loaders on this manifest")
    parser.add_argument("--speakers-file", default=None, help="speakers.json for --loader-manifest")
    parser.add_argument("--cache-dir", default="data/cache")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--loader-batches", type=int, default=50)
    parser.add_argument("--loaders-only", action="store_true", help="time only the data loaders")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, as for speechvq train")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = load_config(args.preset, args.overrides)
    cfg = config.model
    base_batch = args.batch or config.data.batch_size
    seconds = args.seconds or config.data.segment_s
    n_samples = int(round(seconds * cfg.sample_rate))
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    bf16 = config.train.precision == "bf16" and cuda
    if cuda:  # as the training loop sets it
        configure_cuda_math(config.train.precision)
    model = SpeechVQ(cfg, speakers=[f"s{i}" for i in range(args.speakers)]).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    print(f"preset {args.preset}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, crops of "
          f"{seconds} s, {'bf16' if bf16 else 'fp32'}, device {torch.cuda.get_device_name(device) if cuda else 'cpu'}"
          + ("" if cuda else f", {args.threads} thread(s)"), flush=True)

    rows = []
    if args.loaders_only:
        if not args.loader_manifest:
            parser.error("--loaders-only needs --loader-manifest")
        result = {"loaders": time_loaders(args, config, base_batch, n_samples, device)}
        for row in result["loaders"]:
            print(f"loader {row['loader']}: {row['batches_per_s']:.1f} batches/s of {base_batch} x {seconds} s",
                  flush=True)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(result, handle, indent=1)
        return

    def measure(name: str, batch: int, fused: bool, syncs: bool, low_precision: bool = bf16) -> float:
        wav = speech_like(batch, n_samples, cfg.sample_rate, device)
        speaker = torch.arange(batch, device=device) % args.speakers
        optimizer = torch.optim.Adam(params, lr=1e-5, fused=fused)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        seconds_per_step = time_steps(make_step(model, optimizer, low_precision, syncs), wav, speaker, args.steps)
        rate = batch * n_samples / seconds_per_step
        row = {"variant": name, "batch": batch, "s_per_step": seconds_per_step, "samples_per_s": rate}
        if cuda:
            row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        row["x_before"] = rate / rows[0]["samples_per_s"] if rows else 1.0
        rows.append(row)
        print(f"{name:>10}  batch {batch:4d}: {seconds_per_step * 1e3:8.1f} ms/step, {rate:13,.0f} samples/s, "
              f"{row['x_before']:.2f}x before" + (f", peak {row['peak_gib']:.1f} GiB" if cuda else ""), flush=True)
        return seconds_per_step

    measure("before", base_batch, fused=False, syncs=True)
    if bf16:  # the cost of training in IEEE float32 instead (a float32 run's settings), for the same step
        configure_cuda_math("fp32")
        measure("fp32", base_batch, fused=False, syncs=False, low_precision=False)
        configure_cuda_math(config.train.precision)
    measure("no-sync", base_batch, fused=False, syncs=False)
    if cuda:
        measure("fused", base_batch, fused=True, syncs=False)
    candidates = {base_batch: rows[-1]["samples_per_s"]}
    for batch in args.batches:
        if batch != base_batch:
            measure("batch", batch, fused=cuda, syncs=False)
            candidates[batch] = rows[-1]["samples_per_s"]
    best = max(candidates.values())
    chosen = min(b for b, rate in candidates.items() if rate >= (1 - args.tolerance) * best)
    compile_ok = None
    if args.compile:
        compile_ok = check_compiled_gradients(model, speech_like(chosen, n_samples, cfg.sample_rate, device),
                                              torch.arange(chosen, device=device) % args.speakers, bf16)
        measure("compiled", chosen, fused=cuda, syncs=False)
        print(f"compile-check: {'ok' if compile_ok else 'FAILED'}", flush=True)
    print(f"choice: batch={chosen}")
    result = {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "preset": args.preset,
              "crop_s": seconds, "precision": "bf16" if bf16 else "fp32", "rows": rows, "chosen_batch": chosen,
              "compile_ok": compile_ok}
    if args.loader_manifest:
        result["loaders"] = time_loaders(args, config, chosen, n_samples, device)
        for row in result["loaders"]:
            print(f"loader {row['loader']}: {row['batches_per_s']:.1f} batches/s of {chosen} x {seconds} s", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
    if args.fit_seconds is not None:
        step_seconds = rows[-1]["s_per_step"] if rows[-1]["batch"] == base_batch else rows[0]["s_per_step"]
        print(f"fit: max_steps={int(args.fit_seconds / (1.15 * step_seconds))}")


if __name__ == "__main__":
    main()
