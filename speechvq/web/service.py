"""What the web page does, without the web: check an upload, run the codec on it in the background, keep
the results in memory.

    service = CodecService(Codec.from_checkpoint("model.pt"))
    job = service.submit(Upload("speech.wav", data), voice="june")   # InputError at once on bad input
    service.job(job.id).snapshot()    # {"state": "running", "stage": "decoding", "progress": 0.4, ...}
    service.file(job.id, "codes.svq")  # bytes of the .svq file, once done

Nothing here touches the disk: uploads, WAVs, the PNG and the .svq file live in memory, so a crash or a
rejected upload leaves no file behind. One worker thread runs the jobs in order (decoding already uses every
core); a few finished jobs are kept for their downloads and the oldest are dropped.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from torch import Tensor

from .. import bitstream
from ..audio import audio_bytes, audio_seconds, prepare_for_model, read_audio_bytes, rms_dbfs
from ..codec import Codec, CodeFile
from ..errors import SpeechVQError
from ..generation import DecodeOptions
from ..inference import DEFAULT_TEMPERATURE, Encoded, build_engine, decode_many, reference_voice, speaker_row
from . import DEFAULT_MAX_SECONDS, DEFAULT_MAX_UPLOAD_MB

log = logging.getLogger(__name__)

SILENCE_DBFS = -70.0  # an input quieter than this (RMS) holds nothing to code: refused as silent
MAX_QUEUED = 4  # jobs waiting or running; more are refused with "busy" rather than queued for minutes
KEEP_FINISHED = 8  # finished jobs whose results stay downloadable


class InputError(SpeechVQError):
    """A request the page should answer with one message (bad file, limit exceeded, unknown voice, busy)."""


@dataclass(frozen=True)
class Limits:
    """What the server accepts.

    Attributes:
        max_upload_bytes: largest file accepted, bytes (a request holds at most two files).
        max_seconds: longest audio accepted, seconds (and the longest a code file may decode to).
    """

    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 2**20)
    max_seconds: float = DEFAULT_MAX_SECONDS

    def __post_init__(self) -> None:
        if self.max_upload_bytes <= 0 or self.max_seconds <= 0:
            raise SpeechVQError("the upload size and duration limits must be positive")


@dataclass(frozen=True)
class Upload:
    """A file as the client sent it. `name` is only shown on the page: it is never used as a path."""

    name: str
    data: bytes


@dataclass
class _Source:
    """A checked input: audio (mono at the model rate) or the codes of a .svq file."""

    name: str
    wav: Optional[Tensor] = None
    encoded: Optional[Encoded] = None
    svq: Optional[bytes] = None
    info: Optional[CodeFile] = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Job:
    """One request's work and results. `state`: queued, running, done or error."""

    id: str
    source_name: str
    state: str = "queued"
    stage: str = "waiting for the previous job"
    done_samples: int = 0
    total_samples: int = 1
    message: str = ""
    result: dict = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # name -> (bytes, media type)
    started: float = 0.0
    finished: float = 0.0

    def snapshot(self) -> dict:
        """The job as JSON-able data for the page (no file contents)."""
        return {"id": self.id, "state": self.state, "stage": self.stage, "message": self.message,
                "progress": min(1.0, self.done_samples / max(1, self.total_samples)),
                "elapsed_s": round((self.finished or time.perf_counter()) - self.started, 2) if self.started else 0.0,
                "result": self.result, "files": sorted(self.files)}


FILE_TYPES = {"original.wav": "audio/wav", "decoded.wav": "audio/wav", "converted.wav": "audio/wav",
              "spectrograms.png": "image/png", "codes.svq": "application/octet-stream"}


class CodecService:
    """Runs the codec for the page: checks uploads, queues jobs on one worker thread, keeps results.

    Args:
        codec: the model (eval mode) and its code statistics.
        limits: upload size and duration limits.
        options: decoding engine and chunking (the engine is built once, here).
        temperature, seed: sampling settings of every decode.
    """

    def __init__(self, codec: Codec, limits: Limits = Limits(), options: Optional[DecodeOptions] = None,
                 temperature: float = DEFAULT_TEMPERATURE, seed: int = 0) -> None:
        self.codec, self.limits = codec, limits
        self.options = options or DecodeOptions()
        self.engine = build_engine(codec.model, self.options)
        self.temperature, self.seed = temperature, seed
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="speechvq-job")

    def close(self) -> None:
        """Stop accepting work and wait for the running job."""
        self._worker.shutdown(wait=True, cancel_futures=True)

    def info(self) -> dict:
        """What the page shows before any upload: the model's voices, rate and the limits."""
        model = self.codec.model
        return {"sample_rate": model.sample_rate, "frame_rate": model.sample_rate / model.hop_length,
                "codebook_size": model.quantizer.codebook_size,
                "voices": list(model.speakers) if model.has_voices else [],
                "reference_voices": model.has_speakers,
                "speaker_mode": model.speaker_mode,
                "max_upload_mb": round(self.limits.max_upload_bytes / 2**20, 2),
                "max_seconds": self.limits.max_seconds, "engine": self.engine.label,
                "temperature": self.temperature}

    def submit(self, upload: Upload, voice: str = "", reference: Optional[Upload] = None) -> Job:
        """Check a request and queue its job.

        Args:
            upload: an audio file (WAV, FLAC, OGG, MP3) or a .svq file of this model.
            voice: "" for the voice the codes record, a named voice of the model, or "reference" for the
                voice of `reference` (an audio file).

        Raises:
            InputError: the inputs are bad or too large, the voice is unknown, or too many jobs are waiting.
        """
        source = self._check_source(upload)
        target = self._check_voice(voice, reference)
        job = Job(id=secrets.token_hex(8), source_name=source.name)
        with self._lock:
            active = sum(1 for j in self._jobs.values() if j.state in ("queued", "running"))
            if active >= MAX_QUEUED:
                raise InputError(f"the server is busy with {active} jobs; try again in a little while")
            self._jobs[job.id] = job
            self._forget_old_jobs()
        self._worker.submit(self._run, job, source, target)
        return job

    def job(self, job_id: str) -> Job:
        """A job by id. Raises KeyError when there is none (or it was dropped)."""
        with self._lock:
            return self._jobs[job_id]

    def file(self, job_id: str, name: str) -> tuple[bytes, str]:
        """A result file of a finished job: (bytes, media type). Raises KeyError for an unknown job or file."""
        if name not in FILE_TYPES:
            raise KeyError(name)
        return self.job(job_id).files[name]

    # -- checking inputs (in the request, before anything is queued) --

    def _check_source(self, upload: Upload) -> _Source:
        data = upload.data
        if data.startswith(bitstream.MAGIC):  # both format versions start with this
            self._check_size(upload)
            try:
                encoded, info = self.codec.read(data, f"the code file {upload.name}")
            except SpeechVQError as err:
                raise InputError(str(err)) from None
            if info.duration_s > self.limits.max_seconds:
                raise InputError(f"{upload.name} decodes to {info.duration_s:.1f} s; this server takes at most "
                                 f"{self.limits.max_seconds:g} s")
            return _Source(upload.name, encoded=encoded, svq=data, info=info)
        wav, notes = self._check_audio(upload)
        return _Source(upload.name, wav=wav, notes=notes)

    def _check_audio(self, upload: Upload) -> tuple[Tensor, list[str]]:
        """Mono audio at the model rate and notes on what was changed; InputError when it cannot be coded."""
        label = f"the upload {upload.name}"
        self._check_size(upload)
        try:
            seconds = audio_seconds(upload.data, label)
            if seconds > self.limits.max_seconds:
                raise InputError(f"{upload.name} is {seconds:.1f} s long; this server takes at most "
                                 f"{self.limits.max_seconds:g} s")
            stored, rate = read_audio_bytes(upload.data, label)
            wav, notes = prepare_for_model(stored, rate, self.codec.model.sample_rate, upload.name)
        except InputError:
            raise
        except SpeechVQError as err:
            raise InputError(str(err)) from None
        if wav.numel() < self.codec.model.hop_length:
            raise InputError(f"{upload.name} is too short to code ({wav.numel()} samples at "
                             f"{self.codec.model.sample_rate} Hz; at least one frame of {self.codec.model.hop_length})")
        if rms_dbfs(wav) < SILENCE_DBFS:
            raise InputError(f"{upload.name} is silent (RMS {rms_dbfs(wav):.0f} dBFS): there is nothing to code")
        return wav, notes

    def _check_size(self, upload: Upload) -> None:
        """Empty or over the size limit: refused before anything reads it."""
        if not upload.data:
            raise InputError(f"{upload.name} is empty (0 bytes)")
        if len(upload.data) > self.limits.max_upload_bytes:
            raise InputError(f"{upload.name} is {len(upload.data) / 2**20:.1f} MB; this server takes at most "
                             f"{self.limits.max_upload_bytes / 2**20:g} MB")

    def _check_voice(self, voice: str, reference: Optional[Upload]):
        """The decode target: None (as recorded), a voice name, or the reference's waveform and label."""
        model = self.codec.model
        if voice == "reference":
            if reference is None:
                raise InputError("choose a second recording whose voice to convert into")
            if not model.has_speakers:
                raise InputError("this model has no speaker conditioning, so it cannot take on another voice")
            wav = self._check_audio(reference)[0]
            return wav, reference.name
        if voice:
            try:
                speaker_row(model, voice)
            except SpeechVQError as err:
                raise InputError(str(err)) from None
            return voice
        return None

    def _forget_old_jobs(self) -> None:
        finished = [key for key, job in self._jobs.items() if job.state in ("done", "error")]
        for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[key]

    # -- the work (on the worker thread) --

    def _run(self, job: Job, source: _Source, target) -> None:
        job.stage, job.started = "starting", time.perf_counter()
        job.state = "running"
        try:
            self._work(job, source, target)
            job.stage, state = "done", "done"
        except SpeechVQError as err:
            job.message, state = str(err), "error"
        except Exception:  # a bug: the page gets one line, the log the traceback
            log.exception("job %s failed", job.id)
            job.message, state = "internal error while coding this file (the server log has details)", "error"
        job.finished = time.perf_counter()
        job.state = state  # last: a client that sees the final state finds everything else in place

    def _work(self, job: Job, source: _Source, target) -> None:
        codec, model = self.codec, self.codec.model
        rate = model.sample_rate
        result: dict = {"name": source.name, "kind": "code file" if source.svq is not None else "audio",
                        "notes": list(source.notes)}
        if source.svq is None:
            job.stage = "encoding"
            start = time.perf_counter()
            data = codec.compress(source.wav)
            result["encode_rtf"] = (time.perf_counter() - start) / (source.wav.numel() / rate)
            if model.speaker_mode == "table" and model.n_speakers > 1:  # most of the encoding time
                result["encode_includes"] = f"scoring the {model.n_speakers} voices to record the closest"
            encoded, info = codec.read(data, "the new code file")
        else:
            data, encoded, info = source.svq, source.encoded, source.info
        seconds = encoded.n_samples / rate
        result.update(seconds=seconds, svq_bytes=len(data), frames=info.header.frames, coding=info.header.coding,
                      version=info.header.version, voice=info.voice, pcm_bps=16 * rate,
                      **{key: round(value, 1) for key, value in info.bitrates(len(data)).items()})
        job.total_samples = encoded.n_samples * (1 if target is None else 2)
        job.files["codes.svq"] = (data, FILE_TYPES["codes.svq"])
        if source.wav is not None:
            job.files["original.wav"] = (audio_bytes(source.wav, rate), "audio/wav")

        decoded, result["decode_rtf"] = self._decode(job, encoded, None, "decoding", seconds)
        job.files["decoded.wav"] = (audio_bytes(decoded, rate), "audio/wav")
        panels = ([("original", source.wav)] if source.wav is not None else []) + [("decoded", decoded)]
        if target is not None:
            if isinstance(target, tuple):  # the voice of a second recording
                job.stage = "finding the reference's voice"
                voice = reference_voice(model, target[0], target[1])
            else:
                voice = target
            label = voice if isinstance(voice, str) else voice.label
            converted, result["convert_rtf"] = self._decode(job, encoded, voice, f"converting to {label}", seconds)
            job.files["converted.wav"] = (audio_bytes(converted, rate), "audio/wav")
            panels.append((f"converted to {label}", converted))
            result["target_voice"] = label
        job.stage = "drawing spectrograms"
        from ..plots import spectrograms_png

        job.files["spectrograms.png"] = (spectrograms_png(panels, rate,
                                                          title=f"speechvq {result['file_bps'] / 1000:.2f} kbit/s"),
                                         "image/png")
        result["engine"] = self.engine.label
        job.result = result

    def _decode(self, job: Job, encoded: Encoded, voice, stage: str, seconds: float) -> tuple[Tensor, float]:
        """Generate one utterance with progress on the job; returns (waveform `[T]`, real-time factor)."""
        job.stage = stage
        base = job.done_samples
        generated = 0

        def progress(samples: int) -> None:
            nonlocal generated  # clamped: this pass never reports more than its own share
            generated += samples
            job.done_samples = base + min(generated, encoded.n_samples)

        start = time.perf_counter()
        wav = decode_many(self.codec.model, [encoded], [voice], self.temperature, self.seed, progress,
                          self.options, self.engine)[0]
        job.done_samples = base + encoded.n_samples
        return wav, (time.perf_counter() - start) / seconds
