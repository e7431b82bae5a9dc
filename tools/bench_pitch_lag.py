#!/usr/bin/env python3
"""What the pitch-lag input costs in generation: the C loop with and without it, in one run, as ratios.

The paper decoder (random weights: speed does not depend on them) and its twin with `pitch_lag_taps` taps read
`--period` samples back throughout (every frame voiced; 40 is 400 Hz, the shortest period of
the default pitch stream, 100 is 160 Hz). The C loop reads the taps itself from a history of the classes it
has drawn (`NativeRunner.set_lag_table`): five embedding rows summed per step and stream. Timed on this CPU for
each --march build (e.g. x86-64-v3, the AVX2 build an AVX2-only machine gets), alternating plain and lag calls.
(Before 2026-12-03 the engine ran each block in pieces of at most period - taps // 2 steps with the taps'
vectors gathered in torch per piece, as the numba and torch engines still do: 0.48-0.85 of the plain speed.)

    python tools/bench_pitch_lag.py --march native x86-64-v3 --streams 1 8
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from speechvq.config import load_config
from speechvq.generation import GenerationEngine
from speechvq.models.wavenet import WaveNet


def timed(engine: GenerationEngine, n_samples: int, conditioning: torch.Tensor, period) -> float:
    """Seconds for one `generate` call (sampling at temperature 1, fixed seed)."""
    start = time.perf_counter()
    engine.generate(n_samples, generator=torch.Generator().manual_seed(0), conditioning=conditioning, period=period)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--taps", type=int, default=5)
    parser.add_argument("--period", type=int, nargs="*", default=[40, 100])
    parser.add_argument("--streams", type=int, nargs="*", default=[1, 8])
    parser.add_argument("--march", nargs="*", default=["native", "x86-64-v3"])
    parser.add_argument("--precision", default="fp16", choices=["fp32", "fp16"])
    parser.add_argument("--seconds", type=float, default=1.0, help="audio generated per stream per call")
    parser.add_argument("--repeats", type=int, default=3, help="calls per variant (the fastest counts)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    config = load_config(args.preset).model
    torch.manual_seed(0)
    plain = WaveNet(config.decoder, config.mu_law_classes, config.hop_length, config.encoder.latent_dim).eval()
    lag_config = dataclasses.replace(config.decoder, pitch_lag_taps=args.taps)
    lagged = WaveNet(lag_config, config.mu_law_classes, config.hop_length, config.encoder.latent_dim).eval()
    lagged.load_state_dict(plain.state_dict(), strict=False)
    torch.nn.init.normal_(lagged.lag_embedding.weight, std=0.1)
    hop, n_samples = config.hop_length, int(args.seconds * config.sample_rate)
    print(f"{args.preset} decoder, native/{args.precision}, {args.threads} threads, {n_samples} samples per stream, "
          f"best of {args.repeats}; lag: {args.taps} taps")
    print("| march | streams | period | plain samples/s | lag samples/s | lag / plain |")
    print("| --- | --- | --- | --- | --- | --- |")
    for march in args.march:
        engines = {name: GenerationEngine(model, "native", args.threads, precision=args.precision, march=march)
                   for name, model in (("plain", plain), ("lag", lagged))}
        for streams in args.streams:
            conditioning = 0.1 * torch.randn(streams, -(-n_samples // hop), config.decoder.n_layers,
                                             config.decoder.gate_channels, generator=torch.Generator().manual_seed(1))
            for period_samples in args.period:
                period = torch.full(conditioning.shape[:2], period_samples)
                timed(engines["plain"], hop, conditioning, None)  # warm-up: build or load the library
                timed(engines["lag"], hop, conditioning, period)
                best = {"plain": float("inf"), "lag": float("inf")}
                for _ in range(args.repeats):  # alternating: drift of a noisy machine hits both alike
                    best["plain"] = min(best["plain"], timed(engines["plain"], n_samples, conditioning, None))
                    best["lag"] = min(best["lag"], timed(engines["lag"], n_samples, conditioning, period))
                rate = {name: streams * n_samples / seconds for name, seconds in best.items()}
                print(f"| {march} | {streams} | {period_samples} | {rate['plain']:,.0f} | {rate['lag']:,.0f} | "
                      f"{rate['lag'] / rate['plain']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
