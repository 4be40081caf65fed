"""Plain HTTP on the WebSocket port: the browser page (``GET /``, ``GET /static/<file>``), ``GET /healthz``,
and the refusal of a WebSocket handshake when the server is full (HTTP 503).

The page's files are package data (``speech_llm/server/static``, listed in setup.cfg), read once. Only the
file names found there are served: a request path is looked up by name, never joined onto a directory.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from importlib import resources

from websockets.datastructures import Headers
from websockets.http11 import Response

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml",
                 ".ico": "image/x-icon"}


def load_static() -> dict[str, tuple[bytes, str]]:
    """``{url path: (body, content type)}`` for every file of the package's static dir; ``/`` is index.html."""
    out = {}
    for entry in (resources.files("speech_llm.server") / "static").iterdir():
        suffix = entry.name[entry.name.rfind("."):] if "." in entry.name else ""
        if entry.is_file() and suffix in CONTENT_TYPES:
            out[f"/static/{entry.name}"] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    if "/static/index.html" in out:
        out["/"] = out["/static/index.html"]
    return out


def response(status: HTTPStatus, body: bytes, content_type: str, extra: tuple[tuple[str, str], ...] = ()) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"), *extra])
    return Response(status.value, status.phrase, headers, body)


def json_response(status: HTTPStatus, data: dict, extra: tuple[tuple[str, str], ...] = ()) -> Response:
    return response(status, (json.dumps(data) + "\n").encode(), "application/json", extra)


def text_response(status: HTTPStatus, text: str) -> Response:
    return response(status, (text + "\n").encode(), "text/plain; charset=utf-8")


def is_websocket_upgrade(request) -> bool:
    return "websocket" in request.headers.get("Upgrade", "").lower()


def request_path(request) -> str:
    """The path without its query string."""
    return request.path.split("?", 1)[0]
