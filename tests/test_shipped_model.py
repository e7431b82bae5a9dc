"""The shipped default model and assets, `speechvq demo`, `speechvq export`, and the optional quality metrics."""

from __future__ import annotations

import json
import math
import sys

import pytest
import soundfile
import torch

from speechvq.assets import (DEMO_VOICES, SAMPLE_SPEAKER, default_model_path, reference_voice_path, resolve_model,
                             sample_speech_path)
from speechvq.checkpoint import export_checkpoint, load_checkpoint, save_checkpoint
from speechvq.cli import main
from speechvq.errors import SpeechVQError
from speechvq.metrics import pesq_wideband, stoi
from speechvq.models import SpeechVQ
from tests.helpers import voiced_signal


def test_shipped_assets_fit_the_shipped_model():
    checkpoint = load_checkpoint(default_model_path())
    assert checkpoint.optimizer_state is None  # weights only
    assert default_model_path().stat().st_size < 25 * 2**20
    assert SAMPLE_SPEAKER in checkpoint.speakers and set(DEMO_VOICES) <= set(checkpoint.speakers)
    assert checkpoint.code_statistics is not None  # entropy-coded files out of the box
    info = soundfile.info(sample_speech_path())
    assert (info.samplerate, info.channels) == (checkpoint.config.model.sample_rate, 1)
    assert all(reference_voice_path(voice) is not None for voice in DEMO_VOICES)
    assert reference_voice_path("nobody") is None
    assert resolve_model(None) == str(default_model_path()) and resolve_model("x.pt") == "x.pt"


def test_encode_and_decode_default_to_the_shipped_model(tmp_path, capsys):
    source = tmp_path / "a.wav"
    soundfile.write(source, (0.3 * voiced_signal(1600)).numpy(), 16000)
    assert main(["encode", str(source)]) == 0
    assert main(["info", str(tmp_path / "a.svq"), "--json"]) == 0
    header = json.loads(capsys.readouterr().out)
    assert header["coding"] == "markov1" and header["nominal_bps"] == 2250.0 + 375.0  # codes, and the pitch stream
    assert main(["decode", str(tmp_path / "a.svq"), "--speaker", "june"]) == 0
    assert soundfile.info(tmp_path / "a.decoded.wav").frames == 1600


@pytest.mark.parametrize("scale", [0.003, 0.3])
def test_decoded_speech_comes_back_at_the_level_of_the_input(scale):
    # the shipped model generates at its training level (-23 dBFS); the recorded gain restores the input's
    from speechvq.audio import load_audio, rms_dbfs
    from speechvq.codec import Codec

    codec = Codec.from_checkpoint(default_model_path())
    speech = load_audio(sample_speech_path(), 16000)[0][:16000]
    wav = scale * speech / speech.abs().max()
    decoded, _ = codec.decompress(codec.compress(wav, speaker=SAMPLE_SPEAKER), seed=0)
    assert abs(rms_dbfs(decoded) - rms_dbfs(wav)) < 4.0  # dB; the two scales are 40 dB apart


@pytest.mark.slow
def test_demo_writes_everything_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seconds", "0.6", "--voices", "june"]) == 0
    for name in ("original.wav", "sample.svq", "decoded.wav", "as_june.wav", "spectrograms.png"):
        assert (out / name).is_file(), name
    assert soundfile.info(out / "decoded.wav").frames == soundfile.info(out / "original.wav").frames == 9600
    printed = capsys.readouterr().out
    assert "bitrate: nominal 2625 bit/s" in printed and "real-time factor: encode" in printed
    assert "june" in printed.split("speaker similarity")[1]  # the similarity table has the conversion's row
    assert main(["demo", "--out", str(out), "--voices", "nobody"]) == 1
    assert "unknown speaker 'nobody'" in capsys.readouterr().err


def test_export_keeps_weights_and_drops_training_state(tmp_path, tiny_config, capsys):
    model = SpeechVQ(tiny_config.model, speakers=["a", "b"]).eval()
    optimizer = torch.optim.Adam(model.parameters())
    model(voiced_signal(1600).view(1, 1, -1), torch.tensor([1])).loss.backward()
    optimizer.step()
    source = tmp_path / "train.pt"
    save_checkpoint(source, model, tiny_config, step=7, optimizer=optimizer,
                    extra={"run": {"best_valid_nll": 3.5, "step": 7}, "rng": {"torch": torch.get_rng_state()}})
    exported = export_checkpoint(source, tmp_path / "model.pt")
    assert exported.optimizer_state is None and exported.step == 7 and exported.extra == {"best_valid_nll": 3.5}
    assert all(torch.equal(exported.model_state[k], v) for k, v in model.state_dict().items())
    assert (tmp_path / "model.pt").stat().st_size < source.stat().st_size
    assert main(["export", str(source), str(tmp_path / "model.pt")]) == 1  # exists: kept without --force
    assert "exists" in capsys.readouterr().err
    # its line says whether the code statistics came along (gpu_session.sh reads it: a frozen run keeps them)
    assert main(["export", str(source), str(tmp_path / "model.pt"), "--force"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(", no code statistics")
    assert main(["export", str(source), str(source), "--force"]) == 1
    assert main(["export", str(tmp_path / "missing.pt"), str(tmp_path / "m.pt")]) == 1
    assert "no such checkpoint" in capsys.readouterr().err and not (tmp_path / "m.pt").exists()


def test_pesq_and_stoi_rank_a_cleaner_copy_higher():
    clean = voiced_signal(16000)
    generator = torch.Generator().manual_seed(1)
    slightly = clean + 0.005 * torch.randn(16000, generator=generator)
    badly = clean + 0.2 * torch.randn(16000, generator=generator)
    assert pesq_wideband(clean, slightly, 16000) > pesq_wideband(clean, badly, 16000) + 1.0
    assert 0.0 <= stoi(clean, badly, 16000) < stoi(clean, slightly, 16000) <= 1.0
    assert math.isnan(pesq_wideband(clean[:800], slightly[:800], 16000))  # too short to score


def test_missing_metric_packages_name_the_extra(monkeypatch):
    for module in ("pesq", "pystoi", "resemblyzer"):
        monkeypatch.setitem(sys.modules, module, None)  # import now fails as if not installed
    clean = voiced_signal(8000)
    with pytest.raises(SpeechVQError, match=r"speechvq\[eval\]"):
        pesq_wideband(clean, clean, 16000)
    with pytest.raises(SpeechVQError, match=r"speechvq\[eval\]"):
        stoi(clean, clean, 16000)
    from speechvq.similarity import SpeakerSimilarity

    with pytest.raises(SpeechVQError, match=r"speechvq\[eval\]"):
        SpeakerSimilarity()


def test_speaker_similarity_separates_voices():
    from speechvq.audio import load_audio
    from speechvq.similarity import SpeakerSimilarity

    scorer = SpeakerSimilarity()
    sample = load_audio(sample_speech_path(), 16000)[0]
    june = load_audio(reference_voice_path("june"), 16000)[0]
    assert scorer.similarity(sample, 16000, sample, 16000) == pytest.approx(1.0, abs=1e-5)
    assert scorer.similarity(sample, 16000, june, 16000) < 0.95
