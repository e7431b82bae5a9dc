"""Recipes: the folder recipe end to end with the tiny config; the corpus recipes' manifest stage."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from tests.helpers import make_folder_corpus

ROOT = Path(__file__).resolve().parents[1]


def recipe_copy(tmp_path: Path, name: str) -> Path:
    """A copy of recipes/<name> with ../../tools beside it, so the run writes nothing into the repository."""
    # a developer's own run outputs (ignored by git) must not make the copy's stages look done
    outputs = shutil.ignore_patterns("data", "exp", "download", "__pycache__")
    shutil.copytree(ROOT / "recipes" / name, tmp_path / "recipes" / name, ignore=outputs)
    shutil.copytree(ROOT / "tools", tmp_path / "tools", ignore=outputs)
    return tmp_path / "recipes" / name


def run_recipe(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", "run.sh", *args], cwd=folder, capture_output=True, text=True, env=env,
                          timeout=900)


@pytest.mark.slow
def test_folder_recipe_runs_every_stage_with_the_tiny_config(tmp_path):
    make_folder_corpus(tmp_path / "corpus", speakers=3, utterances=5, seconds=0.5)
    recipe = recipe_copy(tmp_path, "folder")
    args = ["--corpus_dir", str(tmp_path / "corpus"), "--conf", "conf/tiny.yaml", "--holdout_speakers", "spk2",
            "--valid_per_speaker", "1", "--test_per_speaker", "1", "--eval_files", "2", "--eval_seconds", "0.1",
            "--overrides", "train.max_steps=20 train.valid_every=10 train.checkpoint_every=10"]
    result = run_recipe(recipe, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    manifests, exp = recipe / "data" / "manifests", recipe / "exp" / "tiny"
    assert json.loads((manifests / "speakers.json").read_text()) == {"speakers": ["spk0", "spk1"]}
    assert len((manifests / "unseen.jsonl").read_text().splitlines()) == 5
    assert json.loads((manifests / "check.json").read_text())["rejected"] == 0
    for name in ("last.pt", "best.pt", "config.yaml", "metrics.jsonl", "eval/report.md", "eval/report.json"):
        assert (exp / name).is_file(), name
    assert len(json.loads((exp / "eval" / "report.json").read_text())["files"]) == 2
    unseen_report = json.loads((exp / "eval" / "unseen" / "report.json").read_text())
    assert [f["seen"] for f in unseen_report["files"]] == [False, False]  # spk2, reported on its own
    assert sorted(p.name for p in (exp / "vc").glob("*.wav")) == [
        "utt00.spk0.wav", "utt00.spk1.wav", "utt01.spk0.wav", "utt01.spk1.wav"]
    # every stage is done: a second run does nothing and succeeds
    again = run_recipe(recipe, *args)
    assert again.returncode == 0 and "Stage" not in again.stderr


def test_vctk_and_librispeech_manifest_stages_on_fake_trees(tmp_path):
    tone = (0.3 * np.sin(np.arange(4800) * 0.05)).astype(np.float32)
    vctk = tmp_path / "VCTK-Corpus-0.92" / "wav48_silence_trimmed"
    for speaker in ("p225", "p226"):
        for i in range(1, 4):
            (vctk / speaker).mkdir(parents=True, exist_ok=True)
            soundfile.write(vctk / speaker / f"{speaker}_{i:03d}_mic2.flac", tone, 48000)
    recipe = recipe_copy(tmp_path / "v", "vctk")
    result = run_recipe(recipe, "--stage", "1", "--stop_stage", "1", "--corpus_dir", str(tmp_path / "VCTK-Corpus-0.92"),
                        "--valid_per_speaker", "1", "--test_per_speaker", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len((recipe / "data/manifests/train.jsonl").read_text().splitlines()) == 2

    libri = tmp_path / "LibriSpeech" / "train-clean-100" / "19" / "198"
    libri.mkdir(parents=True)
    for i in range(3):
        soundfile.write(libri / f"19-198-{i:04d}.flac", tone, 16000)
    recipe = recipe_copy(tmp_path / "l", "librispeech")
    result = run_recipe(recipe, "--stage", "1", "--stop_stage", "1", "--corpus_dir", str(tmp_path / "LibriSpeech"),
                        "--valid_per_speaker", "1", "--test_per_speaker", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((recipe / "data/manifests/speakers.json").read_text()) == {"speakers": ["19"]}


def test_unknown_recipe_option_is_a_usage_error(tmp_path):
    recipe = recipe_copy(tmp_path, "folder")
    result = run_recipe(recipe, "--corpus_dir", "x", "--stgae", "3")
    assert result.returncode == 2 and "unknown option --stgae" in result.stderr


@pytest.mark.slow
def test_make_default_model_probes_trains_and_exports(tmp_path):
    folder = recipe_copy(tmp_path, "folder")
    make_folder_corpus(tmp_path / "corpus", speakers=3, utterances=6, seconds=0.3)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1"}
    args = ["bash", "make_default_model.sh", "--corpus_dir", str(tmp_path / "corpus"), "--conf", "conf/tiny.yaml",
            "--holdout_speakers", "spk2", "--init", "none",  # the shipped model is the paper's shape, not tiny
            "--test_per_speaker", "1", "--valid_per_speaker", "1", "--train_seconds", "4", "--time_limit", "600", "--device", "cpu",
            "--overrides", "train.valid_every=5 train.checkpoint_every=5 train.valid_audio_s=0"]
    result = subprocess.run(args, cwd=folder, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fit: max_steps=" in result.stderr
    from speechvq.checkpoint import load_checkpoint

    exported = load_checkpoint(folder / "exp" / "tiny" / "default.pt")
    steps = int(result.stderr.split("fit: max_steps=")[1].split()[0])
    assert exported.optimizer_state is None and exported.speakers == ["spk0", "spk1"]  # spk2 held out
    unseen = (folder / "data" / "manifests" / "unseen.jsonl").read_text().splitlines()
    assert len(unseen) == 6 and all('"spk2"' in line for line in unseen)
    assert load_checkpoint(folder / "exp" / "tiny" / "last.pt").step == steps
    # a continuation (--init) trains the decoder only at the continuation rate, unless --overrides says otherwise
    (folder / "conf" / "tiny_more.yaml").write_text((folder / "conf" / "tiny.yaml").read_text())
    more = ["bash", "make_default_model.sh", "--corpus_dir", str(tmp_path / "corpus"), "--conf", "conf/tiny_more.yaml",
            "--holdout_speakers", "spk2", "--init", "exp/tiny/default.pt", "--max_steps", "2",
            "--test_per_speaker", "1", "--valid_per_speaker", "1", "--device", "cpu",
            "--overrides", "train.valid_every=1 train.valid_audio_s=0"]
    result = subprocess.run(more, cwd=folder, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    continued = load_checkpoint(folder / "exp" / "tiny_more" / "last.pt")
    assert continued.config.train.freeze_encoder and continued.config.train.lr == 1e-4
    assert torch.equal(continued.model_state["quantizer.codebook"], exported.model_state["quantizer.codebook"])
    missing = subprocess.run(["bash", "make_default_model.sh"], cwd=folder, capture_output=True, text=True, env=env)
    assert missing.returncode == 2 and "--corpus_dir is required" in missing.stderr
