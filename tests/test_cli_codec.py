"""encode / decode / info / code-stats from the command line, and every bad input the codec must survive."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from speechvq.checkpoint import save_checkpoint
from speechvq.cli import main
from speechvq.config import load_config
from speechvq.models import SpeechVQ
from tests.helpers import voiced_signal


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    config = load_config("tiny")
    path = tmp_path / "model.pt"
    save_checkpoint(path, SpeechVQ(config.model, speakers=["a", "b"]).eval(), config)
    return path


def write(path, seconds=0.05, rate=16000, channels=1, subtype="PCM_16", scale=0.3):
    wav = scale * voiced_signal(int(seconds * rate), rate).numpy()
    soundfile.write(path, np.stack([wav] * channels, axis=1) if channels > 1 else wav, rate, subtype=subtype)
    return path


def run(*argv):
    return main([str(a) for a in argv])


def codec_voice(path, model_path) -> str:
    """The voice a code file decodes in by default."""
    from speechvq.codec import Codec

    return Codec.from_checkpoint(model_path).read(path.read_bytes())[1].voice


def test_encode_decode_info_round_trip(tmp_path, model_path, capsys):
    source = write(tmp_path / "a.wav")
    assert run("encode", source, "--model", model_path, "--speaker", "b") == 0
    code_file = tmp_path / "a.svq"
    assert code_file.is_file() and "nominal 1000" in capsys.readouterr().err
    assert run("info", code_file, "--json", "--model", model_path) == 0
    info = json.loads(capsys.readouterr().out.splitlines()[0])
    assert info["speaker"] == "voice" and info["speaker_voice"] == 1 and info["voice"] == "b"
    assert info["frames"] == 13 and info["samples"] == 800 and info["format_version"] == 2
    assert info["nominal_bps"] == 1000.0 and info["file_bps"] == pytest.approx(8 * code_file.stat().st_size / 0.05, rel=1e-3)
    assert 0 <= info["entropy_bps"] <= 1000.0
    assert info["file_bytes"] == code_file.stat().st_size <= 15 + 2 + 1 + 1 + 8  # header, varints, voice, 13 codes
    assert run("info", code_file, "--json") == 0  # the shipped model did not make it: what the file says
    alone = json.loads(capsys.readouterr().out)
    assert alone["samples"] == 800 and "need the model that made it" in alone["note"]
    assert run("decode", code_file, "--model", model_path) == 0
    decoded = tmp_path / "a.decoded.wav"
    assert soundfile.info(decoded).frames == 800
    err = capsys.readouterr().err
    assert "voice: b" in err and "real-time factor" in err


def test_decode_best_of(tmp_path, model_path, capsys):
    source = write(tmp_path / "a.wav", seconds=0.4)
    assert run("encode", source, "--model", model_path, "--speaker", "b") == 0
    code_file = tmp_path / "a.svq"
    settings = {"one": ["--best-of", "1"], "per chunk": ["--best-of", "3", "--choose-every", "0"],
                "default": ["--best-of", "3"], "every 0.064": ["--best-of", "3", "--choose-every", "0.064"],
                "every 0.128": ["--best-of", "3", "--choose-every", "0.128"]}
    decoded, summaries = {}, {}
    for name, flags in settings.items():
        path = tmp_path / f"{name}.wav"
        capsys.readouterr()
        assert run("decode", code_file, "--model", model_path, *flags, "-o", path) == 0
        summaries[name] = capsys.readouterr().err.strip().splitlines()[-1]
        decoded[name] = soundfile.read(path)[0]
        assert decoded[name].shape == (6400,)
    # the summary line says how it was decoded
    assert summaries["one"].endswith(", chunked)")
    assert summaries["per chunk"].endswith(", chunked, best of 3 chosen per chunk)")
    assert summaries["default"].endswith(", chunked, best of 3 chosen every 0.064 s)")
    # --best-of alone chooses every 0.064 s (the measured best); 0 chooses once per chunk: other audio
    assert np.array_equal(decoded["default"], decoded["every 0.064"])
    assert not np.array_equal(decoded["one"], decoded["per chunk"])
    assert not np.array_equal(decoded["per chunk"], decoded["default"])
    assert not np.array_equal(decoded["default"], decoded["every 0.128"])
    for bad, message in ((["--best-of", "0"], "best_of must be at least 1"),
                         (["--best-of", "2", "--choose-every", "-1"], "choose_every_s must be positive")):
        capsys.readouterr()
        assert run("decode", code_file, "--model", model_path, *bad, "-o", tmp_path / "none.wav") == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[-1].startswith("speechvq: error:") and message in lines[-1]
        assert not (tmp_path / "none.wav").exists()


def test_version_1_and_metadata_on_request(tmp_path, model_path, capsys):
    source = write(tmp_path / "a.wav")
    assert run("encode", source, "-o", tmp_path / "old.svq", "--model", model_path, "--speaker", "a",
               "--format-version", "1") == 0
    assert run("encode", source, "-o", tmp_path / "tagged.svq", "--model", model_path, "--metadata", "take=3",
               "note=a b") == 0
    capsys.readouterr()
    assert run("info", tmp_path / "old.svq", "--json") == 0  # a v1 file describes itself, no model needed
    old = json.loads(capsys.readouterr().out)
    assert old["format_version"] == 1 and old["speaker_voice"] == "a" and old["duration_s"] == 0.05
    assert old["file_bytes"] > 250
    assert run("info", tmp_path / "tagged.svq", "--json", "--model", model_path) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["metadata"] == {"take": "3", "note": "a b"}
    assert run("decode", tmp_path / "old.svq", "--model", model_path) == 0
    assert soundfile.info(tmp_path / "old.decoded.wav").frames == 800
    assert run("encode", source, "-o", tmp_path / "bad.svq", "--model", model_path, "--metadata", "novalue") == 1
    assert "KEY=VALUE" in capsys.readouterr().err and not (tmp_path / "bad.svq").exists()


def test_a_table_model_without_speaker_records_its_closest_voice_and_says_so(tmp_path, model_path, capsys):
    source = write(tmp_path / "a.wav", seconds=0.2)
    assert run("encode", source, "--model", model_path) == 0
    err = capsys.readouterr().err
    assert "no --speaker given: recorded the closest training voice" in err
    chosen = err.split("closest training voice, ")[1].split(" ")[0]
    assert chosen in ("a", "b") and f"voice: {chosen}" in err


@pytest.fixture
def utterance_model_path(tmp_path):
    torch.manual_seed(0)
    config = load_config("tiny", ["model.speaker_mode=utterance"])
    path = tmp_path / "utterance.pt"
    save_checkpoint(path, SpeechVQ(config.model, speakers=["a", "b"]).eval(), config)
    return path


def test_any_speaker_with_an_utterance_model(tmp_path, utterance_model_path, capsys):
    source, reference = write(tmp_path / "src.wav", seconds=0.1), write(tmp_path / "ref.wav", seconds=0.2)
    assert run("encode", source, "--model", utterance_model_path) == 0
    assert "voice: its own voice" in capsys.readouterr().err
    assert run("info", tmp_path / "src.svq", "--json", "--model", utterance_model_path) == 0
    info = json.loads(capsys.readouterr().out.splitlines()[0])
    assert info["speaker"] == "vector" and info["speaker_vector_bytes"] == 4  # 8 dimensions x 4 bits
    assert run("decode", tmp_path / "src.svq", "--model", utterance_model_path, "--like", reference) == 0
    assert "voice: like ref.wav" in capsys.readouterr().err
    assert soundfile.info(tmp_path / "src.decoded.wav").frames == 1600
    assert run("convert", source, "--like", reference, "--model", utterance_model_path, "--out-dir",
               tmp_path / "vc") == 0
    assert (tmp_path / "vc" / "src.like-ref.wav").is_file()
    assert run("convert", source, "--speaker", "b", "--model", utterance_model_path, "--out-dir", tmp_path / "vc") == 0
    assert (tmp_path / "vc" / "src.b.wav").is_file()
    assert run("convert", source, "--like", tmp_path / "missing.wav", "--model", utterance_model_path, "--out-dir",
               tmp_path / "vc2") == 1
    assert "no such audio file" in capsys.readouterr().err and not (tmp_path / "vc2").exists()


def test_a_pitch_stream_model_from_the_command_line(tmp_path, capsys):
    torch.manual_seed(0)
    config = load_config("tiny", ["model.pitch.bits=6"])
    model = SpeechVQ(config.model, speakers=["a", "b"]).eval()
    torch.nn.init.normal_(model.pitch_embedding.weight, std=0.3)
    model.voice_pitch.copy_(torch.tensor([20.0, 35.0]))
    model.voice_pitch_updates.fill_(1)
    model_path = tmp_path / "pitch.pt"
    save_checkpoint(model_path, model, config)
    source = write(tmp_path / "src.wav", seconds=0.2)
    assert run("info", "--model", model_path) == 0
    assert "pitch_stream: 6 bits every 4 codes (375 bit/s)" in capsys.readouterr().out
    assert run("encode", source, "--model", model_path, "--speaker", "a") == 0
    assert "bit/s nominal 1375" in capsys.readouterr().err  # 4-bit codes at 250 Hz + 375
    assert run("info", tmp_path / "src.svq", "--json", "--model", model_path) == 0
    info = json.loads(capsys.readouterr().out.splitlines()[0])
    assert info["pitch_stream_bytes"] == 10  # ceil(3200 / 256) = 13 symbols x 6 bits
    assert run("decode", tmp_path / "src.svq", "--model", model_path, "--speaker", "b") == 0
    assert soundfile.info(tmp_path / "src.decoded.wav").frames == 3200
    # the codes of a model without the stream, and a file without it, are refused with one line
    assert run("decode", tmp_path / "src.svq", "--model", tmp_path / "missing.pt", "-o", tmp_path / "x.wav") == 1
    capsys.readouterr()
    plain_path = tmp_path / "plain.pt"
    save_checkpoint(plain_path, SpeechVQ(load_config("tiny").model, speakers=["a", "b"]).eval(), load_config("tiny"))
    assert run("decode", tmp_path / "src.svq", "--model", plain_path, "-o", tmp_path / "y.wav") == 1
    err = capsys.readouterr().err
    assert "different model" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "y.wav").exists()


def test_folders_globs_and_output_folders(tmp_path, model_path):
    for name in ("x.wav", "sub/y.flac", "sub/z.ogg"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        write(tmp_path / "in" / name, subtype="VORBIS" if name.endswith("ogg") else "PCM_16")
    (tmp_path / "in" / "notes.txt").write_text("not audio")
    assert run("encode", tmp_path / "in", "-o", tmp_path / "codes/", "--model", model_path) == 0
    assert sorted(p.name for p in (tmp_path / "codes").iterdir()) == ["x.svq", "y.svq", "z.svq"]
    assert run("decode", str(tmp_path / "codes" / "*.svq"), "-o", tmp_path / "out", "--model", model_path) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.decoded.wav", "y.decoded.wav", "z.decoded.wav"]


def test_existing_output_needs_force(tmp_path, model_path, capsys):
    source = write(tmp_path / "a.wav")
    assert run("encode", source, "--model", model_path) == 0
    before = (tmp_path / "a.svq").read_bytes()
    assert run("encode", source, "--model", model_path, "--coding", "packed", "--speaker", "a") == 1
    assert "exists; use --force" in capsys.readouterr().err and (tmp_path / "a.svq").read_bytes() == before
    chosen = codec_voice(tmp_path / "a.svq", model_path)
    other = "b" if chosen == "a" else "a"
    assert run("encode", source, "--model", model_path, "--speaker", other, "--force") == 0
    assert (tmp_path / "a.svq").read_bytes() != before


@pytest.mark.parametrize("rate, channels, subtype", [(8000, 1, "PCM_16"), (22050, 2, "PCM_16"), (44100, 1, "PCM_24"),
                                                      (48000, 2, "FLOAT"), (16000, 1, "PCM_24")])
def test_any_rate_channels_and_sample_format(tmp_path, model_path, capsys, rate, channels, subtype):
    source = write(tmp_path / "in.wav", rate=rate, channels=channels, subtype=subtype)
    assert run("encode", source, "--model", model_path) == 0
    err = capsys.readouterr().err
    assert ("resampled" in err) == (rate != 16000) and ("downmixed 2 channels" in err) == (channels == 2)
    assert run("info", tmp_path / "in.svq", "--json") == 0
    assert json.loads(capsys.readouterr().out)["samples"] == pytest.approx(800, abs=1)


def test_silence_encodes_and_decodes(tmp_path, model_path):
    source = tmp_path / "silence.wav"
    soundfile.write(source, np.zeros(800, np.float32), 16000)
    assert run("encode", source, "--model", model_path) == 0
    assert run("decode", tmp_path / "silence.svq", "--model", model_path) == 0


def test_clipped_input_is_warned_about(tmp_path, model_path, capsys):
    source = write(tmp_path / "loud.wav", scale=3.0)
    assert run("encode", source, "--model", model_path) == 0
    assert "looks clipped" in capsys.readouterr().err


def bad_audio(tmp_path, kind):
    path = tmp_path / "bad.wav"
    if kind == "missing":
        return tmp_path / "missing.wav", "no such audio file"
    if kind == "empty file":
        path.write_bytes(b"")
        return path, "cannot read audio file"
    if kind == "zero-length audio":
        soundfile.write(path, np.zeros(0, np.float32), 16000)
        return path, "holds no samples"
    if kind == "not audio":
        path.write_bytes(b"<html>this is a web page</html>" * 20)
        return path, "cannot read audio file"
    if kind == "nan":
        soundfile.write(path, np.array([0.1, np.nan, 0.2] * 100, np.float32), 16000, subtype="FLOAT")
        return path, "NaN or infinite"
    if kind == "inf":
        soundfile.write(path, np.array([0.1, np.inf, 0.2] * 100, np.float32), 16000, subtype="FLOAT")
        return path, "NaN or infinite"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "empty file", "zero-length audio", "not audio", "nan", "inf"])
def test_bad_audio_fails_with_one_line_and_no_output(tmp_path, model_path, capsys, kind):
    source, message = bad_audio(tmp_path, kind)
    assert run("encode", source, "--model", model_path) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("speechvq: error:") and message in lines[-1]
    assert not list(tmp_path.glob("*.svq")) and not list(tmp_path.glob(".*.svq*"))


def test_one_bad_file_does_not_stop_the_others(tmp_path, model_path, capsys):
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "good.wav")
    (tmp_path / "in" / "bad.wav").write_bytes(b"garbage" * 10)
    assert run("encode", tmp_path / "in", "--model", model_path) == 1
    assert (tmp_path / "in" / "good.svq").is_file() and not (tmp_path / "in" / "bad.svq").exists()
    assert "1 of 2 files failed" in capsys.readouterr().err


def test_folder_or_nothing_where_files_are_expected(tmp_path, model_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run("encode", tmp_path / "empty", "--model", model_path) == 1
    assert "no input files" in capsys.readouterr().err
    assert run("info", tmp_path / "empty") == 1
    assert "is a folder" in capsys.readouterr().err


def code_file_damage(data: bytes, kind: str) -> bytes:
    if kind == "truncated":
        return data[: len(data) // 2]
    if kind == "wrong magic":
        return b"RIFF" + data[4:]
    if kind == "version":
        return data[:3] + bytes([3]) + data[4:]
    if kind == "crc":
        return data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, message", [("truncated", "truncated"), ("wrong magic", "wrong magic"),
                                           ("version", "format version 3"), ("crc", "CRC-32 mismatch")])
def test_damaged_code_files_fail_with_one_line_and_no_output(tmp_path, model_path, capsys, kind, message):
    assert run("encode", write(tmp_path / "a.wav"), "--model", model_path) == 0
    code_file = tmp_path / "a.svq"
    code_file.write_bytes(code_file_damage(code_file.read_bytes(), kind))
    capsys.readouterr()
    assert run("decode", code_file, "--model", model_path) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("speechvq: error:") and message in err[0]
    assert not (tmp_path / "a.decoded.wav").exists()
    assert run("info", code_file) == 1


def test_a_checkpoint_given_as_a_code_file_is_named_as_one(tmp_path, model_path, capsys):
    assert run("info", model_path) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wrong magic bytes; it looks like a model checkpoint: pass it with --model" in err[0]
    assert run("info", "--model", model_path) == 0


def test_code_file_of_another_model(tmp_path, model_path, capsys):
    assert run("encode", write(tmp_path / "a.wav"), "--model", model_path) == 0
    torch.manual_seed(99)
    config = load_config("tiny")
    other = tmp_path / "other.pt"
    save_checkpoint(other, SpeechVQ(config.model, speakers=["a", "b"]), config)
    capsys.readouterr()
    assert run("decode", tmp_path / "a.svq", "--model", other) == 1
    assert "made by a different model" in capsys.readouterr().err
    assert not (tmp_path / "a.decoded.wav").exists()


def test_code_stats_switch_encode_to_entropy_coding(tmp_path, model_path, capsys):
    from speechvq.data.manifest import Utterance, write_manifest

    sources = [write(tmp_path / f"t{i}.wav", seconds=0.2) for i in range(3)]
    write_manifest(tmp_path / "train.jsonl", [Utterance(f"t{i}", str(p), "a", 0.2) for i, p in enumerate(sources)])
    assert run("code-stats", "--model", model_path, "--manifest", tmp_path / "train.jsonl", "--max-files", "2",
               "--spread") == 0
    assert "from 2 utterances" in capsys.readouterr().err
    assert run("code-stats", "--model", model_path, "--manifest", tmp_path / "train.jsonl") == 0
    assert "from 3 utterances" in capsys.readouterr().err
    assert run("encode", sources[0], "-o", tmp_path / "coded.svq", "--model", model_path) == 0
    assert run("info", tmp_path / "coded.svq", "--json") == 0
    assert json.loads(capsys.readouterr().out)["coding"] == "markov1"
    assert run("decode", tmp_path / "coded.svq", "--model", model_path) == 0
    assert run("info", "--model", model_path, "--json") == 0
    assert json.loads(capsys.readouterr().out)["code_statistics"] is True
