"""The client library: stream audio to a recognition server and collect the results and latencies.

    r = transcribe_file("ws://127.0.0.1:8000/ws", "a.wav", realtime=True)   # ClientResult
    r.text, r.finals, r.latencies_s, r.done
    results = run_clients(url, [Audio.from_file(p) for p in paths], realtime=True)   # all at once

Audio goes out in frames of ``frame_s`` (paced at playback speed with ``realtime``), then "end"; the
results come back on the same connection while it is sent. Latency of a word: the time from when the
audio it was written after (its ``time_s``) had been sent, to when the first message showing that word
arrived; in real time that is what a user waits beyond the audio itself. ``finish_s``: from "end" to
"done".
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from speech_common.errors import UserError
from speech_llm.server.protocol import PROTOCOL_VERSION, SAMPLE_FORMATS


class ClientError(UserError):
    """The server could not be reached, refused the connection, or ended the session with an error."""


@dataclass
class Audio:
    """Samples to send: ``(N,)`` or ``(N, C)`` int16 or float32 at ``sample_rate``."""

    name: str
    samples: np.ndarray
    sample_rate: int

    @classmethod
    def from_file(cls, path, fmt: str = "s16le") -> Audio:
        try:
            samples, rate = sf.read(str(path), dtype="int16" if fmt == "s16le" else "float32")
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise ClientError(f"cannot read audio file {path}: {e}") from e
        return cls(str(path), samples, rate)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass
class ClientResult:
    name: str
    text: str = ""
    finals: list[dict] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    """Every message received, in order ("ready", "partial", "final", "marker", "done", "error")."""
    latencies_s: list[float] = field(default_factory=list)
    """One per word, see the module docstring."""
    done: dict | None = None
    error: dict | None = None
    close_code: int | None = None
    audio_s: float = 0.0
    wall_s: float = 0.0
    finish_s: float | None = None
    done_at: float | None = None         # monotonic time "done" arrived

    def summary(self) -> dict:
        lat = self.latencies_s
        return {"name": self.name, "text": self.text, "segments": len(self.finals), "audio_s": round(self.audio_s, 3),
                "wall_s": round(self.wall_s, 3), "finish_s": None if self.finish_s is None else round(self.finish_s, 3),
                "words": len(lat), "latency_p50_s": percentile(lat, 50), "latency_p90_s": percentile(lat, 90),
                "latency_max_s": round(max(lat), 3) if lat else None,
                "server_rtf": self.done.get("rtf") if self.done else None, "error": self.error,
                "close_code": self.close_code}


def percentile(values, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if len(values) else None


async def stream_audio(url: str, audio: Audio, *, realtime: bool = False, frame_s: float = 0.1, fmt: str = "s16le",
                       token: str | None = None, options: dict | None = None, start_delay_s: float = 0.0,
                       open_timeout: float = 10.0) -> ClientResult:
    """Send ``audio`` as one session and collect what comes back (see the module docstring)."""
    if fmt not in SAMPLE_FORMATS:
        raise ClientError(f"format must be one of {', '.join(SAMPLE_FORMATS)}, got {fmt!r}")
    if start_delay_s > 0:
        await asyncio.sleep(start_delay_s)
    samples = _as_format(audio.samples, fmt)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    result = ClientResult(audio.name, audio_s=audio.duration_s)
    sent: tuple[list[float], list[float]] = ([], [])   # audio seconds sent so far, monotonic time, per frame
    start = {"type": "start", "version": PROTOCOL_VERSION, "sample_rate": audio.sample_rate, "format": fmt,
             "channels": channels, "label": audio.name[-100:]}
    if token is not None:
        start["token"] = token
    if options:
        start["options"] = options
    t0 = time.monotonic()
    try:
        async with connect(url, max_size=None, open_timeout=open_timeout, compression=None) as ws:
            await ws.send(json.dumps(start))
            receiver = asyncio.create_task(_receive(ws, result, sent))
            end_t = await _send(ws, samples, audio.sample_rate, frame_s, realtime, sent, receiver)
            await receiver
            if result.done is not None and end_t is not None:
                result.finish_s = result.done_at - end_t
    except InvalidStatus as e:
        raise ClientError(f"{url}: the server refused the connection: HTTP {e.response.status_code} "
                          f"{e.response.body.decode(errors='replace').strip()}") from e
    except (OSError, InvalidURI, asyncio.TimeoutError) as e:
        raise ClientError(f"{url}: cannot connect: {e}") from e
    result.wall_s = time.monotonic() - t0
    result.text = " ".join(f["text"] for f in result.finals if f["text"])
    return result


async def _send(ws, samples: np.ndarray, rate: int, frame_s: float, realtime: bool,
                sent: tuple[list[float], list[float]], receiver: asyncio.Task) -> float | None:
    """Frames, then "end"; returns when "end" went out (None: the session ended before)."""
    n = max(1, round(frame_s * rate))
    t0 = time.monotonic()
    try:
        for i in range(0, len(samples), n):
            if receiver.done():        # an error or a close from the server
                return None
            if realtime:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            await ws.send(samples[i:i + n].tobytes())
            sent[0].append(min(len(samples), i + n) / rate)
            sent[1].append(time.monotonic())
        await ws.send(json.dumps({"type": "end"}))
        return time.monotonic()
    except ConnectionClosed:
        return None


async def _receive(ws, result: ClientResult, sent: tuple[list[float], list[float]]) -> None:
    seen: dict[int, int] = {}                 # segment -> words already seen
    try:
        async for raw in ws:
            now = time.monotonic()
            msg = json.loads(raw)
            result.messages.append(msg)
            kind = msg.get("type")
            if kind in ("partial", "final"):
                words = msg["words"]
                for w in words[seen.get(msg["segment"], 0):]:
                    result.latencies_s.append(now - _sent_at(sent, w["time_s"]))
                seen[msg["segment"]] = len(words)
                if kind == "final":
                    result.finals.append(msg)
            elif kind == "done":
                result.done, result.done_at = msg, now
            elif kind == "error":
                result.error = msg
    except ConnectionClosed:
        pass
    result.close_code = ws.close_code


def _sent_at(sent: tuple[list[float], list[float]], audio_s: float) -> float:
    """When the audio up to ``audio_s`` had been sent (the first frame that reached it)."""
    audio, times = sent
    if not audio:
        return time.monotonic()
    return times[min(bisect.bisect_left(audio, audio_s - 1e-6), len(audio) - 1)]


def _as_format(samples: np.ndarray, fmt: str) -> np.ndarray:
    x = np.asarray(samples)
    if fmt == "s16le":
        if x.dtype != np.int16:
            x = np.clip(np.round(x.astype(np.float64) * 32767), -32768, 32767).astype(np.int16)
        return x.astype("<i2", copy=False)
    if x.dtype.kind in "iu":
        x = x.astype(np.float32) / float(2 ** (8 * x.dtype.itemsize - 1))
    return x.astype("<f4", copy=False)


async def run_clients_async(url: str, audios: list[Audio], *, concurrency: int | None = None,
                            stagger_s: float = 0.0, **kw) -> list[ClientResult]:
    """All ``audios`` as concurrent sessions (at most ``concurrency`` at a time); session i starts
    ``i * stagger_s`` after the first."""
    sem = asyncio.Semaphore(concurrency or max(1, len(audios)))

    async def one(i: int, a: Audio) -> ClientResult:
        async with sem:
            return await stream_audio(url, a, start_delay_s=i * stagger_s, **kw)

    return list(await asyncio.gather(*(one(i, a) for i, a in enumerate(audios))))


def run_clients(url: str, audios: list[Audio], **kw) -> list[ClientResult]:
    """:func:`run_clients_async` from synchronous code."""
    return asyncio.run(run_clients_async(url, audios, **kw))


def transcribe_file(url: str, path, fmt: str = "s16le", **kw) -> ClientResult:
    return asyncio.run(stream_audio(url, Audio.from_file(path, fmt), fmt=fmt, **kw))
