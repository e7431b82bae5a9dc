"""The FastAPI app behind `speechvq serve`: one static page, a small JSON API, and the result files.

    GET  /                               the page (static/index.html, with app.js and style.css)
    GET  /api/info                       the model's voices, the limits, the engine
    POST /api/jobs                       multipart: file (audio or .svq) or sample=1; voice; reference
    GET  /api/jobs/{id}                  state, stage, progress 0..1, the result once done
    GET  /api/jobs/{id}/files/{name}     original.wav, decoded.wav, converted.wav, spectrograms.png, codes.svq

Bad requests get HTTP 400/404/411/413 with {"error": "one line"}. The server serves nothing but the three
static files and what its own jobs made; no path ever comes from the client.
"""

import re
from importlib import resources

from ..assets import sample_speech_path
from .service import CodecService, InputError, Upload

STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and the small text fields, beyond the files themselves


def create_app(service: CodecService):
    """The ASGI app serving `service` (fastapi is imported here: it is the optional `web` extra)."""
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    app = FastAPI(title="speechvq", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(_static_text("index.html"))

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            return error(404, "no such file")
        return Response(_static_text(name), media_type=STATIC_FILES[name])

    @app.get("/api/info")
    def info() -> dict:
        return service.info()

    @app.post("/api/jobs")
    async def submit(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is None:
            return error(411, "send the upload with a Content-Length")
        limit = 2 * service.limits.max_upload_bytes + FORM_OVERHEAD_BYTES
        if not length.isdigit() or int(length) > limit:
            return error(413, f"the upload is larger than this server takes "
                              f"({service.limits.max_upload_bytes / 2**20:g} MB per file)")
        try:
            async with request.form(max_files=2, max_fields=8) as form:
                upload = await _upload(form, "file")
                reference = await _upload(form, "reference")
                use_sample = form.get("sample") == "1"
                voice = str(form.get("voice") or "")
        except InputError as err:
            return error(400, str(err))
        except Exception as err:  # a malformed multipart body (starlette raises its own parse errors)
            return error(400, f"cannot read the form: {err}")
        if use_sample:
            upload = Upload("sample.flac (shipped sample)", sample_speech_path().read_bytes())
        if upload is None:
            return error(400, "choose a file (audio or .svq), record one, or use the shipped sample")
        try:
            job = await run_in_threadpool(service.submit, upload, voice, reference)
        except InputError as err:
            return error(400, str(err))
        return JSONResponse(job.snapshot(), status_code=202)

    @app.get("/api/jobs/{job_id}")
    def job_state(job_id: str) -> Response:
        try:
            return JSONResponse(service.job(job_id).snapshot())
        except KeyError:
            return error(404, "no such job (finished jobs are kept for a while only)")

    @app.get("/api/jobs/{job_id}/files/{name}")
    def job_file(job_id: str, name: str) -> Response:
        try:
            data, media_type = service.file(job_id, name)
            stem = _safe_stem(service.job(job_id).source_name)
        except KeyError:
            return error(404, "no such file")
        headers = {}
        if name == "codes.svq":
            headers["Content-Disposition"] = f'attachment; filename="{stem}.svq"'
        return Response(data, media_type=media_type, headers=headers)

    return app


async def _upload(form, field: str):
    """The named file field of a form as an Upload (None when absent or empty-named)."""
    item = form.get(field)
    if item is None or isinstance(item, str) or not getattr(item, "filename", None):
        return None
    return Upload(item.filename, await item.read())


def _safe_stem(name: str) -> str:
    """A file-name stem safe for a download header: ASCII letters, digits, dot, dash, underscore."""
    stem = re.sub(r"\.(wav|flac|ogg|mp3|svq)$", "", name.split(" ")[0], flags=re.IGNORECASE)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "speech"
    return stem[:64]


def _static_text(name: str) -> str:
    return resources.files("speechvq.web").joinpath("static", name).read_text(encoding="utf-8")
