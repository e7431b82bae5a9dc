#!/usr/bin/env python3
"""Time training steps (forward, backward, Adam) of a preset's model on random speech-like batches.

Prints seconds per step, audio samples per second, and the projected time of 10k steps; on CUDA also the peak
memory and a bf16 autocast run beside the fp32 one, measured in the same process.

    python tools/bench_train.py                          # paper preset, batch 8 x 1 s, this machine's device
    python tools/bench_train.py --batch 8 --seconds 0.5 --steps 3 --threads 2
    python tools/bench_train.py --preset conf.yaml --fit-seconds 400   # + the max_steps that fit in 400 s

With --fit-seconds, the last line is `fit: max_steps=N`: the steps of the config's batch and precision that fit
in that time, after an allowance of 15% for data loading, logging, validation and checkpoints.
"""

from __future__ import annotations

import argparse
import time

import torch

from speechvq.config import load_config
from speechvq.models import SpeechVQ


def time_steps(model: SpeechVQ, optimizer, wav, speaker, steps: int, bf16: bool) -> float:
    """Mean seconds of one full training step over `steps` steps, after one warm-up step."""
    device = wav.device

    def one_step():
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(wav, speaker)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch", type=int, default=None, help="default: the config's data.batch_size")
    parser.add_argument("--seconds", type=float, default=None, help="crop length (default: data.segment_s)")
    parser.add_argument("--fit-seconds", type=float, default=None,
                        help="print the train.max_steps that fit in this many seconds")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--speakers", type=int, default=12)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = load_config(args.preset)
    cfg = config.model
    args.batch = args.batch or config.data.batch_size
    args.seconds = args.seconds or config.data.segment_s
    device = torch.device(args.device)
    model = SpeechVQ(cfg, speakers=[f"s{i}" for i in range(args.speakers)]).to(device).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    n_samples = int(args.seconds * cfg.sample_rate)
    t = torch.arange(n_samples, device=device) / cfg.sample_rate
    wav = (0.3 * torch.sin(2 * torch.pi * 140 * t) + 0.02 * torch.randn(args.batch, 1, n_samples, device=device))
    speaker = torch.arange(args.batch, device=device) % args.speakers
    print(f"preset {args.preset}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, batch "
          f"{args.batch} x {args.seconds} s, device {device}" + ("" if device.type == "cuda" else
                                                                  f", {args.threads} thread(s)"))
    if device.type == "cuda":  # as the training loop sets it
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    runs = [("fp32", False)] + ([("bf16", True)] if device.type == "cuda" else [])
    step_seconds = {}
    for name, bf16 in runs:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = time_steps(model, optimizer, wav, speaker, args.steps, bf16)
        rate = args.batch * n_samples / seconds
        line = (f"{name}: {seconds:.3f} s/step, {rate:,.0f} samples/s ({rate / cfg.sample_rate:.2f} s of audio per s),"
                f" 10k steps in {seconds * 10_000 / 3600:.1f} h")
        if device.type == "cuda":
            line += f", peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
        print(line, flush=True)
        step_seconds[name] = seconds
    if args.fit_seconds is not None:
        precision = config.train.precision if config.train.precision in step_seconds else "fp32"
        print(f"fit: max_steps={int(args.fit_seconds / (1.15 * step_seconds[precision]))}")


if __name__ == "__main__":
    main()
