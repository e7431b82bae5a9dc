"""`speechvq serve`: the local web page (speechvq/web) on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import argparse
import sys

from ..errors import SpeechVQError
from .common import decode_options


def run_serve(args: argparse.Namespace) -> int:
    """Serve the page until Ctrl-C; exit status 0 after a clean shutdown."""
    try:
        import uvicorn

        from ..web.app import create_app
    except ImportError as err:
        raise SpeechVQError(f"speechvq serve needs the web extra ({err.name} is missing): "
                            "pip install 'speechvq[web]'") from None
    from ..web.service import CodecService, Limits
    from .codec_commands import load_codec

    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 2**20), max_seconds=args.max_seconds)
    service = CodecService(load_codec(args), limits, decode_options(args), args.temperature, args.seed)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: other machines can reach this page and use this CPU",
              file=sys.stderr)
    print(f"speechvq serve: http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    try:
        uvicorn.run(create_app(service), host=args.host, port=args.port, log_level=args.log_level)
    finally:
        service.close()
    return 0
