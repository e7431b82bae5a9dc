"""Typed configuration: frozen dataclasses, YAML presets with `include:`, and dotted `--set` overrides.

A config is built in three layers, each checked against the dataclasses below:

    preset or YAML file (which may `include:` another)  ->  `--set a.b.c=value` overrides  ->  Config

An unknown key or a value of the wrong type raises `ConfigError` naming the dotted key. Derived facts
(hop length, receptive field, dilations) are properties computed from the stored values, never stored twice.
The resolved config travels inside every checkpoint, so inference needs nothing else.

    >>> cfg = load_config("tiny", ["model.quantizer.codebook_size=32"])
    >>> cfg.model.encoder.hop_length
    64
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .errors import ConfigError

# The sampling temperature decoding uses unless told otherwise (the CLI's --temperature, the API's default).
# Chosen by tools/sampling_sweep.py with the shipped model on the test split (2026-12-01): against 1.0, 0.6
# raised DNSMOS OVRL by 0.125 +- 0.075 and lowered MCD by 0.054 +- 0.039 dB (paired, 24 files), with STOI and
# PESQ-WB unchanged within +-0.014 and +-0.009; 0.3 began to cost STOI and MCD. Lower is buzzier, higher noisier.
DEFAULT_TEMPERATURE = 0.6

PRESET_DIR = Path(__file__).parent / "presets"


def _choices(*values: str) -> dict:
    return {"choices": values}


@dataclass(frozen=True)
class EncoderConfig:
    """Strided 1-D convolutional encoder: wav [B, 1, T] -> z_e [B, latent_dim, F].

    Each layer is Conv1d(kernel = 2 * stride, stride) + ReLU, so the paper's six stride-2 layers have
    kernel 4; a final 1x1 convolution maps `channels` to `latent_dim`.
    """

    channels: int = 256
    strides: tuple[int, ...] = (2, 2, 2, 2, 2, 2)  # hop_length = prod(strides) = 64 samples = 250 Hz codes @ 16 kHz
    latent_dim: int = 64

    @property
    def hop_length(self) -> int:
        """Samples per code frame: the product of the strides."""
        return math.prod(self.strides)

    @property
    def kernel_sizes(self) -> tuple[int, ...]:
        """Kernel of each strided layer: twice its stride (4 for the paper's stride 2)."""
        return tuple(2 * s for s in self.strides)

    def __post_init__(self) -> None:
        _require(len(self.strides) > 0 and all(s >= 1 for s in self.strides),
                 "model.encoder.strides", "must be a non-empty list of positive integers")
        _require(self.channels >= 1, "model.encoder.channels", "must be positive")
        _require(self.latent_dim >= 1, "model.encoder.latent_dim", "must be positive")


@dataclass(frozen=True)
class QuantizerConfig:
    """Vector quantizer with K codes of size latent_dim (van den Oord et al. 2017, section 3.1 and appendix)."""

    codebook_size: int = 512
    commitment_weight: float = 0.25  # beta in the paper's loss
    ema: bool = False  # update the codebook by exponential moving averages instead of the codebook loss
    ema_decay: float = 0.99
    ema_epsilon: float = 1e-5  # Laplace smoothing of the EMA cluster sizes
    init_from_data: bool = True  # k-means on the first training batch
    kmeans_iters: int = 10
    dead_code_window: int = 200  # training steps a code may go unused before it is re-seeded; 0 disables

    def __post_init__(self) -> None:
        _require(self.codebook_size >= 2, "model.quantizer.codebook_size", "must be at least 2")
        _require(self.commitment_weight >= 0, "model.quantizer.commitment_weight", "must be >= 0")
        _require(0.0 < self.ema_decay < 1.0, "model.quantizer.ema_decay", "must lie in (0, 1)")
        _require(self.ema_epsilon > 0, "model.quantizer.ema_epsilon", "must be positive")
        _require(self.kmeans_iters >= 0, "model.quantizer.kmeans_iters", "must be >= 0")
        _require(self.dead_code_window >= 0, "model.quantizer.dead_code_window", "must be >= 0")

    @property
    def bits_per_code(self) -> int:
        """Bits of one code when stored without entropy coding: ceil(log2 K)."""
        return max(1, math.ceil(math.log2(self.codebook_size)))


@dataclass(frozen=True)
class DecoderConfig:
    """Autoregressive dilated-causal WaveNet conditioned on the codes and a speaker.

    Layer i has dilation 2 ** (i % dilation_cycle): the paper setting is two stacks of 1, 2, ..., 512.
    The codes pass through a small frame-rate conv stack (`cond_*`) before being repeated up to the
    sample rate; each layer projects them (1x1) into its gate.
    """

    n_layers: int = 20
    dilation_cycle: int = 10
    kernel_size: int = 2
    residual_channels: int = 64
    gate_channels: int = 128  # split in two halves for tanh * sigmoid
    skip_channels: int = 256
    cond_channels: int = 128
    cond_layers: int = 2
    cond_kernel_size: int = 3  # frame-rate convolution over the codes (non-causal: codes are known ahead)
    # Residual blocks after that stack, block i a convolution of dilation 2**i (kernel cond_kernel_size) and a 1x1
    # that starts at zero (so a continuation starts as its init): each frame's conditioning then sees
    # cond_reach frames of codes on either side instead of the stack's cond_layers * (cond_kernel_size // 2).
    # 0 = off (the shipped model).
    cond_context_layers: int = 0
    # The pitch-lag input (CELP's long-term predictor as an input): at every sample of a voiced pitch frame the
    # decoder also reads the classes one transmitted pitch period T back, x[t - T + j] for j = -(n // 2) .. n // 2,
    # each tap with its own embedding (zero at the start, so a continuation starts as its init). 0 = off (the
    # paper). The shipped decoder predicts from about its last millisecond (tools/history_use.py) and never found
    # the period by itself; given it, it used it within 2,000 CPU steps (docs/default_model/sessions/2026-12-02-cpu-4).
    # Needs the pitch stream (model.pitch.bits > 0), which says T.
    pitch_lag_taps: int = 0

    def __post_init__(self) -> None:
        _require(self.n_layers >= 1, "model.decoder.n_layers", "must be positive")
        _require(self.dilation_cycle >= 1, "model.decoder.dilation_cycle", "must be positive")
        _require(self.kernel_size >= 2, "model.decoder.kernel_size", "must be at least 2")
        _require(self.gate_channels >= 2 and self.gate_channels % 2 == 0,
                 "model.decoder.gate_channels", "must be a positive even number (it is split in two)")
        for name in ("residual_channels", "skip_channels", "cond_channels"):
            _require(getattr(self, name) >= 1, f"model.decoder.{name}", "must be positive")
        _require(self.cond_layers >= 0, "model.decoder.cond_layers", "must be >= 0")
        _require(self.cond_context_layers >= 0, "model.decoder.cond_context_layers", "must be >= 0")
        _require(self.cond_kernel_size >= 1 and self.cond_kernel_size % 2 == 1,
                 "model.decoder.cond_kernel_size", "must be a positive odd number (centred convolution)")
        _require(self.pitch_lag_taps == 0 or (self.pitch_lag_taps > 0 and self.pitch_lag_taps % 2 == 1),
                 "model.decoder.pitch_lag_taps", "must be 0 (off) or a positive odd number (taps centred on T)")

    @property
    def dilations(self) -> tuple[int, ...]:
        """Dilation of each layer, in samples."""
        return tuple(2 ** (i % self.dilation_cycle) for i in range(self.n_layers))

    @property
    def receptive_field(self) -> int:
        """Samples of past input that reach one output: (kernel_size - 1) * sum(dilations) + 1."""
        return (self.kernel_size - 1) * sum(self.dilations) + 1

    @property
    def cond_reach(self) -> int:
        """Code frames on either side of a frame that reach its conditioning (the conditioning convolutions'
        half-widths summed): 2 for the paper model, 2 + 15 with four context blocks."""
        half = self.cond_kernel_size // 2
        return self.cond_layers * half + half * (2 ** self.cond_context_layers - 1)


@dataclass(frozen=True)
class PitchConfig:
    """A log-F0 + voicing code stream beside the content codes ("Extended VQ-VAE", Zhao et al. 2020): the
    decoder is told the pitch instead of having to find it in 64x-downsampled codes.

    Each pitch symbol covers `frame_codes` code frames; symbol 0 means unvoiced (or silent), symbols 1 ..
    2**bits - 1 are log-F0 bins spaced evenly from `fmin_hz` to `fmax_hz`. The tracker is YIN (de Cheveigne and
    Kawahara 2002; `speechvq.pitch`), in torch, so it runs on the training device inside the model.
    """

    bits: int = 0  # bits per pitch symbol; 0 = no pitch stream (the paper)
    frame_codes: int = 4  # code frames per symbol: hop 64 at 16 kHz -> 256 samples, 16 ms, 62.5 symbols/s
    fmin_hz: float = 60.0
    fmax_hz: float = 400.0
    # YIN: a frame is voiced when its cumulative-mean-normalised difference at the chosen period is below this
    # (against pyin on 12 test utterances: 0.2 agreed on voicing in 70% of frames, 0.4 in 82%, 0.5 in 85% with
    # more gross F0 errors: 2.6%, 4.2%, 4.9%; see speechvq/pitch.py)
    voicing_threshold: float = 0.4
    silence_dbfs: float = -60.0  # frames quieter than this (at the model's level) are unvoiced

    def __post_init__(self) -> None:
        _require(self.bits == 0 or 2 <= self.bits <= 8, "model.pitch.bits", "must be 0 (off) or between 2 and 8")
        _require(self.frame_codes >= 1, "model.pitch.frame_codes", "must be positive")
        _require(0 < self.fmin_hz < self.fmax_hz, "model.pitch.fmin_hz", "must be positive and below fmax_hz")
        _require(0 < self.voicing_threshold < 1, "model.pitch.voicing_threshold", "must lie in (0, 1)")
        _require(self.silence_dbfs < 0, "model.pitch.silence_dbfs", "must be negative (dBFS)")

    @property
    def enabled(self) -> bool:
        """Whether the model has a pitch stream."""
        return self.bits > 0

    @property
    def symbols(self) -> int:
        """Alphabet size: 2**bits (0 = unvoiced, the rest log-F0 bins)."""
        return 1 << self.bits


@dataclass(frozen=True)
class ModelConfig:
    """The whole VQ-VAE: sample rate and targets, encoder, quantizer, speaker embedding, decoder."""

    sample_rate: int = 16000
    mu_law_classes: int = 256  # 8-bit mu-law targets, as in WaveNet
    level_dbfs: typing.Optional[float] = -23.0  # RMS level every utterance is brought to before mu-law; null = off
    speaker_dim: int = 64  # width of the speaker vector the decoder is conditioned on; 0 = none
    # Where the speaker vector comes from: "table", a learned row per training speaker (known voices only);
    # "utterance", computed from the utterance itself at encode time (any speaker; quantized into the code
    # file); "none", no speaker conditioning.
    speaker_mode: str = field(default="table", metadata=_choices("table", "utterance", "none"))
    # utterance mode: "residual", the time-average of the quantizer residual z_e - z_q (VQVC: no extra
    # network), or "mel", a small convolutional encoder over the log-mel spectrogram, trained jointly
    speaker_source: str = field(default="residual", metadata=_choices("residual", "mel"))
    speaker_bits: int = 4  # utterance mode: bits per dimension of the quantized vector in a code file
    # Training only: each frame's code vector is replaced by its left or right neighbour's with this
    # probability (time jitter, Chorowski et al. 2019, who used 0.12 to 0.5): the decoder cannot rely on
    # the exact frame a code came from, which pushes timing and pitch detail into the autoregression.
    code_jitter: float = 0.0
    # The decoder's targets are mu-law of the pre-emphasised waveform x[t] - c x[t-1] (LPCNet: c = 0.85), and
    # its output is de-emphasised; 0 = off (the paper). The encoder sees the plain waveform either way.
    pre_emphasis: float = 0.0
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    pitch: PitchConfig = field(default_factory=PitchConfig)

    def __post_init__(self) -> None:
        _require(self.sample_rate > 0, "model.sample_rate", "must be positive")
        _require(self.mu_law_classes >= 2, "model.mu_law_classes", "must be at least 2")
        _require(self.speaker_dim >= 0, "model.speaker_dim", "must be >= 0")
        _require(1 <= self.speaker_bits <= 8, "model.speaker_bits", "must be between 1 and 8")
        _require(0.0 <= self.code_jitter <= 1.0, "model.code_jitter", "must lie in [0, 1]")
        _require(0.0 <= self.pre_emphasis < 1.0, "model.pre_emphasis", "must lie in [0, 1)")
        _require(self.speaker_mode != "utterance" or self.speaker_dim > 0, "model.speaker_dim",
                 "must be positive in utterance mode")
        _require(self.level_dbfs is None or self.level_dbfs < 0, "model.level_dbfs", "must be negative (dBFS) or null")
        _require(not self.pitch.enabled or self.pitch.fmax_hz < self.sample_rate / 4, "model.pitch.fmax_hz",
                 "must lie below a quarter of the sample rate")
        _require(not self.decoder.pitch_lag_taps or self.pitch.enabled, "model.decoder.pitch_lag_taps",
                 "needs the pitch stream (model.pitch.bits > 0), which gives the period")
        # the latest tap must be a sample already generated: T - n // 2 >= 1 for the shortest period
        _require(not self.decoder.pitch_lag_taps or
                 round(self.sample_rate / self.pitch.fmax_hz) > self.decoder.pitch_lag_taps // 2,
                 "model.decoder.pitch_lag_taps", "must be below twice the shortest pitch period in samples")

    @property
    def hop_length(self) -> int:
        """Samples per code: the encoder's total stride."""
        return self.encoder.hop_length

    @property
    def conditions_on_speaker(self) -> bool:
        """Whether the decoder takes a speaker vector (a table row or an utterance's own)."""
        return self.speaker_mode != "none" and self.speaker_dim > 0

    @property
    def frame_rate_hz(self) -> float:
        """Codes per second."""
        return self.sample_rate / self.hop_length

    @property
    def bitrate_bps(self) -> float:
        """Nominal bitrate of the bit-packed codes: frame rate x ceil(log2 K), plus the pitch stream's
        symbol rate x its bits when there is one; bits per second."""
        return self.frame_rate_hz * self.quantizer.bits_per_code + self.pitch_bitrate_bps

    @property
    def pitch_bitrate_bps(self) -> float:
        """Nominal bitrate of the pitch stream (0 without one), bits per second."""
        return self.frame_rate_hz / self.pitch.frame_codes * self.pitch.bits


@dataclass(frozen=True)
class DataConfig:
    """Where the manifests live and how training examples are cut from them."""

    train_manifest: str = "data/manifests/train.jsonl"
    valid_manifest: str = "data/manifests/valid.jsonl"
    speakers: str = "data/manifests/speakers.json"
    cache_dir: typing.Optional[str] = "data/cache"  # prepared (resampled, level-normalised) audio; null = no cache
    segment_s: float = 1.0  # random crop length of a training example
    batch_size: int = 8  # per process: the global batch under torchrun is batch_size x world size
    num_workers: int = 2
    valid_max_utterances: int = 32  # validation scores one fixed crop from each of the first N valid utterances
    speed_perturb: float = 0.0  # p > 0: training crops at random speeds in [1 - p, 1 + p] (pseudo-speakers)
    # Where training crops come from: "workers", DataLoader workers reading the cached .npy files; "device",
    # the whole prepared training set held on the training device (int16) and cropped there, with no
    # worker processes and no host-to-device copy of audio (4.6 h of speech is about 530 MB).
    loader: str = field(default="workers", metadata=_choices("workers", "device"))

    def __post_init__(self) -> None:
        _require(self.segment_s > 0, "data.segment_s", "must be positive")
        _require(self.valid_max_utterances >= 1, "data.valid_max_utterances", "must be positive")
        _require(self.batch_size >= 1, "data.batch_size", "must be positive")
        _require(self.num_workers >= 0, "data.num_workers", "must be >= 0")
        _require(0.0 <= self.speed_perturb < 0.5, "data.speed_perturb", "must lie in [0, 0.5)")
        _require(self.loader == "workers" or self.speed_perturb == 0.0, "data.speed_perturb",
                 "needs data.loader=workers (the device loader crops without resampling)")


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule, precision and the intervals of logging, validation and checkpoints."""

    seed: int = 0
    lr: float = 2e-4
    adam_betas: tuple[float, ...] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global L2 norm; 0 disables
    max_steps: int = 200_000
    warmup_steps: int = 1000
    lr_schedule: str = field(default="cosine", metadata=_choices("constant", "cosine"))
    precision: str = field(default="fp32", metadata=_choices("fp32", "bf16"))
    log_every: int = 50
    valid_every: int = 2000
    checkpoint_every: int = 1000
    valid_audio_s: float = 0.5  # seconds resynthesised (autoregressively) for TensorBoard at validation; 0 = none
    # torch.compile the decoder's teacher-forced loss (fused gates, residual sums and cross-entropy); the crop
    # shape is static, so it compiles once. Same function, different rounding: off by default on the CPU.
    compile: bool = False
    # Train the decoder side only (WaveNet, speaker table, pitch vectors): the encoder, the codebook and an
    # utterance model's speaker encoder keep the weights they start from (`--init`), and the quantizer makes
    # no restarts, so a file's codes stay the same while the decoder continues to learn.
    freeze_encoder: bool = False
    # Adam as one fused kernel over all parameters (CUDA only; the CPU always takes the default implementation).
    # The same update, other rounding; false restores the path the shipped model was trained on.
    fused_optimizer: bool = True
    # With --init: the parameters the source lacks (kept as built, e.g. a new pitch stream's vectors, which start
    # at zero), or holds all at zero (added at zero and not trained yet), learn at lr x this. At a continuation's
    # low rate a zero-initialised tensor hardly moves: the pitch vectors of a CPU continuation at 1e-4 reached an
    # RMS of 0.003 in 750 steps, beside code vectors of 0.6.
    new_weights_lr_scale: float = 1.0
    # With --init: parameter names (fnmatch patterns, e.g. "decoder.lag_embedding.*") that also learn at
    # lr x new_weights_lr_scale though the source has them trained: a tensor added a session ago, still small
    # beside what it is added to, keeps its own rate in the next continuation.
    new_weights_include: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require(self.lr > 0, "train.lr", "must be positive")
        _require(self.new_weights_lr_scale > 0, "train.new_weights_lr_scale", "must be positive")
        _require(not self.new_weights_include or self.new_weights_lr_scale != 1.0, "train.new_weights_include",
                 "names weights for train.new_weights_lr_scale, which is 1: set the scale too")
        _require(len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
                 "train.adam_betas", "must be two numbers in [0, 1)")
        _require(self.grad_clip >= 0, "train.grad_clip", "must be >= 0")
        for name in ("max_steps", "log_every", "valid_every", "checkpoint_every"):
            _require(getattr(self, name) >= 1, f"train.{name}", "must be positive")
        _require(self.warmup_steps >= 0, "train.warmup_steps", "must be >= 0")
        _require(self.valid_audio_s >= 0, "train.valid_audio_s", "must be >= 0")


@dataclass(frozen=True)
class Config:
    """Everything a run needs: model, data, training."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), suitable for YAML, JSON and checkpoints."""
        return _to_plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        """The config as YAML text that `load_config` reads back to an equal Config."""
        return yaml.dump(self.to_dict(), Dumper=_ConfigDumper, sort_keys=False)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Config":
        """Build and validate a Config from a nested dict; missing keys take their defaults.

        Raises:
            ConfigError: naming the dotted key of an unknown key or a value of the wrong type.
        """
        return _build(cls, values, prefix="")


class _ConfigDumper(yaml.SafeDumper):
    """Writes lists on one line (`strides: [2, 2, 2]`) and sections as blocks."""


_ConfigDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


# ----------------------------------------------------------------------------- loading


def preset_names() -> list[str]:
    """Names of the presets shipped inside the package (`paper`, `tiny`, ...)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config(source: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Resolve a preset name or YAML path, then dotted overrides, into a validated Config.

    Args:
        source: a preset name (see `preset_names()`), a path to a YAML file, or None for the defaults
            (the paper setting). A YAML file may name another preset or file in a top-level `include:`
            key; its own values then override the included ones.
        overrides: strings `dotted.key=value`; the value is parsed as YAML (`256`, `true`, `[2, 2, 4]`).

    Raises:
        ConfigError: for a missing or unreadable file, an include cycle, a malformed override, an unknown
            key or a wrongly typed value (the message names the key).
    """
    values = {} if source is None else _read_layered(str(source), seen=())
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(values, key, value)
    return Config.from_dict(values)


def parse_override(item: str) -> tuple[str, Any]:
    """Split `a.b.c=value` into the dotted key and the YAML-parsed value."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
        raise ConfigError(f"override {item!r} is not of the form dotted.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {key}: cannot parse value {text!r}: {err.problem}") from None
    return key, value


def _read_layered(source: str, seen: tuple[Path, ...]) -> dict[str, Any]:
    path = _resolve_source(source, relative_to=seen[-1].parent if seen else None)
    if path in seen:
        raise ConfigError(f"config include cycle: {' -> '.join(str(p) for p in (*seen, path))}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config {path} is not valid YAML: {err}".replace("\n", " ")) from None
    loaded = {} if loaded is None else loaded
    if not isinstance(loaded, dict):
        raise ConfigError(f"config {path} must hold a mapping at the top level")
    include = loaded.pop("include", None)
    if include is None:
        return loaded
    if not isinstance(include, str):
        raise ConfigError(f"config {path}: include must be a preset name or a path")
    return _deep_merge(_read_layered(include, (*seen, path)), loaded)


def _resolve_source(source: str, relative_to: Path | None) -> Path:
    candidates = []
    if relative_to is not None and not Path(source).is_absolute():
        candidates.append(relative_to / source)
    candidates.append(Path(source))
    if "/" not in source and not source.endswith((".yaml", ".yml")):
        candidates.append(PRESET_DIR / f"{source}.yaml")
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise ConfigError(f"no config file or preset named {source!r} (presets: {', '.join(preset_names())})")


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    node = values
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}: {'.'.join(parts[:i + 1])} is a value, not a section")
        node = child
    node[parts[-1]] = value


# ----------------------------------------------------------------------------- validation

_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _build(cls: type, values: Any, prefix: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"config key {prefix.rstrip('.') or '<root>'} must be a section (a mapping)")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ConfigError(f"unknown config key {dotted}{hint}")
        kwargs[key] = _coerce(value, hints[key], dotted, fields[key].metadata.get("choices"))
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str, choices: Sequence[str] | None = None) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key, choices)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key} must be a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key} must be an integer, got {value!r}")
        return value
    if hint is float:
        # PyYAML reads `1e-4` (no dot) as a string, so accept numeric text for float keys.
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key} must be a string, got {value!r}")
        if choices is not None and value not in choices:
            raise ConfigError(f"config key {key} must be one of {', '.join(choices)}, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint!r} for {key}")  # a bug in this module, not user error


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"config key {key} {message}")


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value
