"""The comparison, voice-conversion and code-probe tools, end to end on tiny inputs."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import soundfile

from speechvq.assets import sample_speech_path
from speechvq.audio import load_audio
from speechvq.data.manifest import Utterance, read_manifest, write_manifest
from tests.helpers import TOOLS, load_tool, run_script, voiced_signal

def run_tool(name: str, *argv, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Run tools/NAME.py with `argv` as a script, in this process (`helpers.run_script`), the environment
    updated with `env`."""
    return run_script(TOOLS / f"{name}.py", *argv, env=env)


def copy_codec(compare_codecs):
    """A lossless peer made of two `cp` runs: exercises the external-program path wherever tests run."""
    return compare_codecs.ExternalCodec("copy", ("cp", "{input}", "{output}"), ("cp", "{input}", "{output}"),
                                        16000, False, 256000.0)


def test_compare_table_with_a_lossless_peer():
    compare_codecs = load_tool("compare_codecs")
    items = [(f"u{i}", None, (0.3 * voiced_signal(9600, seed=i))) for i in range(2)]
    results = compare_codecs.compare(items, {"copy": compare_codecs._with_nominal(copy_codec(compare_codecs))})
    lossless = results["codecs"]["copy"]
    assert len(results["files"]) == 2
    assert lossless["mcd_db"] < 0.1 and lossless["si_sdr_db"] > 40 and lossless["stoi"] > 0.99
    assert lossless["file_bps"] == pytest.approx(256000, rel=0.01)  # 16-bit WAV at 16 kHz plus its header


def test_compare_leaves_recordings_without_speech_out_of_the_means_not_the_bitrate():
    import torch

    compare_codecs = load_tool("compare_codecs")
    torch.manual_seed(0)
    items = [("spoken", None, 0.3 * voiced_signal(9600, seed=0)),
             ("silent", None, 1e-5 * torch.randn(9600))]  # about -100 dBFS: below the -50 dBFS speech floor
    results = compare_codecs.compare(items, {"copy": compare_codecs._with_nominal(copy_codec(compare_codecs))})
    summary = results["codecs"]["copy"]
    assert results["without_speech"] == ["silent"]
    assert summary["files"] == 2 and summary["scored_files"] == 1
    spoken = next(r for r in results["files"] if r["id"] == "spoken")
    for metric in ("mcd_db", "si_sdr_db", "stoi"):
        assert summary[metric] == pytest.approx(spoken[metric], abs=1e-9)
    assert summary["file_bps"] == pytest.approx(256000, rel=0.01)  # both files' bytes over both files' seconds
    assert compare_codecs.markdown_table(results["codecs"]).splitlines()[2].endswith("| 2 (1) |")


@pytest.mark.parametrize("peer", ["codec2-2400", "opus-6k"])
def test_classic_codecs_in_the_comparison(peer):
    compare_codecs = load_tool("compare_codecs")
    missing = compare_codecs.PEERS[peer].missing_programs()
    if missing:
        pytest.skip(f"{peer} needs {', '.join(missing)} (Debian: apt install codec2 opus-tools; .ci/run installs "
                    f"them)")
    items = [(f"u{i}", None, (0.3 * voiced_signal(9600, seed=i))) for i in range(2)]
    peers = {"copy": copy_codec(compare_codecs), peer: compare_codecs.PEERS[peer]}
    summary = compare_codecs.compare(items, {n: compare_codecs._with_nominal(p) for n, p in peers.items()})["codecs"]
    if peer == "codec2-2400":
        assert summary[peer]["file_bps"] == pytest.approx(2400, rel=0.01)  # bare 48-bit frames
    else:
        assert 4000 < summary[peer]["file_bps"] < 60000  # Ogg headers weigh on 0.6 s files
    assert summary[peer]["mcd_db"] > summary["copy"]["mcd_db"]  # lossy, unlike the copy
    table = compare_codecs.markdown_table(summary)
    rows = [line.split(" | ")[0].strip("| ") for line in table.splitlines()[2:]]
    assert rows == sorted(summary, key=lambda n: summary[n]["file_bps"])  # sorted by actual bitrate


def test_compare_cli_runs_speechvq_and_names_missing_programs(tmp_path, monkeypatch):
    source = tmp_path / "a.wav"
    soundfile.write(source, (0.3 * voiced_signal(4800)).numpy(), 16000)
    result = run_tool("compare_codecs", "--inputs", source, "--codecs", "speechvq", "lpcnet",
                      "--max-seconds", "0.3", "--out", tmp_path / "cmp")
    assert result.returncode == 0, result.stderr
    assert "| speechvq |" in result.stdout
    if shutil.which("lpcnet_enc") is None:
        assert "skipped lpcnet" in result.stderr
    saved = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert saved["codecs"]["speechvq"]["nominal_bps"] == 2250.0 + 375.0  # the shipped model's codes and pitch stream
    assert run_tool("compare_codecs", "--inputs", source, "--codecs", "mp3").returncode == 1


def shipped_voices_manifest(tmp_path) -> Path:
    """allison (the sample cut in two), june and carlo: enough for one source and two targets."""
    from speechvq.assets import reference_voice_path

    sample = load_audio(sample_speech_path(), 16000)[0]
    entries = []
    for half, part in enumerate((sample[:26000], sample[26000:])):
        path = tmp_path / f"allison_{half}.wav"
        soundfile.write(path, part.numpy(), 16000)
        entries.append(Utterance(f"allison/{half}", str(path), "allison", part.numel() / 16000))
    for voice in ("june", "carlo"):
        entries.append(Utterance(f"{voice}/ref", str(reference_voice_path(voice)), voice, 3.0))
    write_manifest(tmp_path / "vc.jsonl", entries)
    return tmp_path / "vc.jsonl"


@pytest.mark.slow
def test_speaker_conversion_demo_writes_grid_table_and_pngs(tmp_path):
    manifest = shipped_voices_manifest(tmp_path)
    result = run_tool("speaker_conversion_demo", "--manifest", manifest, "--targets", "june", "carlo",
                      "--sources", "1", "--max-seconds", "0.5", "--out", tmp_path / "vc")
    assert result.returncode == 0, result.stderr
    table = json.loads((tmp_path / "vc" / "similarity.json").read_text())
    assert [(r["source"], r["target"]) for r in table["rows"]] == [("allison/0", "june"), ("allison/0", "carlo")]
    assert all(-1 <= r["to_target"] <= 1 and -1 <= r["to_source"] <= 1 for r in table["rows"])
    for row in table["rows"]:
        assert soundfile.info(tmp_path / "vc" / row["wav"]).frames == 8000
    assert (tmp_path / "vc" / "spectrograms.png").is_file()
    assert f"in {table['successes']} of 2 conversions" in (tmp_path / "vc" / "similarity.md").read_text()
    bad = run_tool("speaker_conversion_demo", "--manifest", manifest, "--targets", "nobody", "--out", tmp_path / "x")
    assert bad.returncode == 1 and "unknown speaker 'nobody'" in bad.stderr


@pytest.mark.slow
def test_any_speaker_eval_reports_unseen_speakers_and_file_sizes(tmp_path):
    import torch

    from speechvq.checkpoint import save_checkpoint
    from speechvq.config import load_config
    from speechvq.data.corpora import scan_corpus
    from speechvq.models import SpeechVQ
    from tests.helpers import make_folder_corpus

    make_folder_corpus(tmp_path / "corpus", speakers=4, utterances=3, seconds=6.0)  # spk2, spk3: never trained on
    entries = scan_corpus("folder", tmp_path / "corpus").entries
    write_manifest(tmp_path / "all.jsonl", entries)
    write_manifest(tmp_path / "unseen.jsonl", [e for e in entries if e.speaker in ("spk2", "spk3")])
    torch.manual_seed(0)
    config = load_config("tiny", ["model.speaker_mode=utterance"])
    save_checkpoint(tmp_path / "model.pt", SpeechVQ(config.model, speakers=["spk0", "spk1"]).eval(), config)
    result = run_tool("any_speaker_eval", "--model", tmp_path / "model.pt", "--unseen", tmp_path / "unseen.jsonl",
                      "--corpus", tmp_path / "all.jsonl", "--out", tmp_path / "eval", "--files", "1",
                      "--max-seconds", "1", "--references", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    summary = report["summary"]
    assert summary["unseen_speakers"] == ["spk2", "spk3"] and summary["chance"] == 0.25
    assert [r["recorded_voice"] for r in report["resynthesis"]] == ["own vector", "own vector"]
    assert [(r["source_speaker"], r["reference_speaker"]) for r in report["conversion"]] == [("spk2", "spk3"),
                                                                                            ("spk3", "spk2")]
    sizes = {(r["seconds"], r["version"]): r for r in summary["file_sizes"]}
    assert set(sizes) == {(2, 1), (2, 2), (10, 1), (10, 2)}
    assert sizes[2, 2]["speaker"] == "vector" and sizes[2, 1]["speaker"] == "voice"  # v1 holds no vector
    for seconds in (2, 10):  # the same codes: v2 saves the JSON header, less the 1 + 4 bytes of the vector
        assert sizes[seconds, 1]["bytes"] - sizes[seconds, 2]["bytes"] > 200
        assert sizes[seconds, 1]["entropy_bps"] == sizes[seconds, 2]["entropy_bps"]
    for row in report["resynthesis"]:
        assert soundfile.info(tmp_path / "eval" / "wav" / f"{row['id'].replace('/', '__')}.decoded.wav").frames == 16000
    assert "| resynthesis: identified as the true speaker |" in (tmp_path / "eval" / "report.md").read_text()


def test_speaker_conversion_demo_scores_the_same_voice_above_another(tmp_path):
    # the tool's similarity on real speech whose answer is known: allison's first half against allison's
    # second half (the reference embedding), june's and carlo's
    demo = load_tool("speaker_conversion_demo")
    from speechvq.similarity import SpeakerSimilarity

    manifest = shipped_voices_manifest(tmp_path)
    entries = read_manifest(manifest)
    scorer = SpeakerSimilarity()
    probe = scorer.embed(load_audio(entries[0].path, 16000)[0], 16000)
    scores = {speaker: float(probe @ demo.speaker_embedding(scorer, entries, speaker, "allison/0", 5, 16000))
              for speaker in ("allison", "june", "carlo")}
    assert scores["allison"] > scores["june"] + 0.1 and scores["allison"] > scores["carlo"] + 0.1, scores


def test_probe_codes_reports_both_probes_and_purity(tmp_path):
    manifest = shipped_voices_manifest(tmp_path)
    (tmp_path / "a.ctm").write_text("0 1 0.0 0.5 AA\n0 1 0.5 0.5 B\n1 1 0.0 0.3 AA\n")
    result = run_tool("probe_codes", "--manifest", manifest, "--alignments", tmp_path / "a.ctm",
                      "--out", tmp_path / "probe")
    assert result.returncode == 1 and "two utterances or more" in result.stderr  # june and carlo have one each
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    doubled = [dict(e, id=f"{e['id']}{k}") for e in entries for k in ("", "_again")]
    (tmp_path / "doubled.jsonl").write_text("".join(json.dumps(e) + "\n" for e in doubled))
    result = run_tool("probe_codes", "--manifest", tmp_path / "doubled.jsonl", "--alignments", tmp_path / "a.ctm",
                      "--max-seconds", "1.0", "--out", tmp_path / "probe")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert report["speakers"] == 3 and report["utterances"] == 8
    # each utterance is in both halves (the manifest is doubled): a probe that learns anything at all tells
    # every test utterance's speaker, from the continuous latents and from the codes alike
    for name in ("continuous", "codes"):
        probe = report[f"speaker_probe_{name}"]
        assert probe["utterance_accuracy"] == 1.0 and probe["frame_accuracy"] > probe["frame_chance"], (name, probe)
    assert 0 < report["phone_purity"]["purity"] <= 1 and report["phone_purity"]["phones"] == 2


def test_history_use_tables_every_band_and_refuses_files_too_short(tmp_path):
    import torch

    from speechvq.checkpoint import save_checkpoint
    from speechvq.config import load_config
    from speechvq.models import SpeechVQ

    torch.manual_seed(0)
    config = load_config("tiny", ["model.pitch.bits=6"])
    save_checkpoint(tmp_path / "tiny.pt", SpeechVQ(config.model, speakers=["allison", "june"]).eval(), config)
    manifest = shipped_voices_manifest(tmp_path)
    result = run_tool("history_use", "--manifest", manifest, "--model", tmp_path / "tiny.pt", "--positions", "3",
                      "--out", tmp_path / "history.json")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "history.json").read_text())
    assert report["files"] == 4 and report["receptive_field"] == 15  # carlo, outside the table, gets a voice too
    for name in ("voiced", "unvoiced"):
        bands = [row["past_samples"] for row in report[name]]
        assert bands == [[0, 15]]  # tiny: one band, up to its 15-sample reach
    voiced = report["voiced"][0]
    assert voiced["files"] >= 1 and voiced["samples"] > 0 and math.isfinite(voiced["cost_nats"])
    assert "0-15" in result.stdout.replace(" ", "")
    soundfile.write(tmp_path / "short.wav", np.zeros(40, dtype=np.float32), 16000)
    write_manifest(tmp_path / "short.jsonl", [Utterance("s", str(tmp_path / "short.wav"), "allison", 40 / 16000)])
    result = run_tool("history_use", "--manifest", tmp_path / "short.jsonl", "--model", tmp_path / "tiny.pt")
    assert result.returncode == 1 and result.stderr.splitlines()[-1].startswith("history_use: no file")


def test_gpu_generation_benchmark_runs_on_the_cpu():
    # the GPU benchmark's own logic (checks, rows, ratios), with the graph engine run eagerly on the CPU
    result = run_tool("bench_generate_gpu", "--device", "cpu", "--preset", "tiny", "--engines", "graph",
                      "--check-samples", "16", "--plain-samples", "16", "--samples", "16", "--batches", "2",
                      "--batch-samples", "16")
    assert result.returncode == 0, result.stderr
    assert "check graph: teacher-forced logits" in result.stdout and "identical" in result.stdout
    assert "graph b2:" in result.stdout and "x plain b1" in result.stdout
    # a decoder with the pitch-lag input: the graph engine carries it and equals the reference (the triton
    # kernel's lag input: test_engines.py, in Triton's interpreter)
    lag = run_tool("bench_generate_gpu", "--device", "cpu", "--preset", "tiny", "--engines", "graph",
                   "--pitch-lag-taps", "3", "--check-samples", "300", "--plain-samples", "16", "--samples", "16",
                   "--batches", "2", "--batch-samples", "16")
    assert lag.returncode == 0, lag.stderr
    assert "pitch-lag input of 3 taps" in lag.stdout
    assert "check graph: teacher-forced logits" in lag.stdout and "identical" in lag.stdout


def test_pitch_lag_benchmark_tables_each_build_width_and_period():
    result = run_tool("bench_pitch_lag", "--preset", "tiny", "--march", "native", "--streams", "1", "2",
                      "--period", "40", "--seconds", "0.02", "--repeats", "1", "--threads", "1",
                      "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| native |")]
    assert len(rows) == 2 and all(float(row.split("|")[6]) > 0 for row in rows)


def test_sampling_sweep_pairs_files_by_id():
    sweep = load_tool("sampling_sweep")
    base = [{"id": f"u{i}", "stoi": 0.5 + 0.1 * i, "pesq_wb": 1.0, "dnsmos_ovrl": None, "mcd_db": 4.0,
             "si_sdr_db": -20.0} for i in range(4)]
    # the same files in another order, each 0.02 STOI better, 0.1 dB MCD worse for one file, one file unscored
    other = [{**item, "stoi": item["stoi"] + 0.02, "mcd_db": 4.0 + 0.4 * (item["id"] == "u1")}
             for item in reversed(base)] + [{"id": "extra", "stoi": 0.0, "pesq_wb": 1.0, "dnsmos_ovrl": None,
                                             "mcd_db": 9.0, "si_sdr_db": 0.0}]
    (paired,) = sweep.paired_differences([(1.0, 1, None), (0.7, 4, 0.128)], [base, other])
    assert paired["temperature"] == 0.7 and paired["best_of"] == 4 and paired["choose_every_s"] == 0.128
    assert paired["stoi"]["mean"] == pytest.approx(0.02) and paired["stoi"]["ci95"] == pytest.approx(0, abs=1e-9)
    assert paired["stoi"]["files"] == 4  # "extra" has no partner
    assert paired["mcd_db"]["mean"] == pytest.approx(0.1)
    assert paired["mcd_db"]["ci95"] == pytest.approx(1.96 * 0.2 / 2)  # std of (0, 0.4, 0, 0) is 0.2
    assert paired["dnsmos_ovrl"] is None


@pytest.mark.slow
def test_sampling_sweep_decodes_each_setting_under_each_seed_and_resumes(tmp_path):
    import torch

    from speechvq.checkpoint import save_checkpoint
    from speechvq.config import load_config
    from speechvq.data.corpora import scan_corpus
    from speechvq.models import SpeechVQ
    from tests.helpers import make_folder_corpus

    pytest.importorskip("pesq")
    pytest.importorskip("speechmos")
    make_folder_corpus(tmp_path / "corpus", speakers=2, utterances=1, seconds=0.5)
    t = np.arange(8000) / 16000
    soundfile.write(tmp_path / "corpus" / "spk1" / "silence.wav", 3e-4 * np.sin(2 * np.pi * 200 * t), 16000)
    write_manifest(tmp_path / "test.jsonl", scan_corpus("folder", tmp_path / "corpus").entries)
    config = load_config("tiny")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "model.pt", SpeechVQ(config.model, speakers=["spk0", "spk1"]).eval(), config)
    argv = ("sampling_sweep", "--model", tmp_path / "model.pt", "--manifest", tmp_path / "test.jsonl",
            "--max-files", "3", "--temperatures", "1.0", "0.6", "--best-of", "1", "2",
            "--choose-every", "0", "0.1", "--seeds", "0", "1",
            "--out", tmp_path / "sweep")
    result = run_tool(*argv)
    assert result.returncode == 0, result.stderr
    sweep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert sweep["seeds"] == [0, 1] and sweep["without_speech"] == ["spk1/silence"]
    assert sweep["decoding"]["engine"] in ("native", "numba", "torch")
    assert [(p["temperature"], p["best_of"], p["choose_every_s"]) for p in sweep["paired"]] == [
        (0.6, 1, None), (1.0, 2, None), (0.6, 2, None), (1.0, 2, 0.1), (0.6, 2, 0.1)]
    assert sweep["paired"][0]["mcd_db"]["files"] == 2  # the silent file is left out
    for folder, best_of, every in (("T1", 1, None), ("T0.6", 1, None), ("T1-best2", 2, None),
                                   ("T0.6-best2", 2, None), ("T1-best2-every0.1", 2, 0.1),
                                   ("T0.6-best2-every0.1", 2, 0.1)):
        for seed in (0, 1):
            key = json.loads((tmp_path / "sweep" / folder / f"seed{seed}" / "decode_key.json").read_text())
            assert key["seed"] == seed and key["decoding"].get("best_of", 1) == best_of
            assert key["decoding"].get("choose_every_s") == every
            assert {k: v for k, v in key["decoding"].items() if k not in ("best_of", "choose_every_s")} == \
                sweep["decoding"]
    best_of_two = json.loads((tmp_path / "sweep" / "T1-best2" / "seed0" / "report.json").read_text())["files"]
    assert [f["mcd_db"] for f in best_of_two] != [f["mcd_db"] for f in json.loads(
        (tmp_path / "sweep" / "T1" / "seed0" / "report.json").read_text())["files"]]  # other audio
    # the two seeds drew different audio, and each file's row is their average
    scores = [json.loads((tmp_path / "sweep" / "T1" / f"seed{seed}" / "report.json").read_text())["files"]
              for seed in (0, 1)]
    mcd = {seed: {f["id"]: f["mcd_db"] for f in files} for seed, files in enumerate(scores)}
    speech = sorted(set(mcd[0]) - {"spk1/silence"})
    assert len(speech) == 2 and mcd[0][speech[0]] != mcd[1][speech[0]]
    assert sweep["rows"][0]["mcd_db"] == pytest.approx(np.mean([(mcd[0][i] + mcd[1][i]) / 2 for i in speech]),
                                                       abs=1e-9)
    # run again: nothing is decoded, the result is the same
    again = run_tool(*argv)
    assert again.returncode == 0 and again.stderr.count("reusing") == 12  # 6 settings x 2 seeds
    assert json.loads((tmp_path / "sweep" / "sweep.json").read_text()) == sweep
    # a manifest without utterances is one clear error
    (tmp_path / "empty.jsonl").write_text("")
    result = run_tool("sampling_sweep", "--model", tmp_path / "model.pt", "--manifest", tmp_path / "empty.jsonl",
                      "--out", tmp_path / "empty")
    assert result.returncode == 1 and result.stderr.strip().startswith("sampling_sweep:")


def test_compare_scores_each_file_near_its_codecs_delay():
    import torch

    from speechvq.metrics import intrusive_scores

    compare_codecs = load_tool("compare_codecs")
    delay = 300

    def delaying(wav, workdir):  # a codec with a constant 300-sample delay and some noise
        noise = 0.02 * torch.randn(wav.numel(), generator=torch.Generator().manual_seed(wav.numel()))
        return torch.cat([torch.zeros(delay), wav])[: wav.numel()] + noise, 100, 0.01

    items = [(f"u{i}", None, 0.3 * voiced_signal(9600 + 640 * i, seed=i)) for i in range(3)]
    results = compare_codecs.compare(items, {"delaying": delaying})
    assert results["codecs"]["delaying"]["delay_samples"] == delay
    assert [row["lag_samples"] for row in results["files"]] == [delay] * 3
    # scored exactly as the truly aligned pair is
    wav = items[0][2]
    decoded = delaying(wav, None)[0]
    truth = intrusive_scores(wav[:-delay], decoded[delay:], 16000, max_shift=0)
    assert results["files"][0]["si_sdr_db"] == pytest.approx(truth["si_sdr_db"], abs=1e-9)
    assert results["files"][0]["mcd_db"] == pytest.approx(truth["mcd_db"], abs=1e-9)


def test_ship_verdict_needs_better_stoi_and_pesq_and_no_worse_mcd():
    ship_check = load_tool("ship_check")

    def paired(stoi, pesq, mcd):  # (mean, ci95) each
        return {key: {"mean": m, "ci95": c, "files": 120}
                for key, (m, c) in (("stoi", stoi), ("pesq_wb", pesq), ("mcd_db", mcd))}

    ships, reasons = ship_check.ship_verdict(paired((0.02, 0.01), (0.05, 0.02), (0.03, 0.05)))
    assert ships and reasons == ["STOI +0.0200 +- 0.0100: better", "PESQ-WB +0.050 +- 0.020: better",
                                 "MCD (dB) +0.030 +- 0.050: not worse"]
    # an improvement inside the noise is none; a significantly higher MCD is worse
    assert not ship_check.ship_verdict(paired((0.02, 0.03), (0.05, 0.02), (0.0, 0.05)))[0]
    assert not ship_check.ship_verdict(paired((0.02, 0.01), (0.05, 0.02), (0.08, 0.05)))[0]
    assert "worse" in ship_check.ship_verdict(paired((-0.05, 0.01), (0.05, 0.02), (0.0, 0.05)))[1][0]
    from speechvq.data.manifest import Utterance

    entries = [Utterance(f"u{i}", f"corpus/u{i}{suffix}", "a", 1.0) for i, suffix in enumerate([".flac", ".OGG", ".wav"])]
    assert ship_check.lossy_references(entries) == 1
    no_pesq = paired((0.02, 0.01), (0.05, 0.02), (0.0, 0.05))
    no_pesq["pesq_wb"] = None
    ships, reasons = ship_check.ship_verdict(no_pesq)
    assert not ships and reasons[1] == "PESQ-WB: not measured"


@pytest.mark.slow
def test_ship_check_decodes_both_models_on_the_same_files(tmp_path, monkeypatch):
    # in this process, as every tool test (run_tool): each of the eight checks as a subprocess paid ~8 s of
    # imports and model loading (CI's slowest test, 131 s)
    import torch

    from speechvq.checkpoint import save_checkpoint
    from speechvq.config import load_config
    from speechvq.data.corpora import scan_corpus
    from speechvq.models import SpeechVQ
    from tests.helpers import make_folder_corpus

    pytest.importorskip("pesq")

    def run_check(*argv) -> subprocess.CompletedProcess:
        return run_tool("ship_check", *argv)

    make_folder_corpus(tmp_path / "corpus", speakers=2, utterances=2, seconds=1.0)
    write_manifest(tmp_path / "test.jsonl", scan_corpus("folder", tmp_path / "corpus").entries)
    config = load_config("tiny")
    for seed, name in ((0, "reference.pt"), (1, "candidate.pt")):
        torch.manual_seed(seed)
        save_checkpoint(tmp_path / name, SpeechVQ(config.model, speakers=["spk0", "spk1"]).eval(), config)
    result = run_check(tmp_path / "candidate.pt", "--reference", tmp_path / "reference.pt",
                       "--manifest", tmp_path / "test.jsonl", "--max-files", "3", "--spread", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "ship_check.json").read_text())
    assert report["files"] == 3
    (candidate,) = report["candidates"]
    assert candidate["paired"]["stoi"]["files"] == 3 and candidate["paired"]["mcd_db"]["files"] == 3
    assert isinstance(candidate["ships"], bool) and len(candidate["reasons"]) == 3
    assert ("SHIPS" if candidate["ships"] else "does not ship") in result.stdout
    # the same model against itself is no change: it does not ship
    result = run_check(tmp_path / "reference.pt", "--reference", tmp_path / "reference.pt",
                       "--manifest", tmp_path / "test.jsonl", "--max-files", "2", "--out", tmp_path / "same")
    (same,) = json.loads((tmp_path / "same" / "ship_check.json").read_text())["candidates"]
    assert not same["ships"] and same["paired"]["stoi"]["mean"] == 0.0
    # under two seeds: each model decodes every file twice, and the files' averages are paired
    result = run_check(tmp_path / "reference.pt", "--reference", tmp_path / "reference.pt",
                       "--manifest", tmp_path / "test.jsonl", "--max-files", "2", "--seeds", "0", "1",
                       "--out", tmp_path / "seeds")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "seeds" / "ship_check.json").read_text())
    assert report["seeds"] == [0, 1] and report["candidates"][0]["paired"]["mcd_db"] == {"mean": 0.0, "ci95": 0.0,
                                                                                          "files": 2}
    for seed in (0, 1):
        assert (tmp_path / "seeds" / "reference" / f"seed{seed}" / "report.json").is_file()
    # run again into the same folder: every decode is read back, not redone, and the verdict is the same
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "seeds").rglob("report.json")}
    again = run_check(tmp_path / "reference.pt", "--reference", tmp_path / "reference.pt",
                      "--manifest", tmp_path / "test.jsonl", "--max-files", "2", "--seeds", "0", "1",
                      "--out", tmp_path / "seeds")
    assert again.returncode == 0, again.stderr
    assert len(stamps) == 4 and again.stderr.count("reusing") == 4
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((tmp_path / "seeds" / "ship_check.json").read_text()) == report
    # another candidate into the same folder: the reference's decodes are reused, the candidate's are not
    again = run_check(tmp_path / "candidate.pt", "--reference", tmp_path / "reference.pt",
                      "--manifest", tmp_path / "test.jsonl", "--max-files", "2", "--seeds", "0", "1",
                      "--out", tmp_path / "seeds")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("reusing") == 2 and "reference.pt, seed 1: reusing" in again.stderr
    (candidate,) = json.loads((tmp_path / "seeds" / "ship_check.json").read_text())["candidates"]
    assert Path(candidate["folder"]).name.startswith("candidate-") and (Path(candidate["folder"]) / "seed1").is_dir()
    # and the first candidate's decodes are still there, in their own folder: checked again, nothing is decoded
    again = run_check(tmp_path / "reference.pt", tmp_path / "candidate.pt", "--reference",
                      tmp_path / "reference.pt", "--manifest", tmp_path / "test.jsonl", "--max-files", "2",
                      "--seeds", "0", "1", "--out", tmp_path / "seeds")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("reusing") == 6
    # every decode names the one engine the check resolved, and the check says which it was
    decoding = json.loads((tmp_path / "seeds" / "ship_check.json").read_text())["decoding"]
    assert decoding["engine"] in ("native", "numba", "torch") and decoding["cpu"]["machine"]
    assert f"decoded with the {decoding['engine']} engine" in again.stdout
    for key_file in (tmp_path / "seeds").rglob("decode_key.json"):
        assert json.loads(key_file.read_text())["decoding"] == decoding
    # another engine is another decode (numba, compiled by now; the torch loop took 12 s of this test); one
    # that cannot run here is one clear error, and nothing is written
    other = "numba" if decoding["engine"] != "numba" else "torch"
    again = run_check(tmp_path / "reference.pt", "--reference", tmp_path / "reference.pt",
                      "--manifest", tmp_path / "test.jsonl", "--max-files", "2", "--engine", other,
                      "--precision", "full", "--out", tmp_path / "seeds")
    assert again.returncode == 0, again.stderr
    assert "reusing" not in again.stderr and f"decoded with the {other} engine at full" in again.stdout
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # the tests' interpreter would run it, slowly
    result = run_check(tmp_path / "reference.pt", "--reference", tmp_path / "reference.pt",
                       "--manifest", tmp_path / "test.jsonl", "--engine", "triton", "--out", tmp_path / "triton")
    assert result.returncode == 1 and result.stderr.strip().startswith("ship_check: the triton engine needs")
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "triton").exists()


def test_ship_check_leaves_recordings_without_speech_out_of_the_verdict():
    ship_check = load_tool("ship_check")
    report = {"files": [{"id": "speech", "stoi": 0.6}, {"id": "silence", "stoi": 0.0}, {"id": "quiet", "stoi": 0.5}]}
    kept = ship_check.judged(report, {"silence"})
    assert [item["id"] for item in kept["files"]] == ["speech", "quiet"]
    assert kept["mean"]["stoi"] == pytest.approx(0.55, abs=1e-12) and kept["mean"]["pesq_wb"] is None


def test_add_pitch_stream_keeps_the_decoder_and_measures_each_voice(corpus, capsys):
    import torch

    from speechvq.checkpoint import init_from_checkpoint, load_checkpoint, save_checkpoint
    from speechvq.config import load_config
    from speechvq.generation import DecodeOptions
    from speechvq.inference import decode_codes, encode_waveform
    from speechvq.models import SpeechVQ

    tool = load_tool("add_pitch_stream")
    config = load_config("tiny")
    torch.manual_seed(0)
    plain = SpeechVQ(config.model, speakers=["spk0", "spk1", "elsewhere"]).eval()
    save_checkpoint(corpus / "plain.pt", plain, config, step=3, extra={"history": [{"step": 1, "source": "x.pt"}]})
    manifest = corpus / "manifests" / "train.jsonl"
    assert tool.main([str(corpus / "plain.pt"), "--manifest", str(manifest), "--out", str(corpus / "pitch.pt")]) == 0
    out = capsys.readouterr().out
    assert "spk0: mean pitch symbol" in out and "elsewhere: mean pitch symbol 0.0 over 0 utterances" in out
    written = load_checkpoint(corpus / "pitch.pt")
    pitched = written.build_model()
    assert pitched.has_pitch and written.config.model.pitch.bits == 6 and written.code_statistics is None
    assert not pitched.pitch_embedding.weight.any()
    assert written.extra["history"][-1]["source"] == "plain.pt" and written.step == 3
    from speechvq.codec import model_fingerprint
    assert written.extra["history"][0] == {"step": 1, "source": "x.pt"}  # the earlier record kept as it was
    assert written.extra["history"][-1]["fingerprint"] == model_fingerprint(plain)
    # spk0 speaks at 100-128 Hz, spk1 at 160-188 Hz (tests.helpers.make_folder_corpus): each its own mean
    entries = read_manifest(manifest)
    counts = [sum(e.speaker == name for e in entries) for name in ("spk0", "spk1")]
    assert pitched.voice_pitch_updates.tolist() == counts + [0]
    assert 0 < pitched.voice_pitch_bin(0) < pitched.voice_pitch_bin(1) and pitched.voice_pitch_bin(2) is None
    # the same input gives the same codes and, without the post-filter, the same samples
    wav = load_audio(entries[0].path, 16000)[0]
    options = DecodeOptions(engine="torch", postfilter=0.0)
    encoded = [encode_waveform(model, wav, speaker="spk1") for model in (plain, pitched)]
    assert torch.equal(encoded[0].codes, encoded[1].codes) and encoded[1].pitch is not None
    torch.testing.assert_close(decode_codes(pitched, encoded[1], seed=2, options=options),
                               decode_codes(plain, encoded[0], seed=2, options=options), rtol=0, atol=0)
    # continuing from it, the zero vectors count as new weights (train.new_weights_lr_scale applies to them)
    fresh = SpeechVQ(written.config.model, speakers=["spk0", "spk1", "elsewhere"])
    assert "pitch_embedding.weight" in init_from_checkpoint(fresh, corpus / "pitch.pt").untrained
    # a second time: one line, exit 1, nothing overwritten
    before = (corpus / "pitch.pt").read_bytes()
    assert tool.main([str(corpus / "pitch.pt"), "--manifest", str(manifest), "--out", str(corpus / "again.pt")]) == 1
    assert tool.main([str(corpus / "plain.pt"), "--manifest", str(manifest), "--out", str(corpus / "pitch.pt")]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert "already has a pitch stream" in errors[0] and "exists" in errors[1] and len(errors) == 2
    assert (corpus / "pitch.pt").read_bytes() == before and not (corpus / "again.pt").exists()
