"""One WebSocket connection: the protocol state machine, results back to the client, limits, clean-up.

    session = Session(websocket, session_id, settings=server.config, pool=server.pool, decoder=server.decoder)
    await session.run()          # returns when the connection is over, whatever the way it ended

Receiving (this task): "start" (checked, token compared, a recognizer for its options, a
:class:`~speech_llm.server.decode_loop.Job` registered), then binary audio frames (checked and put into the
job's inbox), "marker" and "end". Backpressure: while more than ``max_backlog_s`` of the client's audio
waits for the decoder, no further frame is read (the websockets library then stops reading the socket), so
a client that sends faster than real time costs bounded memory. Idle timeout: no message for
``idle_timeout_s`` before "end" is an error. After "end" the session waits for "done".

Sending (a second task): messages come from the decode thread (``call_soon_threadsafe``) into an outbox; a
partial result still unsent when a newer one of the same segment arrives is replaced by it (a slow client
gets the latest text, not a growing queue); finals, markers, "done" and errors are all sent, in order.
"done" is followed by close code 1000, an error by its close code (:data:`speech_llm.server.protocol.ERRORS`).

Any error ends THIS session only. Whatever happens -- done, error, the client vanishing mid-frame -- the
job leaves the decode loop and the recognizer pool in ``finally``, so no stream state outlives its
connection, and one log line reports the session.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from websockets.exceptions import ConnectionClosed

from speech_llm.server.decode_loop import END, DecodeLoop, Job, Marker
from speech_llm.server.options import RecognizerPool, config_summary
from speech_llm.server.protocol import (
    ProtocolError,
    StartRequest,
    decode_audio,
    error_message,
    parse_message,
    parse_start,
    ready_message,
)

log = logging.getLogger("speech_llm.server")


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


class SessionSettings(Protocol):
    """The server limits a session reads (:class:`~speech_llm.server.app.ServerConfig` has them)."""

    idle_timeout_s: float
    token: str | None
    max_backlog_s: float
    close_timeout_s: float


class Session:
    """One client connection (see the module docstring).

    Args:
        ws: the websockets connection.
        session_id: the id sent in "ready" and logged.
        settings: the limits (:class:`SessionSettings`).
        pool: where the session's recognizer is acquired (for its options) and released.
        decoder: the decode loop its job joins and leaves.
    """

    def __init__(self, ws, session_id: str, *, settings: SessionSettings, pool: RecognizerPool,
                 decoder: DecodeLoop):
        self.ws, self.id = ws, session_id
        self.cfg, self.pool, self.decoder = settings, pool, decoder
        self.loop = asyncio.get_running_loop()
        self.start: StartRequest | None = None
        self.job: Job | None = None
        self.rec = None
        self.ended = False
        self.outcome = "disconnected"
        self.closing = False             # a close is queued: nothing more is sent
        self.t0 = time.monotonic()
        self._outbox: deque = deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        try:
            await self._receive_loop()
        except ConnectionClosed:
            pass
        finally:
            self._release()
            await self._finish_sending(sender)
            self._log()

    # ------------------------------------------------------------------ receiving
    async def _receive_loop(self) -> None:
        """Until the connection is closed. Once a close is queued (an error, "done"), incoming messages are
        only drained: the library must keep reading to see the client's close frame."""
        while True:
            try:             # after "end" the server is working: no idle limit on the client
                timeout = None if self.ended or self.closing else self.cfg.idle_timeout_s
                msg = await asyncio.wait_for(self.ws.recv(), timeout)
            except asyncio.TimeoutError:
                self.send_error(ProtocolError("idle_timeout", f"no message for {self.cfg.idle_timeout_s:g} s"))
                continue
            if self.closing:
                continue
            try:
                if self.ended:
                    raise ProtocolError("after_end", 'no message may follow "end"')
                if isinstance(msg, bytes):
                    await self._audio(msg)
                else:
                    self._control(parse_message(msg))
            except ProtocolError as e:
                self.send_error(e)

    def _control(self, msg: dict) -> None:
        kind = msg["type"]
        if kind == "start":
            if self.start is not None:
                raise ProtocolError("already_started", '"start" was already sent')
            self._begin(parse_start(msg, self.pool.limits))
            return
        if kind not in ("marker", "end"):
            raise ProtocolError("bad_message", f"unknown message type {kind!r} (start, marker, end)")
        if self.start is None:
            raise ProtocolError("not_started", f'"{kind}" before "start"')
        if kind == "marker":
            marker_id = msg.get("id")
            if not isinstance(marker_id, (str, int, float, type(None))) or isinstance(marker_id, bool):
                raise ProtocolError("bad_message", 'a marker "id" must be a string or a number')
            self.decoder.put(self.job, Marker(marker_id))
        else:
            self.ended = True
            self.decoder.put(self.job, END)

    def _begin(self, start: StartRequest) -> None:
        token = self.cfg.token
        if token and not hmac.compare_digest((start.token or "").encode(), token.encode()):
            raise ProtocolError("unauthorized", "missing or wrong token")
        self.rec = self.pool.acquire(start.overrides())
        self.start = start
        self.job = Job(self.rec, start.sample_rate, self._from_decoder)
        self.decoder.add(self.job)
        self._queue(ready_message(self.id, self.rec.chunk_s, config_summary(self.rec.config)))

    async def _audio(self, frame: bytes) -> None:
        if self.start is None:
            raise ProtocolError("not_started", 'audio before "start"')
        self.decoder.put(self.job, decode_audio(frame, self.start))
        if self.job.queued_s > self.cfg.max_backlog_s:
            self._drained.clear()
            waits = [asyncio.ensure_future(self._drained.wait()), asyncio.ensure_future(self.ws.wait_closed())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()

    # ------------------------------------------------------------------ sending
    def _from_decoder(self, messages: list[dict], error: ProtocolError | None) -> None:
        """Called on the decode thread: hand the messages to the event loop."""
        try:
            self.loop.call_soon_threadsafe(self._deliver, messages, error)
        except RuntimeError:    # the event loop is closed: the server is gone
            pass

    def _deliver(self, messages: list[dict], error: ProtocolError | None) -> None:
        for m in messages:
            self._queue(m)
            if m["type"] == "done":
                self.outcome = "done"
                self._queue(_Close(1000, "done"))
        if error is not None:
            self.send_error(error)
        if self.job is not None and self.job.queued_s <= self.cfg.max_backlog_s / 2:
            self._drained.set()

    def _queue(self, item) -> None:
        if self.closing:
            return
        self.closing = isinstance(item, _Close)
        last = self._outbox[-1] if self._outbox else None
        if isinstance(item, dict) and item["type"] == "partial" and isinstance(last, dict) \
                and last["type"] == "partial" and last["segment"] == item["segment"]:
            self._outbox[-1] = item           # the newer partial supersedes the unsent one
        else:
            self._outbox.append(item)
        self._wake.set()

    def send_error(self, err: ProtocolError) -> None:
        """Send ``err`` to the client and close the connection with its close code (this session only).
        Nothing more is sent after it; a no-op once "done" or an earlier error is queued. Event loop only."""
        if self.closing:         # "done" or an earlier error is already on its way
            return
        self.outcome = f"error {err.code}"
        self._queue(error_message(err))
        self._queue(_Close(err.close_code, err.code))
        self._drained.set()     # a receive task waiting for the decoder must not wait forever

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                item = self._outbox.popleft()
                if isinstance(item, _Close):
                    await self.ws.close(item.code, item.reason)
                    return
                await self.ws.send(json.dumps(item))

    async def _finish_sending(self, sender: asyncio.Task) -> None:
        """Let a queued error/close go out (bounded by the close timeout), else stop the sender."""
        if self.closing and not sender.done():
            try:
                await asyncio.wait_for(asyncio.shield(sender), self.cfg.close_timeout_s)
            except (asyncio.TimeoutError, ConnectionClosed):
                pass
            except Exception:
                log.exception("session %s: sending failed", self.id)
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)

    # ------------------------------------------------------------------ clean-up
    def _release(self) -> None:
        if self.job is not None:
            self.decoder.remove(self.job)
        if self.rec is not None:
            self.pool.release(self.rec)
            self.rec = None

    def _log(self) -> None:
        dur = time.monotonic() - self.t0
        stream = self.job.stream if self.job is not None else None
        audio_s = stream.duration_s if stream is not None else 0.0
        compute_s = stream.compute_s if stream is not None else 0.0
        rtf = f"{compute_s / audio_s:.3f}" if audio_s > 0 else "-"
        code = self.ws.close_code if self.ws.close_code is not None else "-"
        label = f" label={self.start.label!r}" if self.start is not None and self.start.label else ""
        log.info("session %s%s %s: %s, close %s, %.1f s, audio %.1f s, compute %.2f s, RTF %s, segments %d",
                 self.id, label, _peer(self.ws), self.outcome, code, dur, audio_s, compute_s, rtf,
                 len(stream.segments) if stream is not None else 0)
        self.job = None


def _peer(ws) -> str:
    addr = ws.remote_address
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else str(addr)
