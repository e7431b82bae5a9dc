"""Audio in and out, resampling, level normalisation and mu-law: the only feature code in the project.

Training and inference both come through here, so a waveform is prepared the same way in both:

    load_audio (any WAV/FLAC/OGG -> mono float32 at the model rate)
      -> normalize_level (RMS to `level_dbfs`, peak-limited; the gain is returned so decode can undo it)
      -> mu_law_encode (the decoder's 256-way targets)

soundfile is imported inside the functions that use it, so that the models (which need
only the tensor functions here) import on machines that have torch but not soundfile.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from torch import Tensor

from .atomic import atomic_path
from .errors import SpeechVQError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
PEAK_LIMIT = 0.99  # normalisation never drives a sample past this, so mu-law never clips a level-raised input


def load_audio(path: str | os.PathLike, sample_rate: int) -> Tensor:
    """Read an audio file as mono float32 at `sample_rate`.

    Multi-channel audio is averaged to mono; other rates are resampled with torchaudio's windowed-sinc
    resampler.

    Args:
        path: a WAV, FLAC or OGG file (anything libsndfile reads).
        sample_rate: the rate to return, in Hz.

    Returns:
        float32 `[1, T]` in [-1, 1], T >= 1.

    Raises:
        SpeechVQError: the file is missing, unreadable, or holds no samples.
    """
    wav, file_rate = read_audio_file(path)
    return resample(wav.mean(dim=0, keepdim=True), file_rate, sample_rate)


def read_audio_file(path: str | os.PathLike) -> tuple[Tensor, int]:
    """Read an audio file as it is stored: all channels, its own sample rate.

    Returns:
        (float32 `[C, T]` in [-1, 1], sample rate in Hz).

    Raises:
        SpeechVQError: the file is missing, unreadable, or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise SpeechVQError(f"no such audio file: {path}")
    return _read_sound(str(path), f"audio file {path}")


def read_audio_bytes(data: bytes, label: str = "the uploaded audio") -> tuple[Tensor, int]:
    """Read the bytes of an audio file (WAV, FLAC, OGG, MP3: what libsndfile reads) as they are stored.

    Args:
        data: the whole file.
        label: how messages name it (e.g. "the upload voice.mp3").

    Returns:
        (float32 `[C, T]` in [-1, 1], sample rate in Hz).

    Raises:
        SpeechVQError: empty bytes, bytes libsndfile cannot read, or no samples.
    """
    import io

    if not data:
        raise SpeechVQError(f"{label} is empty (0 bytes)")
    return _read_sound(io.BytesIO(data), label)


def audio_seconds(data: bytes, label: str = "the uploaded audio") -> float:
    """Duration in seconds of audio file bytes, from the header alone (nothing is decoded).

    Raises:
        SpeechVQError: as `read_audio_bytes`.
    """
    import io

    import soundfile

    if not data:
        raise SpeechVQError(f"{label} is empty (0 bytes)")
    return float(_soundfile_call(soundfile.info, io.BytesIO(data), label).duration)


def _soundfile_call(function, source, label: str, **kwargs):
    """`function(source, **kwargs)` of soundfile, with its failures as one-line SpeechVQErrors naming `label`.

    For in-memory files soundfile puts the file object's repr before libsndfile's reason: it is dropped.
    """
    import soundfile

    try:
        return function(source, **kwargs)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        reason = re.sub(r"^Error opening <[^>]*>: ", "", str(err))
        raise SpeechVQError(f"cannot read {label}: {reason}") from None


def _read_sound(source, label: str) -> tuple[Tensor, int]:
    """soundfile.read of a path or file object: (float32 `[C, T]`, rate), failures as SpeechVQError."""
    import soundfile

    data, file_rate = _soundfile_call(soundfile.read, source, label, dtype="float32", always_2d=True)
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise SpeechVQError(f"{label} holds no samples")
    return torch.from_numpy(data.T.copy()), int(file_rate)


def save_audio(path: str | os.PathLike, wav: Tensor, sample_rate: int) -> None:
    """Write a waveform as 16-bit PCM (the format follows the extension: .wav, .flac, .ogg), atomically.

    Args:
        path: output file; written to a temporary file beside it and renamed, so a crash never leaves
            half a file.
        wav: float `[T]` or `[C, T]` in [-1, 1]; values outside are clipped.
        sample_rate: in Hz.
    """
    suffix = Path(path).suffix.lower()
    with atomic_path(path) as tmp:
        _write_sound(str(tmp), wav, sample_rate, suffix)


def audio_bytes(wav: Tensor, sample_rate: int, suffix: str = ".wav") -> bytes:
    """The bytes of an audio file holding a waveform, as `save_audio` would write it (no file is written).

    Args:
        wav: float `[T]` or `[C, T]` in [-1, 1]; values outside are clipped.
        sample_rate: in Hz.
        suffix: ".wav", ".flac" or ".ogg".
    """
    import io

    buffer = io.BytesIO()
    _write_sound(buffer, wav, sample_rate, suffix.lower())
    return buffer.getvalue()


def _write_sound(target, wav: Tensor, sample_rate: int, suffix: str) -> None:
    import soundfile

    wav = wav.detach().to("cpu", torch.float32)
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    if wav.dim() != 2:
        raise ValueError(f"expected [T] or [C, T] audio, got shape {tuple(wav.shape)}")
    data = wav.clamp(-1.0, 1.0).T.contiguous().numpy()
    subtype = "VORBIS" if suffix == ".ogg" else "PCM_16"
    soundfile.write(target, data, sample_rate, subtype=subtype, format=_sf_format(suffix))


def _sf_format(suffix: str) -> str:
    formats = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
    if suffix not in formats:
        raise SpeechVQError(f"cannot write audio with extension {suffix!r} (use {', '.join(formats)})")
    return formats[suffix]


CLIP_LEVEL = 0.999
CLIP_FRACTION = 0.001  # more samples than this at full scale: warn that the input looks clipped


def prepare_for_model(wav: Tensor, file_rate: int, sample_rate: int, label: str) -> tuple[Tensor, list[str]]:
    """Audio as read (`read_audio_file`/`read_audio_bytes`) made ready for a model: mono, at its rate.

    Args:
        wav: float32 `[C, T]` as stored.
        file_rate: its sample rate in Hz.
        sample_rate: the model's, in Hz.
        label: how notes and errors name the input.

    Returns:
        (float32 `[T']` mono at `sample_rate`, notes for the user: "note: ..." on what was changed,
        "warning: ..." on what looks wrong, e.g. clipping).

    Raises:
        SpeechVQError: NaN or infinite samples.
    """
    notes = []
    if wav.shape[0] > 1:
        notes.append(f"note: {label}: downmixed {wav.shape[0]} channels to mono")
    if file_rate != sample_rate:
        notes.append(f"note: {label}: resampled {file_rate} Hz -> {sample_rate} Hz")
    if not torch.isfinite(wav).all():
        raise SpeechVQError(f"{label} holds NaN or infinite samples")
    clipped = float((wav.abs() >= CLIP_LEVEL).float().mean())
    if clipped > CLIP_FRACTION:
        notes.append(f"warning: {label} looks clipped ({100 * clipped:.2f}% of samples at full scale)")
    return resample(wav.mean(dim=0), file_rate, sample_rate), notes


def resample(wav: Tensor, orig_rate: int, new_rate: int) -> Tensor:
    """Resample along the last axis (windowed sinc, torchaudio); a no-op when the rates agree.

    Args:
        wav: float `[..., T]`.
        orig_rate, new_rate: sample rates in Hz.

    Returns:
        float `[..., T']` with T' = ceil(T * new_rate / orig_rate).
    """
    if orig_rate == new_rate:
        return wav
    return AF.resample(wav, orig_rate, new_rate)


def rms_dbfs(wav: Tensor) -> float:
    """RMS level of a waveform in dB relative to full scale (a full-scale square wave is 0 dBFS)."""
    rms = wav.detach().float().pow(2).mean().sqrt().item()
    return 20.0 * math.log10(max(rms, 1e-10))


def loudest_frame_dbfs(wav: Tensor, frame_samples: int) -> float:
    """RMS level of the loudest non-overlapping frame, in dBFS (as `rms_dbfs`): a recording without a frame
    above about -50 dBFS holds no speech (e.g. the corpus's "silence" prompts, peak -69 dBFS).

    Args:
        wav: float waveform in [-1, 1], shape (..., samples); channels are averaged.
        frame_samples: frame length in samples (e.g. 320, 20 ms at 16 kHz); a shorter tail is a frame of its own.

    Returns:
        the level in dB; -200 for an empty or all-zero waveform.
    """
    mono = wav.detach().float().reshape(-1, wav.shape[-1]).mean(0) if wav.dim() > 1 else wav.detach().float()
    if mono.numel() == 0:
        return -200.0
    whole = mono.numel() // frame_samples * frame_samples
    powers = [mono[:whole].reshape(-1, frame_samples).pow(2).mean(1)] if whole else []
    if whole < mono.numel():
        powers.append(mono[whole:].pow(2).mean().reshape(1))
    return 10.0 * math.log10(max(torch.cat(powers).max().item(), 1e-20))


def normalize_level(wav: Tensor, level_dbfs: float | None) -> tuple[Tensor, float]:
    """Scale a waveform to an RMS of `level_dbfs`, limited so that no sample exceeds `PEAK_LIMIT`.

    Recordings differ in level by 20 dB or more; the model sees every utterance at one level, at
    training and at encode time alike. Dividing the output by the returned gain restores the level.

    Args:
        wav: float `[..., T]`, one utterance.
        level_dbfs: target RMS in dBFS (e.g. -23), or None to leave the level as it is.

    Returns:
        (scaled waveform, same shape and dtype; linear gain applied, > 0). Silence gets gain 1.
    """
    if level_dbfs is None:
        return wav, 1.0
    rms = wav.detach().float().pow(2).mean().sqrt().item()
    peak = wav.detach().abs().max().item()
    if rms < 1e-6 or peak == 0.0:  # digital silence (or nearly): nothing to normalise
        return wav, 1.0
    gain = min(10.0 ** (level_dbfs / 20.0) / rms, PEAK_LIMIT / peak)
    return wav * gain, gain


def log_mel_spectrogram(wav: Tensor, sample_rate: int, n_mels: int = 80, win_ms: float = 25.0,
                        hop_ms: float = 10.0) -> Tensor:
    """Log-mel power spectrogram (Slaney mel filters), for plots and spectral distances.

    The numbers of `librosa.feature.melspectrogram` (periodic Hann window, centred frames padded with zeros,
    Slaney-normalised filters; within 1e-4 dB) from torch.stft and torchaudio's filters:
    importing librosa.feature cost every evaluating process about 7 s (its numba-compiled helpers).

    Args:
        wav: float `[T]` in [-1, 1].
        sample_rate: in Hz.
        n_mels: mel bands (up to sample_rate / 2).
        win_ms, hop_ms: analysis window and hop, in milliseconds.

    Returns:
        float32 `[n_mels, 1 + T // hop]` in dB (10 log10 of power, floored at -100 dB).
    """
    mel = _mel_power(wav.detach().cpu().float()[None], sample_rate, n_mels, win_ms, hop_ms, pad_mode="constant")[0]
    return 10.0 * torch.log10(mel.clamp_min(1e-10))


_MEL_FILTERS: dict = {}  # (n_fft, sample_rate, n_mels, device, dtype) -> [n_freqs, n_mels]


def _mel_power(wav: Tensor, sample_rate: int, n_mels: int, win_ms: float, hop_ms: float,
               pad_mode: str = "reflect") -> Tensor:
    """Mel power `[B, n_mels, 1 + T // hop]` of float `[B, T]`: centred frames (padded by `pad_mode`), a periodic
    Hann window of win_ms, |STFT|^2 through Slaney-normalised Slaney-scale filters up to sample_rate / 2."""
    n_fft = int(round(sample_rate * win_ms / 1000))
    hop = int(round(sample_rate * hop_ms / 1000))
    key = (n_fft, sample_rate, n_mels, wav.device, wav.dtype)
    if key not in _MEL_FILTERS:
        _MEL_FILTERS[key] = AF.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate,
                                               norm="slaney", mel_scale="slaney").to(wav.device, wav.dtype)
    window = torch.hann_window(n_fft, device=wav.device, dtype=wav.dtype)
    spectrum = torch.stft(wav, n_fft, hop, window=window, pad_mode=pad_mode,
                          return_complex=True).abs().pow(2)  # (B, n_freqs, frames)
    return torch.einsum("bft,fm->bmt", spectrum, _MEL_FILTERS[key])


def log_mel_batch(wav: Tensor, sample_rate: int, n_mels: int = 80, win_ms: float = 25.0,
                  hop_ms: float = 10.0) -> Tensor:
    """Log-mel power spectrogram of a batch in torch, on the waveform's device (for models; the same Slaney
    mel filters as `log_mel_spectrogram`, frames padded by reflection, natural log).

    Args:
        wav: float `[B, T]` in [-1, 1].
        sample_rate: in Hz.
        n_mels, win_ms, hop_ms: mel bands, analysis window and hop (milliseconds).

    Returns:
        float `[B, n_mels, 1 + T // hop]`: ln(mel power + 1e-5).
    """
    return torch.log(_mel_power(wav, sample_rate, n_mels, win_ms, hop_ms) + 1e-5)


def mel_cepstrum(wav: Tensor, sample_rate: int, n_coefficients: int = 25, n_mels: int = 80) -> Tensor:
    """Mel-cepstral coefficients per 10 ms frame, scaled as a real cepstrum of the log amplitude.

    c_n = (1 / M) * sum_m ln|A_m| cos(pi n (m + 1/2) / M) over the M mel bands (|A|^2 = mel power): the
    cepstrum of the mel-warped log spectrum, so that distances come out on the usual mel-cepstral scale.
    Coefficient 0 (overall energy) is included; mel-cepstral distortion conventionally leaves it out.

    Args:
        wav: float `[T]`.
        sample_rate: in Hz.
        n_coefficients: coefficients kept per frame.

    Returns:
        float32 `[frames, n_coefficients]`.
    """
    import scipy.fft

    log_amplitude = log_mel_spectrogram(wav, sample_rate, n_mels=n_mels).numpy() * (math.log(10.0) / 20.0)
    # scipy's unnormalised DCT-II is 2 * sum_m x_m cos(pi n (m + 1/2) / M)
    cepstrum = scipy.fft.dct(log_amplitude, type=2, axis=0, norm=None)[:n_coefficients] / (2 * n_mels)
    return torch.from_numpy(np.ascontiguousarray(cepstrum.T)).float()


def mu_law_encode(wav: Tensor, classes: int = 256) -> Tensor:
    """Mu-law companding and quantisation (ITU-T G.711 curve with mu = classes - 1).

    Args:
        wav: float `[...]` in [-1, 1] (values outside are clipped).
        classes: number of quantisation levels.

    Returns:
        int64 `[...]` in [0, classes).
    """
    return AF.mu_law_encoding(wav.clamp(-1.0, 1.0), classes)


def mu_law_decode(codes: Tensor, classes: int = 256) -> Tensor:
    """Inverse of `mu_law_encode`: int64 `[...]` in [0, classes) -> float32 `[...]` in [-1, 1]."""
    return AF.mu_law_decoding(codes, classes).to(torch.float32)


def pre_emphasis(wav: Tensor, coefficient: float) -> Tensor:
    """First-order pre-emphasis y[t] = x[t] - c x[t-1] along the last axis (x[-1] = 0); c = 0 returns `wav`.

    LPCNet codes 0.85-pre-emphasised speech: the tilt lifts the quiet high frequencies before mu-law's
    8 bits, so the decoder's quantisation noise, shaped back by `de_emphasis`, falls under the formants.

    Args:
        wav: float `[..., T]`.
        coefficient: c in [0, 1).

    Returns:
        float `[..., T]`, same dtype; can exceed [-1, 1] by up to a factor 1 + c.
    """
    if coefficient == 0.0:
        return wav
    return torch.cat([wav[..., :1], wav[..., 1:] - coefficient * wav[..., :-1]], dim=-1)


def de_emphasis(wav: Tensor, coefficient: float) -> Tensor:
    """The inverse of `pre_emphasis`: y[t] = x[t] + c y[t-1] along the last axis (an IIR filter; c = 0: `wav`).

    Args:
        wav: float `[..., T]`.
        coefficient: c in [0, 1).

    Returns:
        float `[..., T]`, same dtype.
    """
    if coefficient == 0.0:
        return wav
    filtered = AF.lfilter(wav.to(torch.float64), torch.tensor([1.0, -coefficient], dtype=torch.float64),
                          torch.tensor([1.0, 0.0], dtype=torch.float64), clamp=False)
    return filtered.to(wav.dtype)


def mu_law_silence(classes: int = 256) -> int:
    """The class that decodes closest to 0.0 (128 of 256): the decoder's first input."""
    return classes // 2


def is_audio_file(path: str | os.PathLike) -> bool:
    """True for a file name with an extension the loaders read (.wav, .flac, .ogg, any case)."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS
