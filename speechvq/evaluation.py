"""Reconstruction of a manifest's utterances through the real codec, and a report of quality, bitrate and speed.

Each utterance goes the way a user's file goes: compressed to .svq bytes (whose size gives the actual
bitrate) and decompressed from them, then scored against the input.

    out_dir/wav/<id>.wav       the decoded utterances
    out_dir/plots/<id>.png     original and decoded log-mel spectrograms, for the first `plots` utterances
    out_dir/code_usage.png     how often each code was used, over all utterances
    out_dir/report.json        per-file results, the averages, and how the audio was decoded ("decoding")
    out_dir/report.md          the same as Markdown tables, with the plots

PESQ (wideband) and STOI come from optional packages (the `eval` extra); without them those columns are
empty and the report says which extra brings them.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .atomic import write_bytes_atomic
from .errors import SpeechVQError
from .audio import load_audio, loudest_frame_dbfs, read_audio_file, save_audio
from .data.manifest import Utterance
from .codec import Codec
from .generation import DEFAULT_CHOOSE_EVERY_S, DecodeOptions
from .inference import DEFAULT_TEMPERATURE, bitrates, decode_codes, timed_call
from .metrics import EVAL_EXTRA_HINT, dnsmos, finite_mean, intrusive_scores, optional_metrics_available
from .models import SpeechVQ
from .models.quantizer import code_perplexity
from .postfilter import DEFAULT_POSTFILTER_GAIN
from .version import __version__

# A recording without a 20 ms frame above this holds no speech, and speech metrics on it are noise (the offline
# corpus's test split has one, ivr_ru/ru_silence_2, peak -69 dBFS: its PESQ-WB moved from 1.07 to 4.06 between
# two decodes of nearly the same models): comparisons decode and report such files but leave them out.
SPEECH_FLOOR_DBFS = -50.0
# Kernel precision of decodes meant to be compared or reproduced. At "full" every CPU engine draws the reference
# engine's samples from the same seed (tests/generation: samples equal the reference for the same draws), so the
# engine that auto's timing probe picks does not change the audio; at "reduced" the native engine's fp16 weights
# do (2026-12-01, shipped model, an 18.6 s test file, seed 0: native fp32, torch and numba wrote identical
# audio, native fp16 other audio; the AVX-512 and AVX2 builds identical audio at each precision). Costs nearly
# twice the decode time of fp16 (the 119-file test split under two seeds, 2 threads: 13 min 20 s against 7 min 19 s).
COMPARISON_PRECISION = "full"


@dataclass
class FileResult:
    """Scores of one decoded utterance (durations in seconds, rates in bits per second)."""

    id: str
    speaker: str
    seen: bool  # the speaker is one of the model's training speakers
    decoded_as: Optional[str]
    audio_s: float
    mcd_db: float
    si_sdr_db: float
    pesq_wb: Optional[float]  # None: the pesq package is not installed; NaN: PESQ found no speech
    stoi: Optional[float]  # None: the pystoi package is not installed
    dnsmos_ovrl: Optional[float]  # DNSMOS P.835 overall (non-intrusive); None: speechmos/onnxruntime missing
    ffe: float  # F0 frame error: frames whose voicing or (> 20%) pitch differs from the input's
    f0_vde: float  # voicing decision error alone
    f0_gpe: float  # gross pitch errors among the frames both call voiced (NaN when none are)
    lag_samples: int
    entropy_bps: float
    file_bps: float
    used_codes: int
    encode_rtf: float
    decode_rtf: float


def evaluate_utterances(codec: Codec, entries: Sequence[Utterance], out_dir: str | os.PathLike,
                        max_seconds: Optional[float] = None, temperature: float = DEFAULT_TEMPERATURE,
                        seed: int = 0, progress: Optional[Callable[[int], None]] = None,
                        options: Optional[DecodeOptions] = None, plots: int = 8) -> dict:
    """Encode and decode each utterance, score it against its input, and write the report.

    Args:
        codec: the model (in eval mode) and its code statistics, if any.
        entries: utterances to reconstruct; each is decoded in its own speaker's voice when the model
            knows the speaker, else as a user's unknown voice is (an utterance model's own vector, a table
            model's closest training voice), and reported apart as unseen.
        out_dir: where the decoded WAVs and reports go.
        max_seconds: only the first this many seconds of each utterance (decoding is autoregressive and slow).
        temperature, seed: sampling settings of the decoder.
        progress: called with samples decoded since the last call.
        options: decoding engine and chunking (default: DecodeOptions()).
        plots: spectrogram PNGs for this many utterances (the first ones).

    Returns:
        the report: {"files": [...], "mean": {...}, "model": {...}}.
    """
    from .plots import save_code_histogram, save_spectrograms

    out_dir = Path(out_dir)
    model = codec.model
    available = optional_metrics_available()
    results, all_codes, all_pitch = [], [], []
    for index, entry in enumerate(entries):
        wav = load_audio(entry.path, model.sample_rate)[0]
        if max_seconds is not None:
            wav = wav[: max(1, int(max_seconds * model.sample_rate))]
        audio_s = wav.numel() / model.sample_rate
        seen = entry.speaker in model.speakers
        # a speaker the model knows is recorded by name (as a user who knows it would); any other is encoded
        # as a user's unknown voice is: an utterance model's own vector, a table model's closest row
        data, encode_time = timed_call(lambda: codec.compress(wav, speaker=entry.speaker if seen and
                                                              model.has_voices else None), audio_s)
        encoded, info = codec.read(data)
        voice = info.voice
        decoded, decode_time = timed_call(
            lambda: decode_codes(model, encoded, temperature=temperature, seed=seed, progress=progress,
                                 options=options), audio_s)
        name = entry.id.replace('/', '__')
        save_audio(out_dir / "wav" / f"{name}.wav", decoded, model.sample_rate)
        if index < plots:
            save_spectrograms(out_dir / "plots" / f"{name}.png", [("original", wav), ("decoded", decoded)],
                              model.sample_rate, title=entry.id)
        scores = intrusive_scores(wav, decoded, model.sample_rate, max_shift=2 * model.hop_length)
        all_codes.append(encoded.codes)
        if encoded.pitch is not None:
            all_pitch.append(encoded.pitch)
        results.append(FileResult(
            id=entry.id, speaker=entry.speaker, seen=seen, decoded_as=voice, audio_s=round(audio_s, 3), **scores,
            dnsmos_ovrl=dnsmos(decoded, model.sample_rate)["dnsmos_ovrl"] if available["dnsmos"] else None,
            entropy_bps=bitrates(model, encoded.codes, encoded.pitch)["entropy_bps"], file_bps=8 * len(data) / audio_s,
            used_codes=int(torch.unique(encoded.codes).numel()),
            encode_rtf=encode_time.real_time_factor, decode_rtf=decode_time.real_time_factor))
    codes = torch.cat(all_codes) if all_codes else torch.zeros(0, dtype=torch.long)
    report = _summarise(model, results, codes, torch.cat(all_pitch) if all_pitch else None)
    report["plots"] = min(plots, len(results))
    report["missing_metrics"] = sorted(name for name, ok in available.items() if not ok)
    report["decoding"] = decoding_settings(options or DecodeOptions(), temperature, seed)
    if codes.numel():
        save_code_histogram(out_dir / "code_usage.png",
                            torch.bincount(codes, minlength=model.quantizer.codebook_size).numpy(),
                            title=f"code usage over {len(results)} utterances")
    write_bytes_atomic(out_dir / "report.json", (json.dumps(report, indent=1) + "\n").encode("utf-8"))
    write_bytes_atomic(out_dir / "report.md", markdown_report(report).encode("utf-8"))
    return report


def decoding_settings(options: DecodeOptions, temperature: float, seed: int) -> dict:
    """What a report's decodes were made with, as requested (JSON-able): the sampling, and how (`DecodeOptions`;
    "engine" as asked, e.g. "auto"). Scores move with all of these, so a report that leaves them out cannot be
    compared with another."""
    return {"temperature": temperature, "seed": seed, "how": options.label, "engine": options.engine,
            "precision": options.precision, "postfilter": options.postfilter, "best_of": options.best_of,
            "choose_every_s": options.choose_every_s if options.best_of > 1 else None,
            "chunk_s": options.chunk_s if options.mode == "chunked" else None}


def paired_difference(reference: Sequence[dict], other: Sequence[dict], key: str) -> Optional[dict]:
    """Mean per-file difference other - reference of one score and its 95% interval (1.96 standard errors),
    over the files (matched by "id") that both scored with a finite value. When both decoded the same files,
    a paired difference separates the change from the files' own spread.

    Args:
        reference, other: eval reports' "files" lists (dicts with "id" and score keys such as "stoi").
        key: the score.

    Returns:
        {"mean", "ci95", "files"}, or None with fewer than two such files.
    """
    first = {item["id"]: item.get(key) for item in reference}
    deltas = np.array([item[key] - first[item["id"]] for item in other
                       if first.get(item["id"]) is not None and item.get(key) is not None], dtype=np.float64)
    return mean_interval(deltas)


def mean_interval(values: Sequence[float]) -> Optional[dict]:
    """The mean of per-file values and its 95% interval half-width (1.96 standard errors), non-finite values
    left out: {"mean", "ci95", "files"}, or None with fewer than two finite values."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return None
    return {"mean": float(values.mean()), "ci95": float(1.96 * values.std(ddof=1) / np.sqrt(len(values))),
            "files": int(len(values))}


def has_speech(wav: torch.Tensor, sample_rate: int) -> bool:
    """Whether a recording (float `[..., T]` in [-1, 1] at `sample_rate` Hz) has a 20 ms frame above
    `SPEECH_FLOOR_DBFS`: the test that keeps silent prompts out of comparisons' means (their PESQ is noise)."""
    return loudest_frame_dbfs(wav, max(1, sample_rate // 50)) >= SPEECH_FLOOR_DBFS


def files_without_speech(entries: Sequence[Utterance]) -> list[str]:
    """Ids of the entries whose recording fails `has_speech` (read from the files, so the choice depends on the
    utterances alone, never on a model's output)."""
    return [entry.id for entry in entries if not has_speech(*read_audio_file(entry.path))]


def pinned_decoding(decoder: torch.nn.Module, engine: str = "auto", precision: str = COMPARISON_PRECISION,
                    postfilter: float = DEFAULT_POSTFILTER_GAIN, best_of: int = 1,
                    choose_every_s: Optional[float] = DEFAULT_CHOOSE_EVERY_S) -> tuple[DecodeOptions, dict]:
    """One decoding engine for a series of comparable decodes: `engine` at `precision` ("full" or "reduced")
    resolved once for this (CPU) decoder, where "auto" is otherwise chosen again for each batch width, by timing.
    Sampled audio follows the float arithmetic: the same weights and seed draw other samples on another engine,
    precision, build or CPU (2026-12-01: one model's test split scored STOI 0.6274 on one machine, 0.6262 on
    another), so decodes meant to be compared, or reused, name all of these. `postfilter` is the pitch
    post-filter's gain (applied only to codes with a pitch stream), named in the description too, and so are
    `best_of` (`DecodeOptions.best_of`) where it is above 1 and then `choose_every_s` where it is set (None:
    one choice per chunk, the key of decodes made before choices as they go).

    Returns:
        (DecodeOptions naming the resolved engine and the general precision that selects its kernels; a JSON-able
        description for `decode_key`: engine, its own precision name ("fp16" for native at "reduced"), the native
        build's -march (None for other engines), this CPU (`planner.cpu_description`), the thread count and
        the post-filter gain).

    Raises:
        SpeechVQError: the engine cannot run this decoder here (the message says why).
    """
    from .generation.engine import choose_engine
    from .generation.native import default_march
    from .generation.packed import ENGINE_PRECISIONS
    from .generation.planner import cpu_description

    threads = torch.get_num_threads()
    try:
        choice = choose_engine(engine, decoder, threads=threads, precision=precision)
    except ValueError as error:
        raise SpeechVQError(str(error)) from None
    # the choice names kernels ("fp16"); DecodeOptions takes the general name that selects them
    general = next((name for name, own in ENGINE_PRECISIONS.get(choice.engine, {}).items()
                    if own == choice.precision), choice.precision)
    description = {"engine": choice.engine, "precision": choice.precision,
                   "march": default_march() if choice.engine == "native" else None,
                   "cpu": cpu_description(), "threads": threads, "postfilter": postfilter}
    if best_of != 1:  # one candidate, plain sampling, keeps the keys of the decodes made before the option
        description["best_of"] = best_of
        if choose_every_s is not None:
            description["choose_every_s"] = choose_every_s
    try:
        options = DecodeOptions(engine=choice.engine, precision=general, threads=threads, postfilter=postfilter,
                                best_of=best_of, choose_every_s=choose_every_s)
    except ValueError as error:
        raise SpeechVQError(str(error)) from None
    return options, description


def decode_key(model_fingerprint: str, entries: Sequence[Utterance], max_seconds: Optional[float],
               temperature: float, seed: int, decoding: dict) -> dict:
    """What fixes one model's decodes of a list of utterances: its inference weights (`Codec.fingerprint`), the
    files (id, path, duration in seconds), the seconds of each, the sampling temperature and seed, the decoding
    (`pinned_decoding`'s description: engine, precision, build, CPU, threads), and the code versions.

    Returns:
        a JSON-able dict; equal dicts name decodes that can stand for each other.
    """
    return {"model": model_fingerprint, "files": [[e.id, e.path, e.duration_s] for e in entries],
            "max_seconds": max_seconds, "temperature": temperature, "seed": seed, "decoding": decoding,
            "speechvq": __version__, "torch": torch.__version__}


def reusable_report(folder: str | os.PathLike, key: dict) -> Optional[dict]:
    """The eval report in `folder` when its decode_key.json equals `key` (compared as JSON), else None: a
    missing, unreadable or different key, or a missing or unreadable report, means decode again."""
    folder = Path(folder)
    try:
        stored = json.loads((folder / "decode_key.json").read_text())
        report = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError):
        return None
    return report if stored == json.loads(json.dumps(key)) else None


def evaluate_or_reuse(codec: Codec, entries: Sequence[Utterance], out_dir: str | os.PathLike,
                      decoding: tuple[DecodeOptions, dict], max_seconds: Optional[float] = None,
                      temperature: float = DEFAULT_TEMPERATURE, seed: int = 0,
                      progress: Optional[Callable[[int], None]] = None) -> tuple[dict, bool]:
    """`evaluate_utterances` with the pinned `decoding` (`pinned_decoding`'s answer) into `out_dir`, unless a
    report made under the same `decode_key` is there already: an interrupted series of decodes resumes, and a
    decode serves every later comparison that needs it. Writes out_dir/decode_key.json after the report.

    Returns:
        (the report, True when it was read back rather than decoded).
    """
    out_dir = Path(out_dir)
    key = decode_key(codec.fingerprint, entries, max_seconds, temperature, seed, decoding[1])
    report = reusable_report(out_dir, key)
    if report is not None:
        return report, True
    # the old key goes first: a decode stopped after its report.json must not pass under it
    (out_dir / "decode_key.json").unlink(missing_ok=True)
    report = evaluate_utterances(codec, entries, out_dir, max_seconds=max_seconds, temperature=temperature,
                                 seed=seed, progress=progress, options=decoding[0], plots=0)
    write_bytes_atomic(out_dir / "decode_key.json", (json.dumps(key, indent=1) + "\n").encode("utf-8"))
    return report, False


def evaluate_seeds(codec: Codec, entries: Sequence[Utterance], out_dir: str | os.PathLike,
                   decoding: tuple[DecodeOptions, dict], seeds: Sequence[int], max_seconds: Optional[float] = None,
                   temperature: float = DEFAULT_TEMPERATURE, label: str = "decode") -> list[dict]:
    """`evaluate_or_reuse` once per sampling seed, each into out_dir/seedS, under one progress bar (in samples;
    a reused decode is reported on stderr as "LABEL, seed S: reusing PATH" and counted whole).

    Returns:
        the eval reports, in the order of `seeds`.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    rate = codec.model.sample_rate
    samples = int(sum(min(e.duration_s, max_seconds or float("inf")) for e in entries) * rate)
    reports = []
    with tqdm(total=samples * len(seeds), desc=label, unit="sample", unit_scale=True) as bar:
        for seed in seeds:
            folder = out_dir / f"seed{seed}"
            report, reused = evaluate_or_reuse(codec, entries, folder, decoding, max_seconds, temperature, seed,
                                               progress=bar.update)
            if reused:
                bar.write(f"{label}, seed {seed}: reusing {folder / 'report.json'}", file=sys.stderr)
                bar.update(samples)
            reports.append(report)
    return reports


def average_over_seeds(reports: Sequence[dict], keys: Sequence[str]) -> dict:
    """One report from the same files decoded under several sampling seeds: each file's scores averaged over
    the seeds (finite values only), and their means.

    The decoder samples, so a file's scores move from seed to seed; a small change judged under one seed can
    pass the ship rule under it and fail under the next (2026-12-01: STOI +0.0061 +- 0.0061 under seed 0,
    +0.0011 +- 0.0055 under seed 1, the same two models). Averaging first leaves the files' own spread in the
    interval.

    Args:
        reports: eval reports ({"files": [{"id", score keys...}], ...}) of the same files.
        keys: the scores to average (e.g. "stoi", "pesq_wb").

    Returns:
        {"files": [{"id", key: mean over seeds or None}], "mean": {key: mean over files or None}}.
    """
    by_id: dict[str, list[dict]] = {}
    for report in reports:
        for item in report["files"]:
            by_id.setdefault(item["id"], []).append(item)
    files = [{"id": name, **{key: finite_mean(item.get(key) for item in items) for key in keys}}
             for name, items in by_id.items()]
    return {"files": files, "mean": {key: finite_mean(item[key] for item in files) for key in keys}}


def _summarise(model: SpeechVQ, results: list[FileResult], codes: torch.Tensor,
               pitch: Optional[torch.Tensor] = None) -> dict:
    files = [asdict(r) for r in results]
    numeric = ["audio_s", "mcd_db", "si_sdr_db", "pesq_wb", "stoi", "dnsmos_ovrl", "ffe", "f0_vde", "f0_gpe",
               "entropy_bps", "file_bps", "used_codes",
               "encode_rtf", "decode_rtf"]
    mean = {key: finite_mean([f[key] for f in files]) for key in numeric} if files else {}
    # speakers the model never trained on (a table model decodes them as a training voice) are reported apart
    groups = {group: {key: finite_mean([f[key] for f in files if f["seen"] == (group == "seen")])
                      for key in numeric}
              for group in ("seen", "unseen") if any(f["seen"] == (group == "seen") for f in files)}
    counts = torch.bincount(codes, minlength=model.quantizer.codebook_size)
    rates = bitrates(model, codes, pitch) if codes.numel() else {}
    corpus = {"codebook_perplexity": float(code_perplexity(counts)) if codes.numel() else 0.0,
              "codebook_used": int((counts > 0).sum()), "codebook_size": model.quantizer.codebook_size,
              "nominal_bps": model.config.bitrate_bps, "pitch_nominal_bps": model.config.pitch_bitrate_bps,
              "entropy_bps_all_files": rates.get("entropy_bps", math.nan)}
    return {"files": files, "mean": mean, "mean_by_speaker": groups, "codes": corpus}


def _fmt(value: Optional[float], digits: int) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown_report(report: dict) -> str:
    """The report as Markdown: a summary table, then one row per file."""
    mean, codes = report["mean"], report["codes"]
    lines = ["# speechvq reconstruction report", "",
             f"{len(report['files'])} utterances. Bitrate: nominal {codes['nominal_bps']:.0f} bit/s"
             + (f" (the pitch stream {codes['pitch_nominal_bps']:.0f})" if codes.get("pitch_nominal_bps") else "")
             + f"; empirical entropy of all codes {codes['entropy_bps_all_files']:.0f} bit/s. Codebook: {codes['codebook_used']} of "
             f"{codes['codebook_size']} codes used, perplexity {codes['codebook_perplexity']:.1f}.", ""]
    decoding = report.get("decoding")
    if decoding:  # reports written before 2026-12-04 do not say
        lines += [f"Decoded at temperature {decoding['temperature']:g}, seed {decoding['seed']}: {decoding['how']}; "
                  f"engine {decoding['engine']}, precision {decoding['precision']}, post-filter "
                  f"{decoding['postfilter']:g}.", ""]
    if report.get("missing_metrics"):
        lines += [f"Not computed (package missing): {', '.join(report['missing_metrics'])}; {EVAL_EXTRA_HINT}.", ""]
    if mean:
        lines += ["| mean | PESQ-WB | STOI | DNSMOS | MCD (dB) | FFE | SI-SDR (dB) | entropy (bit/s) | file (bit/s) | "
                  "encode RTF | decode RTF |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        by_speaker = report.get("mean_by_speaker", {})
        rows = [("all", mean)] + ([(f"{group} speakers", by_speaker[group]) for group in ("seen", "unseen")
                                   if group in by_speaker] if len(by_speaker) > 1 else [])
        for label, m in rows:
            lines.append(f"| {label} | {_fmt(m['pesq_wb'], 2)} | {_fmt(m['stoi'], 3)} | {_fmt(m['dnsmos_ovrl'], 2)} | "
                         f"{m['mcd_db']:.2f} | {_fmt(m.get('ffe'), 3)} | "
                         f"{m['si_sdr_db']:.2f} | {m['entropy_bps']:.0f} | {m['file_bps']:.0f} | "
                         f"{m['encode_rtf']:.3f} | {m['decode_rtf']:.2f} |")
        lines.append("")
        if "unseen" in by_speaker:
            lines += ["Unseen speakers are not among the model's training speakers: a table model decodes them in "
                      "the training voice that explains them best, an utterance model in their own voice.", ""]
    if report["files"]:
        lines += ["![code usage](code_usage.png)", ""]
    lines += ["| id | speaker | decoded as | s | PESQ-WB | STOI | MCD (dB) | FFE | SI-SDR (dB) | lag | codes used | "
              "decode RTF |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for f in report["files"]:
        speaker = f["speaker"] if f.get("seen", True) else f"{f['speaker']} (unseen)"
        lines.append(f"| {f['id']} | {speaker} | {f['decoded_as']} | {f['audio_s']:.2f} | "
                     f"{_fmt(f['pesq_wb'], 2)} | {_fmt(f['stoi'], 3)} | {f['mcd_db']:.2f} | {_fmt(f.get('ffe'), 3)} | "
                     f"{f['si_sdr_db']:.2f} | "
                     f"{f['lag_samples']} | {f['used_codes']} | {f['decode_rtf']:.2f} |")
    lines += ["", "Intrusive metrics are computed after aligning the decoded audio to the input by cross-correlation "
              "(lag in samples, positive = decoded is late). MCD: mel-cepstral distortion over c1..c24. FFE: the "
              "fraction of 10 ms frames whose voicing or pitch (off by more than 20%) differs from the input's, "
              "both tracked by YIN; a decoder without harmonics scores high. SI-SDR is "
              "low for any sampling decoder whose phase need not follow the input.", ""]
    for f in report["files"][: report.get("plots", 0)]:
        name = f["id"].replace("/", "__")
        lines += [f"![{f['id']}](plots/{name}.png)", ""]
    return "\n".join(lines) + "\n"
