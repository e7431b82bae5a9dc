"""Config: presets, include layering, dotted overrides, errors that name the key, derived values."""

from __future__ import annotations

import math

import pytest
import yaml

from speechvq.config import Config, load_config, parse_override, preset_names
from speechvq.errors import ConfigError


def test_paper_preset_equals_the_dataclass_defaults():
    assert load_config("paper") == Config() == load_config(None)


@pytest.mark.parametrize("name", ["paper", "tiny", "librispeech", "phones"])
def test_every_preset_loads(name):
    assert name in preset_names()
    assert isinstance(load_config(name), Config)


def test_derived_values_are_computed():
    paper = load_config("paper")
    assert paper.model.hop_length == 64 and paper.model.encoder.kernel_sizes == (4,) * 6
    assert paper.model.frame_rate_hz == 250.0
    assert paper.model.bitrate_bps == 250.0 * 9  # 2.25 kbit/s, the paper's figure
    assert paper.model.decoder.dilations == (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) * 2
    assert paper.model.decoder.receptive_field == 2 * 1023 + 1
    assert load_config("librispeech").model.hop_length == 128
    phones = load_config("phones")
    assert phones.model.hop_length == 640 and phones.model.quantizer.codebook_size == 128
    override = load_config("paper", ["model.encoder.strides=[4, 4, 4]"])
    assert override.model.hop_length == 64 and override.model.encoder.kernel_sizes == (8, 8, 8)


def test_overrides_are_typed():
    cfg = load_config("tiny", ["model.quantizer.codebook_size=32", "train.lr=1e-4", "model.quantizer.ema=true",
                               "train.adam_betas=[0.5, 0.9]", "model.level_dbfs=null", "train.lr_schedule=constant"])
    assert cfg.model.quantizer.codebook_size == 32
    assert cfg.train.lr == pytest.approx(1e-4) and isinstance(cfg.train.lr, float)
    assert cfg.model.quantizer.ema is True
    assert cfg.train.adam_betas == (0.5, 0.9)
    assert cfg.model.level_dbfs is None
    assert cfg.train.lr_schedule == "constant"
    # later overrides win
    assert load_config("tiny", ["train.seed=1", "train.seed=2"]).train.seed == 2


@pytest.mark.parametrize("override, message", [
    ("model.quantizer.codebok_size=32", "unknown config key model.quantizer.codebok_size"),
    ("modle.sample_rate=8000", "unknown config key modle"),
    ("model.quantizer.codebook_size=abc", "model.quantizer.codebook_size must be an integer"),
    ("model.quantizer.codebook_size=3.5", "model.quantizer.codebook_size must be an integer"),
    ("model.quantizer.ema=yes please", "model.quantizer.ema must be true or false"),
    ("train.lr=fast", "train.lr must be a number"),
    ("train.lr_schedule=linear", "train.lr_schedule must be one of constant, cosine"),
    ("model.encoder.strides=2", "model.encoder.strides must be a list"),
    ("model.encoder.strides=[2, x]", r"model.encoder.strides\[1\] must be an integer"),
    ("model.encoder=3", "model.encoder must be a section"),
    ("model.quantizer.codebook_size.x=3", "model.quantizer.codebook_size is a value"),
    ("model.decoder.gate_channels=33", "model.decoder.gate_channels must be a positive even number"),
    ("model.decoder.cond_context_layers=-1", "model.decoder.cond_context_layers must be >= 0"),
    ("train.lr", "not of the form dotted.key=value"),
])
def test_bad_override_names_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("tiny", [override])


def test_unknown_key_in_a_file_names_it(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("include: tiny\nmodel:\n  decoder:\n    n_layer: 4\n")
    with pytest.raises(ConfigError, match=r"unknown config key model.decoder.n_layer \(did you mean model.decoder.n_layers"):
        load_config(path)


def test_include_layers_and_relative_paths(tmp_path):
    (tmp_path / "base.yaml").write_text("include: tiny\ntrain:\n  lr: 5.0e-4\n  seed: 7\n")
    (tmp_path / "ablation.yaml").write_text("include: base.yaml\ntrain:\n  seed: 8\n")
    cfg = load_config(tmp_path / "ablation.yaml", ["data.batch_size=2"])
    tiny = load_config("tiny")
    assert cfg.train.seed == 8 and cfg.train.lr == 5e-4 and cfg.data.batch_size == 2
    assert cfg.model == tiny.model


def test_include_cycle_and_missing_files_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("include: b.yaml\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="no config file or preset named 'nope'"):
        load_config("nope")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("model: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")


def test_yaml_round_trip(tmp_path):
    cfg = load_config("phones", ["model.level_dbfs=null", "train.adam_betas=[0.8, 0.99]"])
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg
    assert yaml.safe_load(cfg.to_yaml())["model"]["encoder"]["strides"] == list(cfg.model.encoder.strides)
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_parse_override_values():
    assert parse_override("a.b=256") == ("a.b", 256)
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("a= hello ") == ("a", "hello")
    assert math.isclose(float(parse_override("a=1e-4")[1]), 1e-4)
