"""`speechvq serve` without a browser: the request handlers on a tiny model, every bad input, no files left."""

from __future__ import annotations

import io
import tempfile
import threading
import time

import numpy as np
import pytest
import soundfile
import torch

pytest.importorskip("fastapi", reason="the web extra (fastapi) is not installed")
pytest.importorskip("httpx2", reason="FastAPI's test client needs httpx2")

from fastapi.testclient import TestClient  # noqa: E402

from speechvq import bitstream  # noqa: E402
from speechvq.cli import build_parser  # noqa: E402
from speechvq.codec import Codec  # noqa: E402
from speechvq.config import load_config  # noqa: E402
from speechvq.models import SpeechVQ  # noqa: E402
from speechvq.web import service as service_module  # noqa: E402
from speechvq.web.app import create_app  # noqa: E402
from speechvq.web.service import CodecService, InputError, Limits, Upload  # noqa: E402
from tests.helpers import tiny_codec, voiced_signal  # noqa: E402

RATE = 16000
MAX_SECONDS = 1.0
MAX_BYTES = 2_000_000  # over the 1 MB past which the multipart parser spools an upload to a temporary file


def audio_file(wav: torch.Tensor, rate: int = RATE, fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, wav.numpy(), rate, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def codec():
    return tiny_codec()


@pytest.fixture
def spool_dir(tmp_path, monkeypatch):
    """Where Python's tempfile (and so the multipart parser's spooled uploads) would put files."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def service(codec, spool_dir):
    service = CodecService(codec, Limits(max_upload_bytes=MAX_BYTES, max_seconds=MAX_SECONDS))
    yield service
    service.close()


@pytest.fixture
def client(service):
    with TestClient(create_app(service)) as client:
        yield client


def post(client, files=None, **fields):
    files = {name: (filename, data) for name, (filename, data) in (files or {}).items()}
    return client.post("/api/jobs", files=files or None, data=fields)


def wait(client, job_id: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "error"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


def test_an_upload_is_coded_decoded_and_its_files_served(client, codec, spool_dir):
    wav = 0.3 * voiced_signal(4000, seed=3)
    response = post(client, {"file": ("my voice.wav", audio_file(wav))})
    assert response.status_code == 202, response.text
    job = wait(client, response.json()["id"])
    assert job["state"] == "done", job["message"]
    result = job["result"]
    assert result["kind"] == "audio" and result["seconds"] == pytest.approx(4000 / RATE)
    assert result["nominal_bps"] == pytest.approx(RATE / codec.model.hop_length * np.log2(codec.model.quantizer.codebook_size), rel=1e-3)
    assert result["file_bps"] == pytest.approx(8 * result["svq_bytes"] / result["seconds"], rel=1e-2)
    assert set(job["files"]) == {"original.wav", "decoded.wav", "codes.svq", "spectrograms.png"}

    svq = client.get(f"/api/jobs/{job['id']}/files/codes.svq")
    assert svq.content.startswith(bitstream.MAGIC)
    assert svq.headers["content-disposition"] == 'attachment; filename="my.svq"'
    # the served file holds exactly the codes the codec makes of the same audio
    expected, _ = codec.read(codec.compress(wav))
    served, _ = codec.read(svq.content)
    assert torch.equal(served.codes, expected.codes)
    decoded, rate = soundfile.read(io.BytesIO(client.get(f"/api/jobs/{job['id']}/files/decoded.wav").content))
    assert rate == RATE and decoded.shape == (4000,)
    png = client.get(f"/api/jobs/{job['id']}/files/spectrograms.png")
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert list(spool_dir.iterdir()) == []


def test_a_code_file_upload_is_decoded_and_converted(client, codec):
    data = codec.compress(0.3 * voiced_signal(3000, seed=4), speaker="a")
    job = wait(client, post(client, {"file": ("speech.svq", data)}, voice="b").json()["id"])
    assert job["state"] == "done", job["message"]
    assert job["result"]["kind"] == "code file" and job["result"]["target_voice"] == "b"
    assert set(job["files"]) == {"decoded.wav", "converted.wav", "codes.svq", "spectrograms.png"}
    assert client.get(f"/api/jobs/{job['id']}/files/codes.svq").content == data


def test_conversion_to_the_voice_of_a_second_recording(client):
    source, reference = 0.3 * voiced_signal(3000, seed=5), 0.3 * voiced_signal(3000, f0_hz=220.0, seed=6)
    response = post(client, {"file": ("a.flac", audio_file(source, fmt="FLAC")),
                             "reference": ("ref.wav", audio_file(reference))}, voice="reference")
    job = wait(client, response.json()["id"])
    assert job["state"] == "done", job["message"]
    assert "ref.wav" in job["result"]["target_voice"] and "converted.wav" in job["files"]


def test_the_shipped_sample_is_refused_over_the_duration_limit(client):
    # the 3.25 s sample against this server's 1 s limit: the sample path runs the same checks as uploads
    response = post(client, sample="1")
    assert response.status_code == 400 and "at most 1 s" in response.json()["error"]


def _stereo_44k() -> bytes:
    return audio_file(0.3 * voiced_signal(8000, sample_rate=44100).repeat(2, 1).T, rate=44100)


def _bad_uploads(codec):
    good = codec.compress(0.3 * voiced_signal(3000, seed=7))
    torch.manual_seed(1)  # other weights than the served model's
    other = Codec(SpeechVQ(load_config("tiny").model, speakers=["a", "b"]).eval())
    flipped = bytearray(good)
    flipped[-3] ^= 0xFF
    cases = {
        "non-audio bytes": ({"file": ("notes.wav", b"this is not audio at all" * 20)}, {}, "cannot read"),
        "empty file": ({"file": ("empty.wav", b"")}, {}, "empty"),
        "silent file": ({"file": ("quiet.wav", audio_file(torch.zeros(4000)))}, {}, "silent"),
        "too long": ({"file": ("long.wav", audio_file(0.3 * voiced_signal(40 * RATE)))}, {}, "at most 1 s"),
        "too large": ({"file": ("big.wav", b"RIFF" + bytes(MAX_BYTES))}, {}, "at most"),
        "truncated code file": ({"file": ("cut.svq", good[: len(good) // 2])}, {}, "cut.svq"),
        "damaged payload": ({"file": ("bad.svq", bytes(flipped))}, {}, "bad.svq"),
        "another model's codes": ({"file": ("x.svq", other.compress(0.3 * voiced_signal(3000)))}, {},
                                  "different model"),
        "unknown voice": ({"file": ("a.wav", audio_file(0.3 * voiced_signal(3000)))}, {"voice": "zed"}, "zed"),
        "reference missing": ({"file": ("a.wav", audio_file(0.3 * voiced_signal(3000)))}, {"voice": "reference"},
                              "second recording"),
        "silent reference": ({"file": ("a.wav", audio_file(0.3 * voiced_signal(3000))),
                              "reference": ("r.wav", audio_file(torch.zeros(3000)))}, {"voice": "reference"},
                             "r.wav is silent"),
        "nothing chosen": ({}, {"voice": ""}, "choose a file"),
    }
    assert list(cases) == BAD_CASES
    return cases


BAD_CASES = ["non-audio bytes", "empty file", "silent file", "too long", "too large", "truncated code file",
             "damaged payload", "another model's codes", "unknown voice", "reference missing", "silent reference",
             "nothing chosen"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_gets_one_message_and_leaves_nothing_behind(client, codec, service, spool_dir, case):
    files, fields, expected = _bad_uploads(codec)[case]
    response = post(client, files, **fields)
    assert response.status_code in (400, 413), response.text
    message = response.json()["error"]
    assert expected in message and "\n" not in message
    assert list(spool_dir.iterdir()) == []
    assert not service._jobs  # refused before anything was queued
    # the server still works afterwards
    job = wait(client, post(client, {"file": ("ok.wav", audio_file(0.3 * voiced_signal(2000)))}).json()["id"])
    assert job["state"] == "done"


def test_a_body_over_the_limit_is_refused_before_it_is_parsed(client):
    response = client.post("/api/jobs", content=b"x" * (3 * MAX_BYTES), headers={"content-type": "multipart/form-data"})
    assert response.status_code == 413


def test_a_body_without_content_length_is_refused(client):
    response = client.post("/api/jobs", content=iter([b"--x\r\n"]), headers={"content-type": "multipart/form-data"})
    assert response.status_code == 411


def test_other_rates_and_channels_are_accepted_with_notes(client):
    job = wait(client, post(client, {"file": ("stereo.wav", _stereo_44k())}).json()["id"])
    assert job["state"] == "done", job["message"]
    notes = " ".join(job["result"]["notes"])
    assert "downmixed 2 channels" in notes and "resampled 44100 Hz -> 16000 Hz" in notes


@pytest.mark.parametrize("fmt", ["FLAC", "OGG", "MP3"])
def test_compressed_formats_are_accepted(client, fmt):
    wav = 0.3 * voiced_signal(4000, seed=8)
    job = wait(client, post(client, {"file": (f"speech.{fmt.lower()}", audio_file(wav, fmt=fmt))}).json()["id"])
    assert job["state"] == "done", job["message"]
    assert job["result"]["seconds"] == pytest.approx(0.25, abs=0.03)  # MP3 may pad a frame


def test_no_path_from_the_client_reaches_the_disk(client):
    hostile = "../../../../etc/passwd"
    job = wait(client, post(client, {"file": (hostile, audio_file(0.3 * voiced_signal(2000)))}).json()["id"])
    header = client.get(f"/api/jobs/{job['id']}/files/codes.svq").headers["content-disposition"]
    assert "/" not in header.split("filename=")[1]
    for path in ("/static/..%2Fservice.py", "/static/index.html", "/static/../app.py", "/api/jobs/x/files/..%2Fy"):
        assert client.get(path).status_code == 404, path
    assert client.get(f"/api/jobs/{job['id']}/files/../../app.py").status_code == 404


def test_unknown_jobs_and_files_are_404(client):
    assert client.get("/api/jobs/0123456789abcdef").status_code == 404
    job = wait(client, post(client, {"file": ("a.wav", audio_file(0.3 * voiced_signal(2000)))}).json()["id"])
    assert client.get(f"/api/jobs/{job['id']}/files/converted.wav").status_code == 404  # no conversion asked
    assert client.get(f"/api/jobs/{job['id']}/files/secrets.txt").status_code == 404


def test_the_page_and_its_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js">' in page.text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    info = client.get("/api/info").json()
    assert info["voices"] == ["a", "b"] and info["max_seconds"] == MAX_SECONDS


def test_a_failure_inside_a_job_is_one_line_and_the_server_goes_on(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(service_module, "decode_many", broken)
    job = wait(client, post(client, {"file": ("a.wav", audio_file(0.3 * voiced_signal(2000)))}).json()["id"])
    assert job["state"] == "error" and job["message"].startswith("internal error")
    monkeypatch.undo()
    job = wait(client, post(client, {"file": ("a.wav", audio_file(0.3 * voiced_signal(2000)))}).json()["id"])
    assert job["state"] == "done"


def test_a_full_queue_answers_busy(service, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(service, "_work", lambda job, source, target: release.wait(30))
    upload = Upload("a.wav", audio_file(0.3 * voiced_signal(2000)))
    jobs = [service.submit(upload) for _ in range(service_module.MAX_QUEUED)]
    with pytest.raises(InputError, match="busy"):
        service.submit(upload)
    release.set()
    deadline = time.monotonic() + 30
    while any(job.state != "done" for job in jobs) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [job.state for job in jobs] == ["done"] * len(jobs)
    service.submit(upload)  # room again


def test_serve_binds_to_localhost_by_default():
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 7860)


def test_the_serve_command_starts_answers_and_stops_on_ctrl_c(tmp_path):
    import json
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "speechvq", "serve", "--port", str(port), "--log-level",
                               "warning"], stderr=subprocess.PIPE, text=True)
    try:
        deadline, info = time.monotonic() + 60, None
        while info is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=2) as response:
                    info = json.load(response)
            except OSError:
                time.sleep(0.2)
        assert info is not None, "the server did not answer"
        assert "june" in info["voices"] and info["max_seconds"] == 180.0
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
    assert f"http://127.0.0.1:{port}/" in stderr


@pytest.mark.parametrize("argv, message", [
    (["serve", "--model", "no-such-model.pt"], "no-such-model.pt"),
    (["serve", "--max-seconds", "0"], "limits must be positive"),
])
def test_serve_refuses_bad_options_with_one_line(capsys, argv, message):
    from speechvq.cli import main

    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("speechvq: error:") and message in err[0]
