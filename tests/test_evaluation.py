"""Repeatable decodes: one pinned engine, a key naming everything a decode depends on, and reuse under it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from speechvq.data.manifest import Utterance
from speechvq.errors import SpeechVQError
from speechvq.evaluation import (average_over_seeds, decode_key, files_without_speech, pinned_decoding,
                                 reusable_report)
from speechvq.generation import native
from tests.helpers import tiny_codec

DECODING = {"engine": "native", "precision": "fp16", "march": "native",
            "cpu": {"model": "AMD EPYC", "machine": "x86_64", "flags": "0123"}, "threads": 2}


def test_a_decode_is_reused_only_under_the_same_key(tmp_path):
    entries = [Utterance("u0", "/corpus/u0.wav", "a", 1.5), Utterance("u1", "/corpus/u1.wav", "b", 2.0)]
    key = decode_key("0123456789abcdef", entries, None, 0.6, 0, DECODING)
    assert reusable_report(tmp_path, key) is None  # nothing there
    (tmp_path / "report.json").write_text(json.dumps({"files": [], "mean": {"stoi": 0.5}}))
    assert reusable_report(tmp_path, key) is None  # a report without its key
    (tmp_path / "decode_key.json").write_text(json.dumps(key))
    assert reusable_report(tmp_path, key) == {"files": [], "mean": {"stoi": 0.5}}
    # any one setting changed names another decode: the same weights and seed sample other audio on another
    # engine, precision, build or CPU
    other_decodings = [{**DECODING, "engine": "numba", "precision": "full", "march": None},
                       {**DECODING, "precision": "fp32"}, {**DECODING, "march": "x86-64-v3"},
                       {**DECODING, "cpu": {**DECODING["cpu"], "flags": "4567"}}, {**DECODING, "threads": 16}]
    for changed in (decode_key("fedcba9876543210", entries, None, 0.6, 0, DECODING),
                    decode_key("0123456789abcdef", entries[:1], None, 0.6, 0, DECODING),
                    decode_key("0123456789abcdef", entries, 3.0, 0.6, 0, DECODING),
                    decode_key("0123456789abcdef", entries, None, 0.7, 0, DECODING),
                    decode_key("0123456789abcdef", entries, None, 0.6, 1, DECODING),
                    *(decode_key("0123456789abcdef", entries, None, 0.6, 0, other) for other in other_decodings)):
        assert reusable_report(tmp_path, changed) is None
    (tmp_path / "report.json").write_text("{truncated")
    assert reusable_report(tmp_path, key) is None


def test_pinned_decoding_names_one_engine_and_its_kernels(monkeypatch):
    decoder = tiny_codec().model.decoder
    options, described = pinned_decoding(decoder)  # auto: this machine's fastest, resolved once
    assert options.engine == described["engine"] and options.engine in ("native", "numba", "torch")
    assert described["cpu"]["machine"] and described["threads"] >= 1
    assert json.loads(json.dumps(described)) == described
    options, described = pinned_decoding(decoder, "torch", "full")
    assert (options.engine, options.precision, described["precision"], described["march"]) == ("torch", "full",
                                                                                                "full", None)
    if native.available("fp16"):
        # native names its kernels; the options carry the general name that selects them
        options, described = pinned_decoding(decoder, "native", "reduced")
        assert (options.precision, described["precision"], described["march"]) == ("reduced", "fp16",
                                                                                    native.default_march())
        options, described = pinned_decoding(decoder, "native", "full")
        assert (options.precision, described["precision"]) == ("full", "fp32")
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # the tests' interpreter would run it
    with pytest.raises(SpeechVQError, match="the triton engine needs"):
        pinned_decoding(decoder, "triton")


def test_each_files_scores_are_averaged_over_seeds():
    seed0 = {"files": [{"id": "a", "stoi": 0.5, "mcd_db": 4.0}, {"id": "b", "stoi": 0.7, "mcd_db": float("nan")}]}
    seed1 = {"files": [{"id": "a", "stoi": 0.6, "mcd_db": 5.0}, {"id": "b", "stoi": 0.8, "mcd_db": 3.0}]}
    merged = average_over_seeds([seed0, seed1], ["stoi", "mcd_db", "pesq_wb"])
    files = {f["id"]: f for f in merged["files"]}
    assert files["a"]["stoi"] == pytest.approx(0.55, abs=1e-12) and files["b"]["stoi"] == pytest.approx(0.75, abs=1e-12)
    assert files["b"]["mcd_db"] == 3.0  # the one finite value
    assert files["a"]["pesq_wb"] is None and merged["mean"]["pesq_wb"] is None  # scored by neither
    assert merged["mean"]["stoi"] == pytest.approx(0.65, abs=1e-12) and merged["mean"]["mcd_db"] == pytest.approx(3.75)


def test_recordings_without_a_loud_frame_hold_no_speech(tmp_path):
    t = np.arange(16000) / 16000
    soundfile.write(tmp_path / "speech.wav", 0.3 * np.sin(2 * np.pi * 200 * t), 16000)
    soundfile.write(tmp_path / "silence.flac", 3e-4 * np.sin(2 * np.pi * 200 * t), 16000)  # peak -70 dBFS
    soundfile.write(tmp_path / "quiet.wav", 0.01 * np.sin(2 * np.pi * 200 * t), 16000)  # -43 dBFS: speech level
    entries = [Utterance(name, str(tmp_path / f"{name}.{ext}"), "a", 1.0)
               for name, ext in (("speech", "wav"), ("silence", "flac"), ("quiet", "wav"))]
    assert files_without_speech(entries) == ["silence"]
