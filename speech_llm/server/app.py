"""The recognition server: the websockets server, the decode loop, the recognizer pool and the limits.

    server = RecognitionServer(rec, ServerConfig(port=8000, max_batch_size=16))
    await server.start(); ...; await server.stop()          # inside an event loop
    run_server(rec, config, on_ready=print)                 # blocking, until SIGINT/SIGTERM (the CLI)
    with ServerThread(rec, config) as srv: srv.ws_url       # in a background thread (tests, benches)

Connection limit: a WebSocket handshake that would exceed ``max_active`` sessions is refused at the HTTP
level with **503 Service Unavailable** (a JSON body ``{"error": "server_full"}`` and ``Retry-After``); a
handshake that slipped past that check in a race is accepted and at once sent the error ``server_full``
and closed with code 1013 (try again later). Messages over ``max_message_bytes`` make the websockets library
close the connection with 1009. Every other limit is the session's (:mod:`speech_llm.server.session`).

On stop, every session is sent the error ``shutting_down`` and closed with 1001, then the decode thread ends.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from websockets.asyncio.server import serve
from websockets.protocol import State

from speech_llm.decoding.recognizer import Recognizer
from speech_llm.server import static_http
from speech_llm.server.decode_loop import DecodeLoop
from speech_llm.server.options import RecognizerPool
from speech_llm.server.protocol import PROTOCOL_VERSION, ProtocolError
from speech_llm.server.session import Session

log = logging.getLogger("speech_llm.server")
WS_PATH = "/ws"


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    """0: any free port (see :attr:`RecognitionServer.port` once started)."""
    max_batch_size: int = 16
    max_wait_ms: float = 10.0
    max_active: int = 32
    max_message_bytes: int = 1 << 20
    idle_timeout_s: float = 30.0
    token: str | None = None
    max_backlog_s: float = 10.0
    """Audio a session may have waiting for the decoder before its socket is no longer read."""
    step_audio_s: float = 2.0
    """Audio of one session taken per decode step (a fast sender is served in slices of this)."""
    max_option_sets: int = 8
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    close_timeout_s: float = 5.0


class RecognitionServer:
    """See the module docstring."""

    def __init__(self, rec: Recognizer, config: ServerConfig | None = None):
        self.config = config or ServerConfig()
        self.pool = RecognizerPool(rec, self.config.max_option_sets)
        self.decoder = DecodeLoop(self.config.max_batch_size, self.config.max_wait_ms / 1000,
                                  self.config.step_audio_s)
        self.static = static_http.load_static()
        self.sessions: set[Session] = set()
        self._admitted: set = set()        # handshakes let through, their session not started yet
        self._ids = itertools.count(1)
        self._ws_server = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}{WS_PATH}"

    async def start(self) -> None:
        c = self.config
        self.decoder.start()
        self._ws_server = await serve(
            self._handler, c.host, c.port, process_request=self._process_request, max_size=c.max_message_bytes,
            max_queue=4, compression=None, ping_interval=c.ping_interval_s, ping_timeout=c.ping_timeout_s,
            close_timeout=c.close_timeout_s, logger=logging.getLogger("speech_llm.server.websockets"))
        self.port = self._ws_server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Tell every session, close them (1001), stop listening and end the decode thread."""
        for s in list(self.sessions):
            s.send_error(ProtocolError("shutting_down", "the server is shutting down"))
        if self._ws_server is not None:
            self._ws_server.close(close_connections=False)
            try:
                await asyncio.wait_for(self._ws_server.wait_closed(), self.config.close_timeout_s)
            except asyncio.TimeoutError:
                self._ws_server.close(close_connections=True)
                await self._ws_server.wait_closed()
        self.decoder.stop()

    def health(self) -> dict:
        return {"status": "ok", "protocol": PROTOCOL_VERSION, "active": len(self.sessions),
                "max_active": self.config.max_active, "jobs": self.decoder.num_jobs,
                "option_sets": self.pool.num_configs, "decoder": self.decoder.stats.snapshot()}

    # ------------------------------------------------------------------ HTTP
    def _process_request(self, connection, request):
        path = static_http.request_path(request)
        if not static_http.is_websocket_upgrade(request):
            if path == "/healthz":
                return static_http.json_response(HTTPStatus.OK, self.health())
            if path in self.static:
                body, content_type = self.static[path]
                return static_http.response(HTTPStatus.OK, body, content_type)
            return static_http.text_response(HTTPStatus.NOT_FOUND, f"not found: {path}")
        if path != WS_PATH:
            return static_http.text_response(HTTPStatus.NOT_FOUND, f"the WebSocket endpoint is {WS_PATH}")
        self._admitted = {c for c in self._admitted if c.state is not State.CLOSED}
        if len(self.sessions) + len(self._admitted) >= self.config.max_active:
            log.warning("refused a connection from %s: %d sessions active (the limit)",
                        connection.remote_address, len(self.sessions))
            return static_http.json_response(HTTPStatus.SERVICE_UNAVAILABLE,
                                      {"error": "server_full", "max_active": self.config.max_active},
                                      (("Retry-After", "5"),))
        self._admitted.add(connection)
        return None

    # ------------------------------------------------------------------ WebSocket
    async def _handler(self, ws) -> None:
        self._admitted.discard(ws)
        session = Session(ws, str(next(self._ids)), settings=self.config, pool=self.pool, decoder=self.decoder)
        if len(self.sessions) >= self.config.max_active:
            session.send_error(ProtocolError("server_full", f"{self.config.max_active} sessions are active"))
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)


def run_server(rec: Recognizer, config: ServerConfig, on_ready: Callable[[RecognitionServer], None] | None = None
               ) -> None:
    """Serve until SIGINT or SIGTERM (then stop cleanly). ``on_ready(server)`` once listening."""

    async def main() -> None:
        server = RecognitionServer(rec, config)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if on_ready is not None:
            on_ready(server)
        try:
            await stop.wait()
        finally:
            await server.stop()

    asyncio.run(main())


class ServerThread:
    """A :class:`RecognitionServer` on its own event loop in a background thread (a context manager)."""

    def __init__(self, rec: Recognizer, config: ServerConfig | None = None):
        self.config = config or ServerConfig(port=0)
        self.rec = rec
        self.server: RecognitionServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="speech-llm-server", daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def call(self, fn: Callable, timeout: float = 10.0):
        """Run ``fn()`` on the server's event loop and return its result (to inspect state safely)."""
        async def wrapped():
            return fn()
        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.server = RecognitionServer(self.rec, self.config)
            await self.server.start()
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.server.stop()

        try:
            asyncio.run(main())
        except BaseException as e:   # reported by __enter__ when startup failed
            self._error = e
            self._ready.set()
