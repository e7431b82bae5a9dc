#!/usr/bin/env python3
"""Side by side with classic codecs: each codec's actual file bitrate and quality on the same utterances.

Peers run as the command-line programs of their Debian packages, where installed (missing ones are named and
skipped): Codec 2 at 3200, 2400 and 1200 bit/s (c2enc/c2dec, 8 kHz narrowband; package codec2), Opus at 6 kbit/s
(opusenc/opusdec; opus-tools), Speex wideband (speexenc/speexdec, quality 2, about 8 kbit/s; speex), and LPCNet
where its lpcnet_enc/lpcnet_dec programs exist (Debian's codec2 1.0.5 is built without them). speechvq runs
through its real codec (the .svq bytes, decoded with seed 0).

Every decoded file is brought back to 16 kHz, aligned to the input (near its codec's delay: the median of the
files' best lags, see `codec_delay`), and scored with PESQ-WB and STOI (the `eval` extra), MCD and SI-SDR.
A recording without speech (`speechvq.evaluation.has_speech`, as `tools/ship_check.py` decides) is coded, counted
in the bitrate and scored per file, but left out of the means and of the delay: PESQ of silence swings from 1.1
to 3.4 between two decodes both at -81 dBFS (2026-12-05), which says nothing about a codec.
Codec 2 is narrowband (8 kHz): it is scored against the 16 kHz input like the others, so
its missing upper band counts against it, as a listener would hear it. File bitrates include each format's
container and header bytes (Ogg for Opus and Speex, the .svq header for speechvq; Codec 2 files are bare frames).

    python tools/compare_codecs.py --manifest data/manifests/test.jsonl --out exp/compare
    python tools/compare_codecs.py --inputs a.wav b.flac --model exp/paper/best.pt --codecs speechvq opus-6k
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import soundfile
import torch

from speechvq.assets import resolve_model
from speechvq.audio import load_audio, resample
from speechvq.errors import SpeechVQError
from speechvq.evaluation import has_speech
from speechvq.metrics import align, finite_mean, intrusive_scores

RATE = 16000  # the comparison's rate: inputs, decoded outputs and metrics
METRICS = ("pesq_wb", "stoi", "mcd_db", "ffe", "si_sdr_db")


@dataclass(frozen=True)
class ExternalCodec:
    """A codec run as two programs on files.

    `encode` and `decode` are argument lists with the placeholders {input} and {output}; `rate` is the rate of
    the raw or WAV files the programs read and write; `raw` means headerless 16-bit little-endian mono.
    """

    name: str
    encode: tuple[str, ...]
    decode: tuple[str, ...]
    rate: int
    raw: bool
    nominal_bps: Optional[float] = None

    def missing_programs(self) -> list[str]:
        """The programs this codec needs that are not on PATH."""
        return [p for p in {self.encode[0], self.decode[0]} if shutil.which(p) is None]

    def run(self, wav: torch.Tensor, workdir: Path) -> tuple[torch.Tensor, int, float]:
        """Encode and decode float `[T]` audio at RATE; returns (decoded at RATE, encoded bytes, seconds)."""
        source = workdir / ("input.raw" if self.raw else "input.wav")
        encoded, decoded = workdir / "encoded.bin", workdir / ("decoded.raw" if self.raw else "decoded.wav")
        samples = resample(wav, RATE, self.rate).clamp(-1.0, 1.0).numpy()
        if self.raw:
            np.round(samples * 32767).astype("<i2").tofile(source)
        else:
            soundfile.write(source, samples, self.rate, subtype="PCM_16")
        start = time.perf_counter()
        for command, (a, b) in ((self.encode, (source, encoded)), (self.decode, (encoded, decoded))):
            argv = [part.format(input=a, output=b) for part in command]
            result = subprocess.run(argv, capture_output=True, text=True)
            if result.returncode != 0:
                raise SpeechVQError(f"{self.name}: {' '.join(argv)} failed: {result.stderr.strip()[-300:]}")
        seconds = time.perf_counter() - start
        if self.raw:
            out = np.fromfile(decoded, dtype="<i2").astype(np.float32) / 32768.0
            out_rate = self.rate
        else:
            out, out_rate = soundfile.read(decoded, dtype="float32", always_2d=True)
            out = out.mean(axis=1)
        return resample(torch.from_numpy(out), out_rate, RATE), encoded.stat().st_size, seconds


def _codec2(mode: str) -> ExternalCodec:
    return ExternalCodec(f"codec2-{mode}", ("c2enc", mode, "{input}", "{output}"),
                         ("c2dec", mode, "{input}", "{output}"), 8000, True, float(mode))


PEERS = {
    **{f"codec2-{m}": _codec2(m) for m in ("3200", "2400", "1200")},
    "opus-6k": ExternalCodec("opus-6k", ("opusenc", "--quiet", "--bitrate", "6", "{input}", "{output}"),
                             ("opusdec", "--quiet", "--rate", "16000", "{input}", "{output}"), RATE, False, 6000.0),
    "speex-wb": ExternalCodec("speex-wb", ("speexenc", "--wideband", "--quality", "2", "{input}", "{output}"),
                              ("speexdec", "{input}", "{output}"), RATE, False, None),
    "lpcnet": ExternalCodec("lpcnet", ("lpcnet_enc", "-encode", "{input}", "{output}"),
                            ("lpcnet_dec", "-decode", "{input}", "{output}"), RATE, True, 1733.0),
}


def speechvq_codec(model_path: Optional[str], device: str = "cpu") -> Callable:
    """speechvq as a codec with the same signature as ExternalCodec.run (its real .svq bytes)."""
    from speechvq.codec import Codec
    from speechvq.inference import decode_codes

    codec = Codec.from_checkpoint(resolve_model(model_path), device)
    if codec.model.sample_rate != RATE:
        raise SpeechVQError(f"this comparison runs at {RATE} Hz; the model works at {codec.model.sample_rate} Hz")

    def run(wav: torch.Tensor, workdir: Path, speaker: Optional[str] = None):
        voice = speaker if speaker in codec.model.speakers and codec.model.has_voices else None
        start = time.perf_counter()
        data = codec.compress(wav, speaker=voice)
        encoded, _ = codec.read(data)
        decoded = decode_codes(codec.model, encoded, seed=0)
        return decoded, len(data), time.perf_counter() - start

    run.nominal_bps = codec.model.config.bitrate_bps
    return run


MAX_DELAY = RATE // 20  # the widest codec delay searched: 50 ms
REFINE = RATE // 125  # each file's own lag is searched within 8 ms of its codec's delay


def codec_delay(inputs: Sequence[torch.Tensor], decoded: Sequence[torch.Tensor]) -> int:
    """A codec's delay in samples: the median over files of each file's best lag within +-MAX_DELAY.

    A codec delays every file alike, but one file's cross-correlation peak can land far from it when the
    decoded waveform is noisy or parametric: on the test split (2026-12-01) two thirds of the shipped model's
    per-file peaks lay over 128 samples from 0, many 500-640 off, though its output is sample-aligned by
    construction, and Codec 2's spread from about 240 to 540. A misaligned file loses STOI, PESQ and MCD for a
    reason that is not the codec's quality, so files are scored near their codec's median delay.
    """
    return int(np.median([align(a, b, MAX_DELAY)[2] for a, b in zip(inputs, decoded)]))


def scores_at_delay(wav: torch.Tensor, decoded: torch.Tensor, delay: int) -> dict:
    """`intrusive_scores` with the decoded file's lag searched within REFINE samples of `delay`."""
    shifted = decoded[delay:] if delay >= 0 else torch.cat([torch.zeros(-delay), decoded])
    scores = intrusive_scores(wav, shifted, RATE, max_shift=REFINE)
    scores["lag_samples"] += delay
    return scores


def compare(items: Sequence[tuple[str, str, torch.Tensor]], codecs: dict, progress=None) -> dict:
    """Run every codec on every utterance and score it.

    Args:
        items: (utterance id, speaker, float `[T]` audio at RATE).
        codecs: name -> a callable (wav, workdir) -> (decoded at RATE, encoded bytes, seconds), such as
            `ExternalCodec.run` or `speechvq_codec(...)`; speechvq's also takes the speaker.

    Returns:
        {"files": [per codec and utterance: scores, bytes, bitrate, rtf], "codecs": {name: means},
        "without_speech": ids of the utterances left out of the means and of the delay}.
    """
    # decided from the inputs alone, never from a codec's output
    silent = {utterance for utterance, _, wav in items if not has_speech(wav, RATE)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in codecs.items():
            outputs = []
            for utterance, speaker, wav in items:
                workdir = Path(tmp) / name
                workdir.mkdir(exist_ok=True)
                extra = {"speaker": speaker} if name == "speechvq" else {}
                outputs.append((utterance, wav, *run(wav, workdir, **extra)))
                if progress is not None:
                    progress(1)
            spoken = [output for output in outputs if output[0] not in silent] or outputs
            delay = codec_delay([wav for _, wav, *_ in spoken], [decoded for _, _, decoded, _, _ in spoken])
            for utterance, wav, decoded, n_bytes, seconds in outputs:
                seconds_audio = wav.numel() / RATE
                rows.append({"codec": name, "id": utterance, "audio_s": seconds_audio, "bytes": n_bytes,
                             "file_bps": 8 * n_bytes / seconds_audio, "rtf": seconds / seconds_audio,
                             "delay_samples": delay, **scores_at_delay(wav, decoded, delay)})
    summary = {}
    for name in codecs:
        mine = [r for r in rows if r["codec"] == name]
        scored = [r for r in mine if r["id"] not in silent]
        total_s = sum(r["audio_s"] for r in mine)
        summary[name] = {"files": len(mine), "scored_files": len(scored),
                         "file_bps": 8 * sum(r["bytes"] for r in mine) / total_s,
                         "delay_samples": mine[0]["delay_samples"] if mine else None,
                         "nominal_bps": getattr(codecs[name], "nominal_bps", None),
                         "rtf": sum(r["rtf"] * r["audio_s"] for r in mine) / total_s,
                         **{m: finite_mean([r[m] for r in scored]) for m in METRICS}}
    return {"files": rows, "codecs": summary, "without_speech": sorted(silent)}


def markdown_table(summary: dict) -> str:
    """One row per codec, sorted by actual bitrate: bitrate against every metric; "files (scored)" where
    recordings without speech were left out of the means."""
    def fmt(value, digits):
        return "n/a" if value is None else f"{value:.{digits}f}"

    lines = ["| codec | file bit/s | nominal bit/s | PESQ-WB | STOI | MCD (dB) | FFE | SI-SDR (dB) | RTF | files "
             "(scored) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, s in sorted(summary.items(), key=lambda item: item[1]["file_bps"]):
        files = str(s["files"]) if s["scored_files"] == s["files"] else f"{s['files']} ({s['scored_files']})"
        lines.append(f"| {name} | {s['file_bps']:.0f} | {fmt(s['nominal_bps'], 0)} | {fmt(s['pesq_wb'], 2)} | "
                     f"{fmt(s['stoi'], 3)} | {fmt(s['mcd_db'], 2)} | {fmt(s['ffe'], 3)} | {fmt(s['si_sdr_db'], 1)} | "
                     f"{s['rtf']:.3f} | {files} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", help="utterances of a manifest (.jsonl), e.g. a held-out test split")
    source.add_argument("--inputs", nargs="+", help="audio files")
    parser.add_argument("--model", default=None, help="speechvq checkpoint (default: the shipped model)")
    parser.add_argument("--codecs", nargs="+", default=["speechvq", *PEERS], help="which codecs to run")
    parser.add_argument("--max-files", type=int, default=None)
    parser.add_argument("--spread", action="store_true",
                        help="with --max-files: N utterances spread evenly over the manifest (every speaker)")
    parser.add_argument("--max-seconds", type=float, default=None, help="only the first S seconds of each file")
    parser.add_argument("--out", default=None, help="folder for results.json and table.md")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        if args.manifest:
            from speechvq.data.manifest import read_manifest, select_files

            entries = [(e.id, e.speaker, e.path)
                       for e in select_files(read_manifest(args.manifest), args.max_files, args.spread)]
        else:
            entries = [(Path(p).stem, None, p) for p in args.inputs[: args.max_files]]
        items = []
        for utterance, speaker, path in entries:
            wav = load_audio(path, RATE)[0]
            items.append((utterance, speaker, wav[: int(args.max_seconds * RATE)] if args.max_seconds else wav))
        codecs = {}
        for name in args.codecs:
            if name == "speechvq":
                codecs[name] = speechvq_codec(args.model)
            elif name not in PEERS:
                raise SpeechVQError(f"unknown codec {name!r} (choose from speechvq, {', '.join(PEERS)})")
            elif PEERS[name].missing_programs():
                print(f"skipped {name}: {', '.join(PEERS[name].missing_programs())} not installed", file=sys.stderr)
            else:
                codecs[name] = _with_nominal(PEERS[name])
        from tqdm import tqdm

        with tqdm(total=len(items) * len(codecs), desc="coding", unit="file", file=sys.stderr) as bar:
            results = compare(items, codecs, bar.update)
    except SpeechVQError as err:
        print(f"compare_codecs: {err}", file=sys.stderr)
        return 1
    table = markdown_table(results["codecs"])
    print(f"{len(items)} utterances, {sum(w.numel() for _, _, w in items) / RATE:.1f} s\n\n{table}")
    if results["without_speech"]:
        print(f"left out of the means and the delay, no speech in the recording: {', '.join(results['without_speech'])}")
    if args.out:
        from speechvq.atomic import write_bytes_atomic

        write_bytes_atomic(Path(args.out) / "results.json", (json.dumps(results, indent=1) + "\n").encode())
        write_bytes_atomic(Path(args.out) / "table.md", table.encode())
    return 0


def _with_nominal(peer: ExternalCodec) -> Callable:
    """peer.run as a plain function carrying the peer's nominal_bps, as `compare` expects of every codec."""
    def run(wav, workdir):
        return peer.run(wav, workdir)

    run.nominal_bps = peer.nominal_bps
    return run


if __name__ == "__main__":
    sys.exit(main())
