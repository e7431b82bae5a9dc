#!/usr/bin/env python3
"""Time generation on a CUDA GPU: the plain reference step, the CUDA-graph engine and the Triton kernel, one
stream and wide batches.

Before timing, checks on the GPU that each engine computes what the reference computes: the largest
difference of teacher-forced logits, and the first step (if any) where sampled classes differ for the same
draws (float rounding differs between cuDNN's convolutions and the engines' products, so a near-tie can flip
a draw after many steps; the CPU tests check exact equality on small models). Batched rows draw their noise
on the GPU (other draws than a CPU generator, the same distribution).

    python tools/bench_generate_gpu.py                      # paper decoder, random weights
    python tools/bench_generate_gpu.py --engines triton --batches 64 1024 --precisions tf32
    python tools/bench_generate_gpu.py --pitch-lag-taps 5   # a decoder with the pitch-lag input (the shipped one's)

With --pitch-lag-taps every run reads the pitch-lag input (`model.decoder.pitch_lag_taps`; random tables) with
random periods of 40 to 200 samples and every fifth frame unvoiced; both engines carry it.
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


def random_periods(batch: int, n_frames: int, device: torch.device) -> torch.Tensor:
    """Pitch periods int64 `[B, F]` for a decoder with the pitch-lag input: 40 to 200 samples, every fifth
    frame 0 (unvoiced)."""
    period = torch.randint(40, 201, (batch, n_frames), generator=torch.Generator().manual_seed(1))
    period[:, ::5] = 0
    return period.to(device)


def check(name: str, engine: GenerationEngine, model, local, speaker, n: int, period=None) -> None:
    """Print how far the engine is from the reference: teacher-forced logits and sampled classes (`period`:
    the pitch periods `[B, F]` of a decoder with the pitch-lag input, else None)."""
    classes, hop, device = model.classes, model.hop_length, local.device
    inputs = torch.randint(0, classes, (2, n), device=device)
    check_local = local[:2, :, : -(-n // hop)]  # the same frames for both: edge frames depend on what follows
    check_period = None if period is None else period[:2, : -(-n // hop)]
    with torch.no_grad():
        reference_logits = model(inputs, check_local, speaker[:2], period=check_period)
    _, logits = engine.generate(n, check_local, speaker[:2], teacher=inputs.cpu(), period=check_period)
    error = (logits.to(device) - reference_logits).abs().max().item()
    streams = None if period is None else period[:2]
    reference = model.generate(n, local[:2], speaker[:2], generator=torch.Generator().manual_seed(5),
                               period=streams).cpu()
    fast, _ = engine.generate(n, local[:2], speaker[:2], generator=torch.Generator().manual_seed(5), period=streams)
    differ = (fast != reference).any(dim=0).nonzero()
    same = "identical" if differ.numel() == 0 else f"first difference at step {differ[0].item()}"
    print(f"check {name}: teacher-forced logits max |engine - reference| = {error:.2e}; sampled classes with the "
          f"same draws: {same} ({n} steps x 2 streams)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--engines", nargs="+", default=["triton", "graph"], choices=["triton", "graph"])
    parser.add_argument("--triton", nargs="+", default=["tf32", "tf32x3"], metavar="PRECISION[:BLOCK_B[:WARPS]]",
                        help="triton variants: products' precision (tf32, tf32x3, ieee), streams and warps per "
                             "program (default: chosen by batch size)")
    parser.add_argument("--check-samples", type=int, default=2048)
    parser.add_argument("--plain-samples", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=32768, help="samples of the one-stream runs")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256, 1024, 2048])
    parser.add_argument("--graph-max-batch", type=int, default=2048)
    parser.add_argument("--batch-samples", type=int, default=8192, help="samples per stream in the batched runs")
    parser.add_argument("--pitch-lag-taps", type=int, default=0,
                        help="give the decoder the pitch-lag input with this many taps (odd)")
    parser.add_argument("--device", default="cuda", help="cpu only to smoke-test this script (with "
                                                          "TRITON_INTERPRET=1 for the triton engine)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_generate_gpu: no CUDA device")

    torch.backends.cudnn.allow_tf32 = False  # the reference's convolutions in full fp32, like the engines' products
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    model, latent_dim, speaker_dim, rate = build_decoder(args.preset, args.pitch_lag_taps)
    model = model.to(device)
    hop = model.hop_length
    widest = max(args.batches + [2])
    frames = -(-max(args.samples, args.batch_samples, args.check_samples) // hop)
    local = torch.randn(widest, latent_dim, frames, device=device)
    speaker = torch.randn(widest, speaker_dim, device=device)
    period = random_periods(widest, frames, device) if args.pitch_lag_taps else None
    periods = (lambda batch: None) if period is None else (lambda batch: period[:batch])  # noqa: E731
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, decoder '{args.preset}'"
          + (f", pitch-lag input of {args.pitch_lag_taps} taps" if args.pitch_lag_taps else ""), flush=True)

    engines = {}
    if "graph" in args.engines:
        engines["graph"] = GenerationEngine(model, "graph")
    for variant in args.triton if "triton" in args.engines else []:
        precision, block_b, warps = (variant.split(":") + ["", ""])[:3]
        engines[f"triton {variant}"] = GenerationEngine(model, "triton", precision=precision,
                                                        block_b=int(block_b) if block_b else None,
                                                        num_warps=int(warps) if warps else None)
    for label, engine in list(engines.items()):
        try:
            seconds = cuda_timed(lambda: check(label, engine, model, local, speaker, args.check_samples, period))
        except Exception as error:  # noqa: BLE001  (a variant that does not build is reported, the rest still run)
            print(f"{label}: failed: {type(error).__name__}: {str(error)[:2000]}", flush=True)
            del engines[label]
            continue
        print(f"  ({label}: check and first compile/capture {seconds:.1f} s)", flush=True)

    g = torch.Generator().manual_seed(0)
    rows = []
    model.generate(hop, local[:1], speaker[:1], generator=g, period=periods(1))  # warm-up
    seconds = cuda_timed(lambda: model.generate(args.plain_samples, local[:1], speaker[:1], generator=g,
                                                period=periods(1)))
    rows.append(("plain b1 (reference)", 1, args.plain_samples / seconds))
    for label, engine in engines.items():
        engine.generate(hop, local[:1], speaker[:1], generator=g, period=periods(1))
        seconds = cuda_timed(lambda: engine.generate(args.samples, local[:1], speaker[:1], generator=g,
                                                     period=periods(1)))
        rows.append((f"{label} b1", 1, args.samples / seconds))
        print(f"{rows[-1][0]}: {rows[-1][2]:,.0f} samples/s", flush=True)
    for batch in args.batches:
        for label, engine in engines.items():
            if label == "graph" and batch > args.graph_max_batch:
                continue
            gpu_generator = torch.Generator(device=device).manual_seed(0)
            engine.generate(hop, local[:batch], speaker[:batch], generator=gpu_generator,  # compile / capture
                            period=periods(batch))
            seconds = cuda_timed(lambda: engine.generate(args.batch_samples, local[:batch], speaker[:batch],
                                                         generator=gpu_generator, period=periods(batch)))
            rows.append((f"{label} b{batch}", batch, batch * args.batch_samples / seconds))
            print(f"{rows[-1][0]}: {rows[-1][2]:,.0f} samples/s", flush=True)
    plain = rows[0][2]
    print()
    for row_name, batch, value in rows:
        print(f"{row_name:>24}: {value:12,.0f} samples/s aggregate ({value / rate:8.2f} x real time, "
              f"{value / batch / rate:.3f} x per stream; {value / plain:7.1f} x plain b1)")


if __name__ == "__main__":
    main()
