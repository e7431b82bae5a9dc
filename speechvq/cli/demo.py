"""`speechvq demo`: the shipped model on the shipped sample speech, end to end, offline.

Encodes the sample to a .svq file, decodes it back, converts it into other voices, and writes the WAVs and
one PNG of spectrograms; prints the file size, the three bitrates, the real-time factors and, when
Resemblyzer is installed (the `eval` extra), the speaker similarity of each conversion.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import SpeechVQError
from .common import decode_options, progress_bar


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo into args.out; exit status 0 on success."""
    from ..assets import DEMO_VOICES, SAMPLE_SPEAKER, sample_speech_path
    from ..atomic import write_bytes_atomic
    from ..audio import save_audio
    from ..inference import build_engine, decode_many, speaker_row
    from ..plots import save_spectrograms
    from .codec_commands import load_codec, read_for_model

    out = Path(args.out)
    codec = load_codec(args)
    model, rate = codec.model, codec.model.sample_rate
    wav = read_for_model(sample_speech_path(), rate)
    if args.seconds is not None:
        wav = wav[: max(model.hop_length, int(args.seconds * rate))]
    audio_s = wav.numel() / rate
    source = SAMPLE_SPEAKER if SAMPLE_SPEAKER in model.speakers else None
    voices = args.voices if args.voices is not None else [v for v in DEMO_VOICES if v in model.speakers]
    for voice in voices:
        speaker_row(model, voice)  # an unknown name fails here, before the slow part
    out.mkdir(parents=True, exist_ok=True)
    print(f"speechvq demo: {audio_s:.2f} s of {SAMPLE_SPEAKER} (held-out sample, CC-BY-SA-3.0) -> {out}/",
          file=sys.stderr)
    save_audio(out / "original.wav", wav, rate)

    start = time.perf_counter()
    data = codec.compress(wav, speaker=source)
    encode_s = time.perf_counter() - start
    write_bytes_atomic(out / "sample.svq", data)
    encoded, info = codec.read(data, str(out / "sample.svq"))
    rates = info.bitrates(len(data))

    options = decode_options(args)
    engine = build_engine(model, options)
    start = time.perf_counter()
    with progress_bar(encoded.n_samples, "decoding", unit="sample", unit_scale=True) as bar:
        decoded = decode_many(model, [encoded], [None], args.temperature, args.seed, bar.update, options,
                              engine)[0]
    decode_s = time.perf_counter() - start
    save_audio(out / "decoded.wav", decoded, rate)
    converted = []
    if voices:
        with progress_bar(encoded.n_samples * len(voices), f"converting to {', '.join(voices)}", unit="sample",
                          unit_scale=True) as bar:
            converted = decode_many(model, [encoded] * len(voices), voices, args.temperature, args.seed,
                                    bar.update, options, engine)
    for voice, audio in zip(voices, converted):
        save_audio(out / f"as_{voice}.wav", audio, rate)
    save_spectrograms(out / "spectrograms.png",
                      [("original", wav), ("decoded (same voice)", decoded)]
                      + [(f"converted to {voice}", audio) for voice, audio in zip(voices, converted)],
                      rate, title=f"speechvq {rates['file_bps'] / 1000:.2f} kbit/s")

    print(f"\nfiles in {out}/: original.wav, sample.svq, decoded.wav, "
          + "".join(f"as_{v}.wav, " for v in voices) + "spectrograms.png")
    print(f"code file: {len(data)} bytes for {audio_s:.2f} s ({info.header.frames} codes, {info.header.coding} "
          f"coding, format version {info.header.version}; voice: {info.voice})")
    print(f"bitrate: nominal {rates['nominal_bps']:.0f} bit/s, entropy {rates['entropy_bps']:.0f} bit/s, "
          f"file {rates['file_bps']:.0f} bit/s (16-bit PCM: {16 * rate} bit/s)")
    print(f"real-time factor: encode {encode_s / audio_s:.3f}, decode {decode_s / audio_s:.2f} "
          f"({engine.label} engine, {options.label}, first call includes compiling or loading the kernel)")
    _print_similarity(voices, converted, decoded, wav, rate, source)
    return 0


def _print_similarity(voices, converted, decoded, original, rate: int, source) -> None:
    """Each conversion's similarity to the target's shipped reference utterance and to the source."""
    from ..assets import reference_voice_path
    from ..audio import load_audio
    from ..similarity import SpeakerSimilarity

    try:
        scorer = SpeakerSimilarity()
    except SpeechVQError as err:
        print(f"speaker similarity: skipped ({err})")
        return
    source_embedding = scorer.embed(original, rate)
    print(f"speaker similarity (Resemblyzer cosine; decoded vs original {source}: "
          f"{float(scorer.embed(decoded, rate) @ source_embedding):.3f})")
    print(f"  {'voice':<10} {'to target':>10} {'to source':>10}")
    for voice, audio in zip(voices, converted):
        embedding = scorer.embed(audio, rate)
        reference = reference_voice_path(voice)
        to_target = (f"{float(embedding @ scorer.embed(load_audio(reference, rate)[0], rate)):.3f}"
                     if reference is not None else "n/a")
        print(f"  {voice:<10} {to_target:>10} {float(embedding @ source_embedding):>10.3f}")
