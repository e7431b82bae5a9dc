#!/usr/bin/env python3
"""Time autoregressive generation of the default WaveNet decoder, naive against incremental.

Three ways of producing samples from the same randomly initialised decoder (the `paper` preset: 20 layers,
residual 64, gate 128, skip 256, conditioned on 64-dim codes at hop 64 and a 64-dim speaker vector):

    naive           recompute a teacher-forced pass over the last receptive field (2047 samples) per sample
    incremental B=1 WaveNet.generate: per-layer ring buffers, conditioning projected once per frame
    incremental B=8 the same with eight streams at once (aggregate samples/s)

All three are timed in this one run, so the ratios hold on a noisy machine even when the absolute rates do not.

    python tools/bench_generate.py                       # defaults: 20 naive samples, 2000 incremental
    python tools/bench_generate.py --threads 1 --samples 4000 --json results.jsonl
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from speechvq.config import load_config
from speechvq.models.wavenet import WaveNet, sample_logits


def build_decoder(preset: str) -> tuple[WaveNet, int, int]:
    cfg = load_config(preset).model
    model = WaveNet(cfg.decoder, classes=cfg.mu_law_classes, hop_length=cfg.hop_length,
                    local_channels=cfg.encoder.latent_dim, global_channels=cfg.speaker_dim).eval()
    return model, cfg.encoder.latent_dim, cfg.speaker_dim


@torch.no_grad()
def naive_generate(model: WaveNet, local: torch.Tensor, speaker: torch.Tensor, history: torch.Tensor,
                   n_samples: int, generator: torch.Generator) -> torch.Tensor:
    """Generate by running `forward` over a frame-aligned window covering the receptive field, per sample.

    history: int64 [B, H] of already generated classes (H >= receptive field) that the first window reads.
    """
    hop, field = model.hop_length, model.receptive_field
    samples = history.clone()
    for _ in range(n_samples):
        t = samples.shape[1]  # position of the input being fed: the newest sample so far
        start = max(0, (t - field) // hop * hop)  # frame-aligned, so the window's conditioning lines up
        window = samples[:, start:t]
        logits = model(window, local[:, :, start // hop: -(-t // hop)], speaker)[:, :, -1]
        samples = torch.cat([samples, sample_logits(logits, 1.0, generator)[:, None]], dim=1)
    return samples[:, history.shape[1]:]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default="paper", help="config preset whose decoder is timed")
    parser.add_argument("--naive-samples", type=int, default=20)
    parser.add_argument("--samples", type=int, default=2000, help="samples per stream for the incremental path")
    parser.add_argument("--batch", type=int, default=8, help="streams for the batched incremental run")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", help="append the results as one JSON line to this file")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, latent_dim, speaker_dim = build_decoder(args.preset)
    hop, field = model.hop_length, model.receptive_field
    n_frames = -(-(field + hop + args.naive_samples + args.samples) // hop)
    local = torch.randn(args.batch, latent_dim, n_frames)
    speaker = torch.randn(args.batch, speaker_dim)
    generator = torch.Generator().manual_seed(0)
    print(f"decoder '{args.preset}': {len(model.layers)} layers, receptive field {field} samples, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {args.threads} thread(s)")

    model.generate(hop, local=local[:1], speaker=speaker[:1])  # warm-up (allocator, kernels)
    history = torch.randint(0, model.classes, (1, field + hop))
    naive_s = timed(lambda: naive_generate(model, local[:1], speaker[:1], history, args.naive_samples, generator))
    single_s = timed(lambda: model.generate(args.samples, local=local[:1], speaker=speaker[:1], generator=generator))
    batch_s = timed(lambda: model.generate(args.samples, local=local, speaker=speaker, generator=generator))

    rates = {
        "naive_b1": args.naive_samples / naive_s,
        "incremental_b1": args.samples / single_s,
        f"incremental_b{args.batch}": args.batch * args.samples / batch_s,
    }
    real_time = load_config(args.preset).model.sample_rate
    for name, rate in rates.items():
        print(f"{name:>18}: {rate:10.1f} samples/s  ({rate / real_time:.4f} x real time)")
    print(f"incremental b1 / naive b1: {rates['incremental_b1'] / rates['naive_b1']:.1f}x")
    print(f"incremental b{args.batch} / incremental b1 (aggregate): "
          f"{rates[f'incremental_b{args.batch}'] / rates['incremental_b1']:.2f}x")
    if args.json:
        with open(args.json, "a") as handle:
            handle.write(json.dumps({"preset": args.preset, "threads": args.threads, **rates}) + "\n")


if __name__ == "__main__":
    main()
