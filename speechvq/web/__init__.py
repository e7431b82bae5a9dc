"""`speechvq serve`: a local web page to try the codec and voice conversion (the `web` extra).

    service.py   checks uploads and runs the codec in the background (no web framework needed; tested alone)
    app.py       the FastAPI app: the page, its JSON API and the result downloads
    static/      the page itself (HTML, JavaScript, CSS; no build step, nothing fetched from the internet)
"""

# Defaults of what the server accepts (here, not in service.py, so `speechvq --help` stays free of torch).
DEFAULT_MAX_UPLOAD_MB = 25.0
DEFAULT_MAX_SECONDS = 180.0  # a few minutes of speech; decoding runs at about real time on a small CPU
