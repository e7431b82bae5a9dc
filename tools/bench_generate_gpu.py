#!/usr/bin/env python3
"""Time generation on a CUDA GPU: the plain reference step against the CUDA-graph engine, one stream and wide batches.

Before timing, checks on the GPU that the graph engine computes what the reference computes: the largest
difference of teacher-forced logits, and the first step (if any) where sampled classes differ for the same
draws (float rounding differs between cuDNN's convolutions and the graph's matrix products, so a near-tie can
flip a draw after many steps; the CPU tests check exact equality on small models).

    python tools/bench_generate_gpu.py                      # paper decoder, random weights
    python tools/bench_generate_gpu.py --batches 64 1024 --batch-samples 4096
"""

from __future__ import annotations

import argparse
import time

import torch

from speechvq.generation import GenerationEngine

from bench_generate import build_decoder  # noqa: E402  (tools/ is the script's folder)


def cuda_timed(function) -> float:
    synchronize = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    synchronize()
    start = time.perf_counter()
    function()
    synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--check-samples", type=int, default=2048)
    parser.add_argument("--plain-samples", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=32768, help="samples of the one-stream graph run")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256, 1024])
    parser.add_argument("--batch-samples", type=int, default=8192, help="samples per stream in the batched runs")
    parser.add_argument("--cpu-noise-max-batch", type=int, default=256,
                        help="widest batch also timed with noise drawn on the CPU (identical samples to the CPU "
                             "paths, but the host becomes the bottleneck)")
    parser.add_argument("--device", default="cuda", help="cpu only to smoke-test this script (the graph engine "
                                                          "then runs its blocks eagerly)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_generate_gpu: no CUDA device")

    torch.backends.cudnn.allow_tf32 = False  # the reference's convolutions in full fp32, like the graph's products
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    model, latent_dim, speaker_dim, rate = build_decoder(args.preset)
    model = model.to(device)
    hop, classes = model.hop_length, model.classes
    widest = max(args.batches + [2])
    frames = -(-max(args.samples, args.batch_samples, args.check_samples) // hop)
    local = torch.randn(widest, latent_dim, frames, device=device)
    speaker = torch.randn(widest, speaker_dim, device=device)
    print(f"{torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}, torch {torch.__version__}, decoder '{args.preset}'", flush=True)

    engine = GenerationEngine(model, "graph")
    n = args.check_samples
    inputs = torch.randint(0, classes, (2, n), device=device)
    check_local = local[:2, :, : -(-n // hop)]  # the same frames for both: edge frames depend on what follows
    with torch.no_grad():
        reference_logits = model(inputs, check_local, speaker[:2])
    _, logits = engine.generate(n, check_local, speaker[:2], teacher=inputs.cpu())
    print(f"check: teacher-forced logits, max |graph - reference| = "
          f"{(logits.to(device) - reference_logits).abs().max().item():.2e} over {n} steps", flush=True)
    reference = model.generate(n, local[:2], speaker[:2], generator=torch.Generator().manual_seed(5)).cpu()
    fast, _ = engine.generate(n, local[:2], speaker[:2], generator=torch.Generator().manual_seed(5))
    differ = (fast != reference).any(dim=0).nonzero()
    print(f"check: sampled classes, same draws: " + ("identical" if differ.numel() == 0 else
                                                      f"first difference at step {differ[0].item()}") +
          f" over {n} steps x 2 streams", flush=True)

    rows = []
    g = torch.Generator().manual_seed(0)
    model.generate(hop, local[:1], speaker[:1], generator=g)  # warm-up
    seconds = cuda_timed(lambda: model.generate(args.plain_samples, local[:1], speaker[:1], generator=g))
    rows.append(("plain b1 (reference)", 1, args.plain_samples / seconds))
    capture = cuda_timed(lambda: engine.generate(hop, local[:1], speaker[:1], generator=g))
    seconds = cuda_timed(lambda: engine.generate(args.samples, local[:1], speaker[:1], generator=g))
    rows.append(("graph b1", 1, args.samples / seconds))
    print(f"graph capture (first call, batch 1): {capture:.1f} s", flush=True)
    for batch in args.batches:
        gpu_generator = torch.Generator(device=device).manual_seed(0)
        engine.generate(hop, local[:batch], speaker[:batch], generator=gpu_generator)  # capture for this batch
        seconds = cuda_timed(lambda: engine.generate(args.batch_samples, local[:batch], speaker[:batch],
                                                     generator=gpu_generator))
        rows.append((f"graph b{batch}, GPU noise", batch, batch * args.batch_samples / seconds))
        if batch <= args.cpu_noise_max_batch:
            seconds = cuda_timed(lambda: engine.generate(args.batch_samples, local[:batch], speaker[:batch],
                                                         generator=g))
            rows.append((f"graph b{batch}, CPU noise", batch, batch * args.batch_samples / seconds))
        print(f"{rows[-1][0]}: done", flush=True)
    plain = rows[0][2]
    for name, batch, value in rows:
        print(f"{name:>24}: {value:12,.0f} samples/s aggregate ({value / rate:7.2f} x real time, "
              f"{value / batch / rate:.3f} x per stream; {value / plain:6.1f} x plain b1)")


if __name__ == "__main__":
    main()
