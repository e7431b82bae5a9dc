"""Objective quality measures of a decoded waveform against its input.

    align            the decoder may shift its output: find the lag that best matches the reference
    si_sdr           scale-invariant signal-to-distortion ratio (Le Roux et al. 2019), dB
    mel_cepstral_distortion   MCD over mel-cepstra c1..c24 (Kubichek 1993's formula), dB
    f0_frame_error   voicing decision error, gross pitch error and F0 frame error (Chu and Alwan 2009)

The mel-cepstra here are cepstra of an 80-band mel filterbank's log amplitude (`speechvq.audio.mel_cepstrum`),
not SPTK's all-pass-warped mel-cepstra: MCD values compare models and codecs measured by this module with
each other, and only roughly with figures from papers.

An autoregressive decoder samples its waveform, so its phase need not follow the input's: SI-SDR of a
VQ-VAE resynthesis is usually low even when it sounds right, and MCD (spectral envelope) is the more
telling number. Both are reported, with the lag that was applied.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .audio import mel_cepstrum, normalize_level
from .pitch import voiced_f0

MCD_SCALE = 10.0 * math.sqrt(2.0) / math.log(10.0)  # dB per unit of Euclidean mel-cepstral distance
GROSS_PITCH_ERROR = 0.2  # an F0 more than 20% off is a gross error (the usual definition)
F0_FRAME_S = 0.01
F0_LEVEL_DBFS = -23.0  # both signals are tracked at the models' level, for which the tracker's silence gate is set


def align(reference: Tensor, estimate: Tensor, max_shift: int) -> tuple[Tensor, Tensor, int]:
    """Shift `estimate` against `reference` by the lag (|lag| <= max_shift) of maximum cross-correlation.

    Args:
        reference, estimate: float `[T]` (lengths may differ).
        max_shift: largest lag searched, in samples.

    Returns:
        (reference, estimate) cut to their overlap after the shift, and the lag in samples (positive:
        the estimate is late).
    """
    n = min(reference.numel(), estimate.numel())
    ref, est = reference[:n].double().numpy(), estimate[:n].double().numpy()
    size = 1 << int(math.ceil(math.log2(2 * n)))
    correlation = np.fft.irfft(np.fft.rfft(est, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.concatenate([np.arange(0, max_shift + 1), np.arange(-max_shift, 0)])
    lag = int(lags[np.argmax(correlation[lags])])
    if lag >= 0:
        return reference[: n - lag], estimate[lag:n], lag
    return reference[-lag:n], estimate[: n + lag], lag


def si_sdr(reference: Tensor, estimate: Tensor) -> float:
    """Scale-invariant SDR in dB of two equal-length float `[T]` signals."""
    ref, est = reference.double(), estimate.double()
    ref, est = ref - ref.mean(), est - est.mean()
    target = (est @ ref) / (ref @ ref).clamp_min(1e-12) * ref
    noise = est - target
    return float(10.0 * torch.log10((target @ target).clamp_min(1e-12) / (noise @ noise).clamp_min(1e-12)))


def mel_cepstral_distortion(reference: Tensor, estimate: Tensor, sample_rate: int) -> float:
    """Mean MCD in dB over frames, coefficients 1..24, of two time-aligned float `[T]` signals."""
    ref = mel_cepstrum(reference, sample_rate)[:, 1:]
    est = mel_cepstrum(estimate, sample_rate)[:, 1:]
    frames = min(ref.shape[0], est.shape[0])
    distance = (ref[:frames] - est[:frames]).double().pow(2).sum(dim=1).sqrt()
    return float(MCD_SCALE * distance.mean())


EVAL_EXTRA_HINT = "pip install 'speechvq[eval]'"


def f0_frame_error(reference: Tensor, estimate: Tensor, sample_rate: int) -> dict[str, float]:
    """How well a decoded waveform keeps the input's pitch, every 10 ms, both tracked by the pitch stream's
    YIN (`speechvq.pitch.voiced_f0`, 60-400 Hz) after bringing each to the models' level (-23 dBFS RMS).

    Args:
        reference, estimate: float `[T]` at `sample_rate`, aligned (lengths may differ: the shorter counts).

    Returns:
        {"f0_vde": fraction of frames whose voicing decisions differ, "f0_gpe": of the frames both call
        voiced, the fraction whose F0 is more than 20% off (NaN when there are none), "ffe": the fraction of
        all frames with either error (Chu and Alwan 2009)}. A decoder that loses the harmonics scores a high
        VDE: its output is not periodic where the input is.
    """
    hop = max(1, int(round(F0_FRAME_S * sample_rate)))
    n = min(reference.numel(), estimate.numel())
    tracks = [voiced_f0(normalize_level(wav[:n].float(), F0_LEVEL_DBFS)[0].clamp(-1, 1), sample_rate, hop)
              for wav in (reference, estimate)]
    (f0_ref, voiced_ref), (f0_est, voiced_est) = tracks
    both = voiced_ref & voiced_est
    gross = both & ((f0_est / f0_ref.clamp(min=1e-3) - 1).abs() > GROSS_PITCH_ERROR)
    frames = max(1, voiced_ref.numel())
    voicing_errors = int((voiced_ref != voiced_est).sum())
    return {"f0_vde": voicing_errors / frames,
            "f0_gpe": float(gross.sum()) / int(both.sum()) if bool(both.any()) else math.nan,
            "ffe": (voicing_errors + int(gross.sum())) / frames}


def finite_mean(values) -> "float | None":
    """Mean of the finite values (None and NaN skipped); None when there are none (a metric not computed)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def optional_metrics_available() -> dict[str, bool]:
    """Which optional metric packages (the `eval` extra) can be imported: {"pesq", "stoi", "dnsmos"} -> bool."""
    import importlib.util

    def importable(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ValueError:  # a module set to None in sys.modules (blocked)
            return False

    return {"pesq": importable("pesq"), "stoi": importable("pystoi"),
            "dnsmos": importable("speechmos") and importable("onnxruntime")}


def pesq_wideband(reference: Tensor, estimate: Tensor, sample_rate: int) -> float:
    """Wideband PESQ (ITU-T P.862.2, MOS-LQO in about [1.0, 4.6]) of two time-aligned float `[T]` signals.

    Computed at 16 kHz (the signals are resampled when `sample_rate` differs). NaN when PESQ cannot score
    the pair: no utterance in the reference (silence), or a signal shorter than PESQ's minimum (~0.25 s).

    Raises:
        SpeechVQError: the `pesq` package is not installed (named with the extra that brings it).
    """
    from .audio import resample
    from .errors import SpeechVQError

    try:
        from pesq import BufferTooShortError, NoUtterancesError, pesq
    except ImportError:
        raise SpeechVQError(f"PESQ needs the pesq package: {EVAL_EXTRA_HINT}") from None
    ref, est = (resample(x.float(), sample_rate, 16000).numpy().astype(np.float64) for x in (reference, estimate))
    try:
        return float(pesq(16000, ref, est, "wb"))
    except (NoUtterancesError, BufferTooShortError):
        return math.nan


def stoi(reference: Tensor, estimate: Tensor, sample_rate: int) -> float:
    """Short-time objective intelligibility (Taal et al. 2011), in [0, 1], of two time-aligned float `[T]` signals.

    Raises:
        SpeechVQError: the `pystoi` package is not installed (named with the extra that brings it).
    """
    from .errors import SpeechVQError

    try:
        from pystoi import stoi as pystoi_stoi
    except ImportError:
        raise SpeechVQError(f"STOI needs the pystoi package: {EVAL_EXTRA_HINT}") from None
    return float(pystoi_stoi(reference.double().numpy(), estimate.double().numpy(), sample_rate, extended=False))


DNSMOS_RATE = 16000  # the models' sample rate


def _dnsmos_models():
    """speechmos' DNSMOS scorer (the P.835 sig/bak/ovr model and the P.808 model, ONNX), loaded once per thread
    count: its ONNX sessions use torch's thread count (`--threads`, OMP_NUM_THREADS), not onnxruntime's default
    of every core per session, with which evaluations run side by side (a GPU session's CPU fallbacks) each
    spread over every core."""
    import torch

    return _dnsmos_models_for(torch.get_num_threads())


@functools.lru_cache(maxsize=2)
def _dnsmos_models_for(threads: int):
    import onnxruntime
    from speechmos import dnsmos as speechmos_dnsmos

    class ThreadBoundDNSMOS(speechmos_dnsmos.DNSMOS):
        """speechmos' scorer (its mel features and polynomial fits) with sessions of `threads` threads."""

        def __init__(self, primary_model_path: str, p808_model_path: str) -> None:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            self.primary_model_path = primary_model_path
            self.onnx_sess = onnxruntime.InferenceSession(primary_model_path, options,
                                                          providers=["CPUExecutionProvider"])
            self.p808_onnx_sess = onnxruntime.InferenceSession(p808_model_path, options,
                                                               providers=["CPUExecutionProvider"])

    models = Path(speechmos_dnsmos.__file__).parent / "dnsmos_models"
    return ThreadBoundDNSMOS(str(models / "sig_bak_ovr.onnx"), str(models / "model_v8.onnx"))


def dnsmos(decoded: Tensor, sample_rate: int) -> dict[str, float]:
    """Non-intrusive MOS estimates of one waveform: Microsoft's DNSMOS P.835 (signal, background, overall, each
    in about [1, 5]) and its P.808 overall score, from the ONNX models the `speechmos` package ships.

    The reference procedure (speechmos' `dnsmos.run`, after Microsoft's dnsmos_local.py): a clip shorter than
    9.01 s is repeated (doubled) until it is not; 9.01-s windows every second are scored and the scores
    averaged. Here with one difference in cost, none in the numbers: in a repeated clip the windows whose
    starts lie a whole number of clip lengths apart are the same samples, so each distinct window is scored
    once (a 1-s clip has 7 windows, all the same: one pair of model runs instead of seven; a clip of 9 s or
    more has no repeats and costs what it did).

    Args:
        decoded: float `[T]` at `sample_rate` (resampled to 16 kHz for the models).

    Returns:
        {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}: speechmos' numbers for the clip.

    Raises:
        SpeechVQError: `speechmos` or `onnxruntime` is not installed (named with the extra that brings them), or
            `decoded` is empty.
    """
    from .audio import resample
    from .errors import SpeechVQError

    try:
        scorer = _dnsmos_models()
    except ImportError:
        raise SpeechVQError(f"DNSMOS needs the speechmos and onnxruntime packages: {EVAL_EXTRA_HINT}") from None
    from speechmos.dnsmos import INPUT_LENGTH

    clip = np.clip(resample(decoded.float(), sample_rate, DNSMOS_RATE).numpy().astype(np.float32), -1.0, 1.0)
    if len(clip) == 0:
        raise SpeechVQError("DNSMOS of an empty waveform")
    window = int(INPUT_LENGTH * DNSMOS_RATE)
    audio = clip
    while len(audio) < window:
        audio = np.append(audio, audio)
    scored: dict[int, tuple[float, ...]] = {}  # by the window's start in the clip: audio[i] == clip[i % len(clip)]
    windows = []
    for index in range(int(np.floor(len(audio) / DNSMOS_RATE) - INPUT_LENGTH) + 1):
        # the bounds exactly as speechmos computes them (a float end can round one sample short: skipped there)
        start, stop = int(index * DNSMOS_RATE), int((index + INPUT_LENGTH) * DNSMOS_RATE)
        segment = audio[start:stop]
        if len(segment) < window:
            continue
        key = start % len(clip)  # every window has the same length, so its start in the clip names its samples
        if key not in scored:
            mel = np.array(scorer.audio_melspec(audio=segment[:-160])).astype(np.float32)[np.newaxis, :, :]
            p808 = scorer.p808_onnx_sess.run(None, {"input_1": mel})[0][0][0]
            sig, bak, ovrl = scorer.onnx_sess.run(None, {"input_1": segment[np.newaxis, :]})[0][0]
            scored[key] = (*scorer.get_polyfit_val(sig, bak, ovrl, False), p808)
        windows.append(scored[key])
    sig, bak, ovrl, p808 = (float(np.mean(column)) for column in zip(*windows))
    return {"dnsmos_ovrl": ovrl, "dnsmos_sig": sig, "dnsmos_bak": bak, "dnsmos_p808": p808}


def intrusive_scores(reference: Tensor, decoded: Tensor, sample_rate: int, max_shift: int) -> dict:
    """Every intrusive score of a decoded waveform against its input, after aligning the two.

    Args:
        reference, decoded: float `[T]` at `sample_rate` (lengths may differ).
        max_shift: largest alignment lag searched, in samples.

    Returns:
        {"pesq_wb", "stoi", "mcd_db", "si_sdr_db", "ffe", "f0_vde", "f0_gpe", "lag_samples"}; PESQ and STOI
        are None when their package (the `eval` extra) is missing.
    """
    available = optional_metrics_available()
    ref, est, lag = align(reference, decoded, max_shift)
    return {"pesq_wb": pesq_wideband(ref, est, sample_rate) if available["pesq"] else None,
            "stoi": stoi(ref, est, sample_rate) if available["stoi"] else None,
            "mcd_db": mel_cepstral_distortion(ref, est, sample_rate), "si_sdr_db": si_sdr(ref, est),
            **f0_frame_error(ref, est, sample_rate), "lag_samples": lag}
