"""Faults: protocol errors, garbage, abrupt disconnects at any moment, an hour of silence as fast as
possible, the connection limit, idle clients, tokens, oversized messages. Each ends THAT session only:
clients streaming at the same time get their in-process transcripts, and afterwards no session, job,
option set or Stream of the server's model is left (memory back to where it was)."""

import asyncio
import base64
import gc
import json
import os
import struct
import threading
import time
import urllib.request

import numpy as np
import pytest
from server_testutil import start_message
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from speech_llm.decoding.recognizer import Recognizer, Stream
from speech_llm.server import app
from speech_llm.server.app import ServerConfig, ServerThread
from speech_llm.server.client import ClientError, run_clients, run_clients_async

HOUR = 3600


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def assert_clean(srv, timeout: float = 10.0) -> None:
    """No session, decode job or extra recognizer left, and no Stream of the server's model alive."""
    deadline = time.monotonic() + timeout
    while True:
        h = srv.call(srv.server.health)
        if (h["active"], h["jobs"], h["option_sets"]) == (0, 0, 0):
            break
        assert time.monotonic() < deadline, h
        time.sleep(0.05)
    gc.collect()
    model = srv.rec.model
    assert not [o for o in gc.get_objects() if type(o) is Stream and o.rec.model is model]


async def session(url, *sends, abort_after: bool = False):
    """Send each item (dict -> JSON text, bytes -> binary), then read until the server closes.
    Returns (messages, close code); ``abort_after``: drop the TCP connection right after sending."""
    msgs = []
    async with connect(url, max_size=None) as ws:
        try:
            for x in sends:
                await ws.send(json.dumps(x) if isinstance(x, dict) else x)
        except ConnectionClosed:      # the server closed first: what it sent before is still there to read
            pass
        if abort_after:
            ws.transport.abort()
            return msgs, None
        try:
            async for m in ws:
                msgs.append(json.loads(m))
        except ConnectionClosed:
            pass
    return msgs, ws.close_code


def errors(msgs) -> list[str]:
    return [m["code"] for m in msgs if m["type"] == "error"]


async def with_good_clients(url, utterances, references, faults):
    """Run ``faults`` (a coroutine) while three clients stream in real time; their text must be unaffected."""
    good = [utterances[i] for i in (0, 3, 6)]
    results, fault_result = await asyncio.gather(
        run_clients_async(url, [u.audio() for u in good], realtime=True, stagger_s=0.05), faults)
    for r, i in zip(results, (0, 3, 6)):
        assert r.error is None and r.text == references[i].text
    return fault_result


def test_protocol_errors_end_only_that_session(server, utterances, references):
    u = utterances[1]
    pcm = u.samples[:8000].tobytes()
    rng = np.random.default_rng(0)
    start = start_message(u.rate)

    async def faults():
        cases = {
            "audio before start": ([pcm], "not_started", 1008),
            "end before start": ([{"type": "end"}], "not_started", 1008),
            "wrong sample format": ([start_message(u.rate, "mulaw"), pcm], "unsupported_format", 1003),
            "wrong version": ([start | {"version": 99}], "unsupported_version", 1003),
            "bad sample rate": ([start | {"sample_rate": 12}], "bad_sample_rate", 1003),
            "not JSON": (["{oops"], "bad_json", 1008),
            "unknown type": ([start, {"type": "flush"}], "bad_message", 1008),
            "second start": ([start, start], "already_started", 1008),
            "odd bytes (garbage s16le)": ([start, pcm, rng.bytes(1001)], "bad_frame", 1008),
            "garbage f32le": ([start_message(u.rate, "f32le"), rng.bytes(4000)], "bad_audio", 1008),
            "after end": ([start, pcm, {"type": "end"}, pcm], "after_end", 1008),
            "disallowed option": ([start | {"options": {"quantize": "int8"}}], "bad_option", 1008),
        }
        out = await asyncio.gather(*(session(server.ws_url, *sends) for sends, _, _ in cases.values()))
        for (name, (_, code, close)), (msgs, got_close) in zip(cases.items(), out):
            assert errors(msgs) == [code] and got_close == close, (name, msgs, got_close)
        # garbage that IS valid audio (random int16 noise) is just noise: decoded to the end
        msgs, close = await session(server.ws_url, start, rng.bytes(64000), {"type": "end"})
        assert msgs[-1]["type"] == "done" and close == 1000

    asyncio.run(with_good_clients(server.ws_url, utterances, references, faults()))
    assert_clean(server)


def ws_frame(opcode: int, payload: bytes, length: int | None = None) -> bytes:
    """A masked client frame; ``length`` may claim more payload than follows (a frame cut short)."""
    n = len(payload) if length is None else length
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def cut_mid_frame(host: str, port: int, start: dict) -> None:
    """A raw client: handshake, start, then half a binary frame, then the TCP connection drops."""
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    writer.write(ws_frame(0x1, json.dumps(start).encode()))
    writer.write(ws_frame(0x2, os.urandom(500), length=4000))
    await writer.drain()
    writer.transport.abort()


@pytest.mark.timeout(180)
def test_disconnects_at_any_moment_free_the_session(server, utterances, references):
    u = utterances[2]
    start = start_message(u.rate)
    frames = [u.samples[i:i + 2205].tobytes() for i in range(0, len(u.samples), 2205)]
    host, port = "127.0.0.1", server.server.port

    async def mid_utterance_realtime():
        async with connect(server.ws_url) as ws:
            await ws.send(json.dumps(start))
            for f in frames[:10]:
                await ws.send(f)
                await asyncio.sleep(0.1)
            ws.transport.abort()

    async def faults(rounds: int):
        for _ in range(rounds):
            await asyncio.gather(
                session(server.ws_url, abort_after=True),                              # right after the handshake
                session(server.ws_url, start, abort_after=True),                       # after start
                session(server.ws_url, start, *frames[:len(frames) // 2], abort_after=True),   # mid-utterance
                session(server.ws_url, start, *frames, {"type": "end"}, abort_after=True),     # before "done"
                session(server.ws_url, start | {"options": {"context_words": 3}}, *frames[:5], abort_after=True),
                cut_mid_frame(host, port, start),                                      # mid-frame
                mid_utterance_realtime())

    asyncio.run(with_good_clients(server.ws_url, utterances, references, faults(1)))
    assert_clean(server)
    before = rss_mb()
    asyncio.run(faults(6))                     # 42 more broken sessions
    assert_clean(server)
    assert rss_mb() - before < 30, "memory grows with broken sessions"


@pytest.mark.timeout(240)
def test_an_hour_of_silence_as_fast_as_possible(server_rec, utterances, references):
    """An hour of -60 dBFS noise (57.6M samples, 115 MB of s16le) sent as fast as the socket takes it:
    endpointing opens no segment, the session finishes, memory stays flat; a real-time client at the same
    time gets its transcript."""
    rate = 16000
    frame = (np.random.default_rng(0).standard_normal(1 << 19) * 30).astype("<i2").tobytes()   # 32.8 s, 1 MiB
    n_frames = HOUR * rate // (1 << 19)
    tail = np.zeros(HOUR * rate - n_frames * (1 << 19), "<i2").tobytes()
    peak = [0.0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.1)

    async def silence():
        t0 = time.monotonic()
        msgs, close = await session(srv.ws_url, start_message(rate), *([frame] * n_frames), tail, {"type": "end"})
        return msgs, close, time.monotonic() - t0

    with ServerThread(server_rec, ServerConfig(port=0, max_message_bytes=1 << 20)) as srv:
        base = rss_mb()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            msgs, close, wall = asyncio.run(with_good_clients(srv.ws_url, utterances, references, silence()))
        finally:
            stop.set()
            watcher.join()
        assert close == 1000 and [m["type"] for m in msgs] == ["ready", "done"], msgs[-1]
        done = msgs[-1]
        assert done["audio_s"] == HOUR and done["segments"] == 0 and done["text"] == ""
        assert peak[0] - base < 64, f"RSS grew {peak[0] - base:.0f} MB while an hour of audio went through"
        assert wall < 120
        assert_clean(srv)


def test_the_connection_limit_refuses_with_http_503(server_rec, utterances, references):
    u, v = utterances[0], utterances[3]

    async def scenario(url):
        async with connect(url) as a, connect(url) as b:
            for ws, w in ((a, u), (b, v)):
                await ws.send(json.dumps(start_message(w.rate)))
                assert json.loads(await ws.recv())["type"] == "ready"
                await ws.send(w.samples[:len(w.samples) // 2].tobytes())
            with pytest.raises(InvalidStatus) as e:
                async with connect(url):
                    pass
            assert e.value.response.status_code == 503
            assert json.loads(e.value.response.body)["error"] == "server_full"
            assert e.value.response.headers["Retry-After"]
            with pytest.raises(ClientError, match="HTTP 503"):
                await run_clients_async(url, [u.audio()])
            done = []
            for ws, w in ((a, u), (b, v)):       # the sessions admitted before are not disturbed
                await ws.send(w.samples[len(w.samples) // 2:].tobytes())
                await ws.send(json.dumps({"type": "end"}))
                done.append([json.loads(m) async for m in ws][-1])
        # the slots are free again once those sessions end
        return done, await run_clients_async(url, [u.audio()])

    with ServerThread(server_rec, ServerConfig(port=0, max_active=2)) as srv:
        done, (r,) = asyncio.run(scenario(srv.ws_url))
        assert [d["text"] for d in done] == [references[0].text, references[3].text]
        assert r.done is not None and r.close_code == 1000
        assert_clean(srv)


def test_a_handshake_past_the_503_check_gets_server_full_and_1013(server_rec, utterances, monkeypatch):
    """The race path: a handshake admitted while the last slot was being taken."""
    monkeypatch.setattr(app.RecognitionServer, "_process_request", lambda self, conn, req: None)
    with ServerThread(server_rec, ServerConfig(port=0, max_active=1)) as srv:
        async def scenario():
            async with connect(srv.ws_url) as a:
                await a.send(json.dumps(start_message(16000)))
                await a.recv()
                return await session(srv.ws_url, start_message(16000))
        msgs, close = asyncio.run(scenario())
        assert errors(msgs) == ["server_full"] and close == 1013
        assert_clean(srv)


def test_idle_clients_are_closed(server_rec):
    with ServerThread(server_rec, ServerConfig(port=0, idle_timeout_s=0.3)) as srv:
        for sends in ([], [start_message(16000)], [start_message(16000), bytes(3200)]):
            msgs, close = asyncio.run(session(srv.ws_url, *sends))
            assert errors(msgs) == ["idle_timeout"] and close == 1008
        assert_clean(srv)


def test_the_token_is_checked_at_start(server_rec, utterances):
    u = utterances[3]
    with ServerThread(server_rec, ServerConfig(port=0, token="s3cret")) as srv:
        for token in (None, "wrong", ""):
            extra = {} if token is None else {"token": token}
            msgs, close = asyncio.run(session(srv.ws_url, start_message(u.rate, **extra), u.samples.tobytes()))
            assert errors(msgs) == ["unauthorized"] and close == 1008
        r = run_clients(srv.ws_url, [u.audio()], token="s3cret")[0]
        assert r.done is not None
        assert_clean(srv)


def test_an_oversized_message_closes_with_1009(server_rec, utterances, references):
    with ServerThread(server_rec, ServerConfig(port=0, max_message_bytes=8192)) as srv:
        async def big():
            return await session(srv.ws_url, start_message(16000), bytes(16384))
        # the good clients send 100 ms frames (4.4 kB): under the limit
        msgs, close = asyncio.run(with_good_clients(srv.ws_url, utterances, references, big()))
        assert close == 1009
        assert_clean(srv)


class SlowRecognizer(Recognizer):
    """Every batched decode call first burns 1.2 s of CPU in Python (holding the GIL as real work does)."""

    def decode_streams(self, streams):
        t = time.perf_counter()
        while time.perf_counter() - t < 1.2:
            sum(range(1000))
        super().decode_streams(streams)


def test_a_slow_decoder_blocks_neither_keepalive_nor_http(server_rec, utterances, references):
    """Servers that decode on the event loop miss keepalive pongs and drop sessions after a while; here the
    model runs on its own thread: with pings every 0.2 s (timeout 0.8 s) and decode calls of 1.2 s, the
    session lives and /healthz answers at once."""
    slow = SlowRecognizer(server_rec.model, server_rec.tokenizer, server_rec.config)
    u = utterances[0]
    with ServerThread(slow, ServerConfig(port=0, ping_interval_s=0.2, ping_timeout_s=0.8)) as srv:
        async def scenario():
            session_task = asyncio.create_task(run_clients_async(srv.ws_url, [u.audio()], realtime=True))
            waits = []
            while not session_task.done():
                t = time.monotonic()
                await asyncio.to_thread(lambda: urllib.request.urlopen(srv.url + "healthz", timeout=5).read())
                waits.append(time.monotonic() - t)
                await asyncio.sleep(0.05)
            return (await session_task)[0], waits

        r, waits = asyncio.run(scenario())
        assert r.close_code == 1000 and r.text == references[0].text
        assert srv.call(srv.server.health)["decoder"]["decode_s"] > 2 * 1.2     # the decoder really was slow
        assert max(waits) < 0.6, waits
        assert_clean(srv)
