"""A streaming recognition server over WebSocket, with a browser page and a client (``speech-llm serve`` /
``speech-llm client``). Built on the ``websockets`` library (asyncio); the model runs on one decode thread
that advances every session together (:mod:`speech_llm.server.decode_loop`).

Modules: :mod:`~speech_llm.server.protocol` (messages, checks), :mod:`~speech_llm.server.options`
(per-session decode options), :mod:`~speech_llm.server.decode_loop` (continuous batching),
:mod:`~speech_llm.server.session` (one connection), :mod:`~speech_llm.server.static_http` (the page,
/healthz, 503), :mod:`~speech_llm.server.app` (the server), :mod:`~speech_llm.server.client` (the client library),
``static/`` (the page: index.html, app.js, capture-worklet.js).

The protocol (messages, options, errors and close codes, versioning) is written once, in
``docs/SERVER_PROTOCOL.md``; the code is :mod:`speech_llm.server.protocol`
(:data:`~speech_llm.server.protocol.PROTOCOL_VERSION`).
"""

from speech_llm.server.protocol import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION"]
