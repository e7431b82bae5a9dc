#!/usr/bin/env python3
"""Time autoregressive generation of the default decoder on every path, in one run, with ratios.

The decoder of a preset (default `paper`: 20 layers, residual 64, gate 128, skip 256, conditioned on 64-dim
codes at hop 64 and a 64-dim speaker vector), randomly initialised (speed does not depend on the weights):

    naive              a teacher-forced pass over the last receptive field (2047 samples) for every sample
    plain b1, b8       WaveNet.generate: the reference incremental path (ring buffers, per-frame conditioning),
                       one stream and --batch streams (aggregate samples/s)
    fused torch b1     the packed step in eager PyTorch (the fallback without a compiled loop)
    numba b1           the numba loop, one stream
    native b1          the C loop, one stream; "reduced": its weights stored as IEEE halves (`--precision
                       reduced`); built for this CPU (-march=native), and with --march for other instruction
                       sets too (e.g. x86-64-v3: the AVX2 build an AVX2-only CPU gets), timed on this CPU
    chunked 10 s       one 10-second utterance (--utterance-s), chunk-parallel, end to end (packing,
                       conditioning, generation, cross-fades), on --threads threads: with the C loop (full and
                       reduced), and with numba
    batched 8 x 2 s    eight utterances decoded together as eight streams (aggregate samples/s), as
                       `speechvq decode a.svq ... h.svq` does by default (eight files are a wide enough batch,
                       so they are not also cut into chunks; see DecodeOptions.wide_batch)
    ceiling            samples/s this CPU could reach if a step were pure matrix arithmetic at the rate of a
                       large matrix product measured here (FLOPs per sample from the decoder's sizes)
    auto               how `--engine auto` would rank the engines here, timed now as its planner times them
                       (samples/s, one stream per thread and a wide batch, --threads threads)

    python tools/bench_generate.py
    python tools/bench_generate.py --march x86-64-v3 x86-64      # also the AVX2 and baseline builds
    python tools/bench_generate.py --threads 2 --samples 4000 --json results.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import torch

from speechvq.config import load_config
from speechvq.generation import DecodeOptions, DecodeRequest, GenerationEngine, decode_requests, native, planner
from speechvq.models.wavenet import WaveNet, frame_noise, sample_logits


def build_decoder(preset: str, pitch_lag_taps: int = 0) -> tuple[WaveNet, int, int, int]:
    """The preset's decoder, randomly initialised (with `pitch_lag_taps` > 0 its pitch-lag tables random too,
    std 0.1: they start at zero in training, which would hide the input); returns (decoder, latent dim, speaker
    dim, sample rate)."""
    cfg = load_config(preset).model
    decoder_cfg = dataclasses.replace(cfg.decoder, pitch_lag_taps=pitch_lag_taps)
    model = WaveNet(decoder_cfg, classes=cfg.mu_law_classes, hop_length=cfg.hop_length,
                    local_channels=cfg.encoder.latent_dim, global_channels=cfg.speaker_dim).eval()
    if pitch_lag_taps:
        torch.nn.init.normal_(model.lag_embedding.weight, std=0.1)
    return model, cfg.encoder.latent_dim, cfg.speaker_dim, cfg.sample_rate


def flops_per_sample(model: WaveNet) -> int:
    """Multiply-adds x 2 of one generation step, conditioning excluded (it is computed per frame)."""
    c = model.config
    half = c.gate_channels // 2
    per_layer = 2 * (2 * c.residual_channels * c.gate_channels + half * c.residual_channels + half * c.skip_channels)
    return c.n_layers * per_layer + 2 * (c.skip_channels * c.skip_channels + c.skip_channels * model.classes)


def matmul_gflops(threads: int, size: int = 1024, repeats: int = 10) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


@torch.no_grad()
def naive_generate(model: WaveNet, local, speaker, history, n_samples: int, generator) -> torch.Tensor:
    """A forward pass over a frame-aligned window covering the receptive field, for every sample."""
    hop, field = model.hop_length, model.receptive_field
    samples = history.clone()
    for _ in range(n_samples):
        t = samples.shape[1]
        start = max(0, (t - field) // hop * hop)
        logits = model(samples[:, start:t], local[:, :, start // hop: -(-t // hop)], speaker)[:, :, -1]
        noise = frame_noise(generator, 1, 1, model.classes)[0]
        samples = torch.cat([samples, sample_logits(logits, 1.0, noise)[:, None]], dim=1)
    return samples[:, history.shape[1]:]


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def cpu_line() -> str:
    """One line naming this CPU, so that a printed run says which machine it measured: model name, x86 family
    and model (AMD's "AMD EPYC" alone does not say which Zen), logical CPUs, and the per-core L2 size (at batch
    1 a float32 step reads 3.4 MB of weights: whether halves fit L2 decides much of the ranking)."""
    fields = {}
    try:
        for line in open("/proc/cpuinfo").read().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    try:
        l2 = open("/sys/devices/system/cpu/cpu0/cache/index2/size").read().strip()
    except OSError:
        l2 = "?"
    model = planner.cpu_description()["model"]
    return (f"CPU: {model} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')}), "
            f"{os.cpu_count()} logical CPUs, L2 {l2} per core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--naive-samples", type=int, default=20)
    parser.add_argument("--samples", type=int, default=2000, help="samples for the plain and fused paths")
    parser.add_argument("--fast-samples", type=int, default=16000, help="samples for the compiled path, batch 1")
    parser.add_argument("--utterance-s", type=float, default=10.0, help="length of the chunk-parallel utterance")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batch-s", type=float, default=2.0, help="length of each batched utterance")
    parser.add_argument("--threads", type=int, default=2, help="threads for the chunked and batched runs")
    parser.add_argument("--march", nargs="*", default=[],
                        help="also time the C loop built for these -march targets (e.g. x86-64-v3 x86-64)")
    parser.add_argument("--json", help="append the results as one JSON line to this file")
    args = parser.parse_args()

    torch.manual_seed(0)
    model, latent_dim, speaker_dim, rate = build_decoder(args.preset)
    hop, field = model.hop_length, model.receptive_field
    frames = -(-int(max(args.utterance_s, args.batch_s) * rate + field + hop) // hop)
    local = torch.randn(args.batch, latent_dim, frames)
    speaker = torch.randn(args.batch, speaker_dim)
    flops = flops_per_sample(model)
    print(cpu_line())
    print(f"decoder '{args.preset}': {len(model.layers)} layers, receptive field {field} samples, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {flops / 1e6:.2f} MFLOP per sample")

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    rates = {}
    history = torch.randint(0, model.classes, (1, field + hop))
    rates["naive_b1"] = args.naive_samples / timed(
        lambda: naive_generate(model, local[:1], speaker[:1], history, args.naive_samples, g))
    model.generate(hop, local[:1], speaker[:1], generator=g)  # warm-up
    rates["plain_b1"] = args.samples / timed(lambda: model.generate(args.samples, local[:1], speaker[:1], generator=g))
    rates[f"plain_b{args.batch}"] = args.batch * args.samples / timed(
        lambda: model.generate(args.samples, local, speaker, generator=g))
    fused = GenerationEngine(model, "torch", threads=1)
    rates["fused_torch_b1"] = args.samples / timed(lambda: fused.generate(args.samples, local[:1], speaker[:1], generator=g))
    compile_s = {}
    paths = {"numba": ("numba", "full", None), "native": ("native", "full", None),
             "native_reduced": ("native", "reduced", None)}
    for march in args.march:
        if not native.runs_here(march):
            print(f"skipping -march={march}: its code does not run on this CPU")
            continue
        paths[f"native@{march}"] = ("native", "full", march)
        if native.available("fp16", march):  # baseline x86-64 has no half-to-float conversion
            paths[f"native_reduced@{march}"] = ("native", "reduced", march)
    for march in [None] + [m for m in args.march if f"native@{m}" in paths]:
        print(f"native build -march={march or native.default_march()}: {native.describe_target(march)}")
    for name, (engine_name, precision, march) in paths.items():
        fast = GenerationEngine(model, engine_name, threads=1, precision=precision, march=march)
        compile_s[name] = timed(lambda: fast.generate(hop, local[:1], speaker[:1], generator=g))  # build or load
        rates[f"{name}_b1"] = args.fast_samples / timed(
            lambda: fast.generate(args.fast_samples, local[:1], speaker[:1], generator=g))

    torch.set_num_threads(args.threads)
    utterance_samples = int(args.utterance_s * rate)
    latents = local[0, :, : -(-utterance_samples // hop)]
    batch_samples = int(args.batch_s * rate)
    requests = [DecodeRequest(local[i, :, : -(-batch_samples // hop)], speaker[i], batch_samples)
                for i in range(args.batch)]
    chunked_rtf = {}
    for name, (engine_name, precision, march) in paths.items():
        def chunked():
            engine = GenerationEngine(model, engine_name, threads=args.threads, precision=precision,
                                      march=march)  # packing
            decode_requests(engine, [DecodeRequest(latents, speaker[0], utterance_samples)], DecodeOptions(), rate,
                            generator=g)

        chunked_rtf[name] = timed(chunked) / args.utterance_s
        batched_engine = GenerationEngine(model, engine_name, threads=args.threads, precision=precision, march=march)
        batched_s = timed(lambda: decode_requests(batched_engine, requests, DecodeOptions(), rate, generator=g))
        rates[f"{name}_batched_aggregate"] = args.batch * batch_samples / batched_s
    gflops = {t: matmul_gflops(t) for t in (1, 2)}
    rankings = {}  # what the planner would measure now (fresh timings, not its cache), for each C build
    for march in [None] + [m for m in args.march if f"native@{m}" in paths]:
        for streams in (args.threads, planner.WIDE_STREAMS_PER_THREAD * args.threads):
            measured = {c: planner.measure_rate(model, c, args.threads, streams, march)
                        for c in planner.candidates("reduced", march)}
            rankings[f"-march={march or native.default_march()}, {streams} streams"] = " > ".join(
                f"{c.engine}/{c.precision} {rate:,.0f}" for c, rate in sorted(measured.items(), key=lambda i: -i[1]))

    for name, value in rates.items():
        print(f"{name:>28}: {value:10.0f} samples/s  ({value / rate:.3f} x real time)")
    for name, rtf in chunked_rtf.items():
        label = f"{name} chunked {args.utterance_s:g} s"
        print(f"{label:>28}: {utterance_samples / rtf / args.utterance_s:10.0f} samples/s of output, "
              f"real-time factor {rtf:.2f} ({args.threads} threads, end to end)")
    print("first call (compile, or load the cached build): "
          + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in compile_s.items()))
    print(f"matrix product: {gflops[1]:.0f} GFLOP/s on 1 thread, {gflops[2]:.0f} on 2 -> ceiling "
          f"{gflops[1] * 1e9 / flops:,.0f} samples/s per core ({gflops[1] * 1e9 / flops / rate:.1f}x real time)")
    plain = rates["plain_b1"]
    print("b1 / plain b1: " + ", ".join(f"{name} {rates[name + '_b1'] / plain:.1f}x" for name in paths)
          + f" (target >= 10); fused torch / plain: {rates['fused_torch_b1'] / plain:.1f}x (target >= 3); "
          f"plain / naive: {plain / rates['naive_b1']:.0f}x; "
          f"plain b{args.batch} / b1 (aggregate): {rates[f'plain_b{args.batch}'] / plain:.1f}x")
    for name in paths:
        print(f"{name}: b1 / numba b1 {rates[name + '_b1'] / rates['numba_b1']:.2f}; {args.utterance_s:g} s utterance "
              f"real-time factor {chunked_rtf[name]:.2f} (target <= 0.5); batched {args.batch} x {args.batch_s:.0f} s: "
              f"{rates[f'{name}_batched_aggregate'] / rate:.2f}x real time in aggregate (target >= 2)")
    for key, ranking in rankings.items():
        print(f"auto ranking ({args.threads} threads, {key}): {ranking}")
    if args.json:
        with open(args.json, "a") as handle:
            handle.write(json.dumps({"cpu": cpu_line(), "preset": args.preset, "threads": args.threads, **rates,
                                     "chunked_rtf": chunked_rtf, "gflops": gflops, "auto": rankings,
                                     "flops_per_sample": flops}) + "\n")


if __name__ == "__main__":
    main()
