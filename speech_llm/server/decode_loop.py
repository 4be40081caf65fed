"""Continuous batching: ONE decode thread advances every session's stream with ``Recognizer.decode_streams``.

    loop = DecodeLoop(max_batch_size=16, max_wait_s=0.01); loop.start()
    job = Job(rec, sample_rate=48000, on_output=callback)    # callback(messages, error), decode thread
    loop.add(job); loop.put(job, samples); loop.put(job, Marker(7)); loop.put(job, END)
    loop.remove(job)                                         # the client left: its state is dropped
    loop.stop()

The event loop only appends to a job's inbox (:meth:`DecodeLoop.put`, cheap, thread-safe); everything that
touches a :class:`~speech_llm.decoding.recognizer.Stream` -- ``accept_waveform`` (resampling, endpointing, fbank),
``decode_streams``, ``get_result`` -- runs on the decode thread, so no stream is ever used by two threads and
slow decoding never blocks network I/O.

A step: wait until some job has input; then wait up to ``max_wait_s`` (counted from when the oldest waiting
job got its input) for more jobs with input, unless ``max_batch_size`` of them are already waiting; take
the ``max_batch_size`` jobs that have waited longest (fair: oldest first). Each job gives at most
``step_audio_s`` of audio per step and its inbox up to the first marker or end, so a client that sends an
hour as fast as it can is served in slices and never holds the others up for long. The jobs' audio is
accepted, their streams are decoded in ONE ``decode_streams`` call per recognizer (sessions with the same
options share one), and each job's new results are handed to its callback as protocol messages:
``final`` for each newly finished segment, ``partial`` when the open segment's text changed, ``marker``
replies, ``done`` once the input ended and everything is decoded.

The recognizer gives each stream the text it gets decoded alone, whatever the batch and block sizes, so
batching changes only the speed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from speech_llm.decoding.recognizer import Recognizer
from speech_llm.server.protocol import (
    ProtocolError,
    done_message,
    final_message,
    marker_message,
    partial_message,
)

log = logging.getLogger("speech_llm.server")


@dataclass(frozen=True)
class Marker:
    """A client marker: answered once all audio put before it is decoded."""

    id: object


END = object()
"""Inbox item: the client's input has ended."""


class Job:
    """One session's decoding state: its stream, its inbox of input, and what was already sent.

    ``on_output(messages, error)`` is called on the decode thread after each step the job took part in
    (``error``: a :class:`ProtocolError` that ends the session, else None).
    """

    def __init__(self, rec: Recognizer, sample_rate: int,
                 on_output: Callable[[list[dict], ProtocolError | None], None]):
        self.rec = rec
        self.sample_rate = sample_rate
        self.on_output = on_output
        self.stream = rec.create_stream()
        self.inbox: deque = deque()
        self.queued_samples = 0              # input-rate samples in the inbox
        self.ready_since: float | None = None   # when its waiting input arrived (oldest first)
        self.backlog = False                     # input was left over after its last step
        self.closed = False                  # removed: the client is gone
        self.done = False                    # "done" sent or failed: takes no more steps
        self.sent_segments = 0
        self.last_partial: tuple | None = None

    @property
    def queued_s(self) -> float:
        return self.queued_samples / self.sample_rate


@dataclass
class LoopStats:
    """Counters of the decode thread (read by /healthz and the benches)."""

    started: float = field(default_factory=time.monotonic)
    steps: int = 0
    busy_s: float = 0.0            # wall time inside steps (accept + decode + results)
    decode_s: float = 0.0          # of which inside decode_streams
    stepped: int = 0               # sum of batch sizes
    max_batch: int = 0
    audio_s: float = 0.0           # audio accepted (input seconds)

    def snapshot(self) -> dict:
        up = time.monotonic() - self.started
        return {"uptime_s": round(up, 3), "steps": self.steps, "busy_s": round(self.busy_s, 4),
                "decode_s": round(self.decode_s, 4), "stepped": self.stepped,
                "mean_batch": round(self.stepped / max(1, self.steps), 3),
                "max_batch": self.max_batch, "audio_s": round(self.audio_s, 3),
                "busy_fraction": round(self.busy_s / up, 4) if up > 0 else 0.0}


class DecodeLoop:
    """The decode thread (see the module docstring)."""

    def __init__(self, max_batch_size: int = 16, max_wait_s: float = 0.01, step_audio_s: float = 2.0):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.max_batch_size = max_batch_size
        self.max_wait_s = max(0.0, max_wait_s)
        self.step_audio_s = step_audio_s
        self.stats = LoopStats()
        self._cond = threading.Condition()
        self._jobs: set[Job] = set()
        self._stop = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ event-loop side
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="speech-llm-decode", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def add(self, job: Job) -> None:
        with self._cond:
            self._jobs.add(job)

    def put(self, job: Job, item) -> None:
        """Append audio (numpy samples at the job's rate), a :class:`Marker` or :data:`END`."""
        with self._cond:
            if job.closed:
                return
            if isinstance(item, np.ndarray):
                job.queued_samples += len(item)
            job.inbox.append(item)
            if job.ready_since is None:
                job.ready_since = time.monotonic()
            self._cond.notify()

    def remove(self, job: Job) -> None:
        """Forget the job now (its input is dropped; a step it is in finishes without calling back)."""
        with self._cond:
            job.closed = True
            job.inbox.clear()
            job.queued_samples = 0
            self._jobs.discard(job)

    @property
    def num_jobs(self) -> int:
        return len(self._jobs)

    # ------------------------------------------------------------------ decode thread
    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._step(batch)
            except Exception:   # never let one bad step end the thread that serves every session
                log.exception("decode step failed")
                for job, _ in batch:
                    self._fail(job, ProtocolError("internal", "decoding failed on the server"))
            del batch           # while waiting for the next step, hold no finished session's state

    def _next_batch(self) -> list[tuple[Job, list]] | None:
        with self._cond:
            while True:
                if self._stop:
                    return None
                ready = [j for j in self._jobs if j.inbox and not j.done]
                if ready:
                    wait = min(j.ready_since for j in ready) + self.max_wait_s - time.monotonic()
                    if len(ready) >= self.max_batch_size or wait <= 0 or any(j.backlog for j in ready):
                        break
                    self._cond.wait(wait)
                else:
                    self._cond.wait(1.0)
            ready.sort(key=lambda j: j.ready_since)
            return [(j, self._take(j)) for j in ready[:self.max_batch_size]]

    def _take(self, job: Job) -> list:
        """Items for one step: at most ``step_audio_s`` of audio, up to and including the first marker/end."""
        items, budget = [], max(1, round(self.step_audio_s * job.sample_rate))
        while job.inbox and budget > 0:
            item = job.inbox[0]
            if isinstance(item, np.ndarray):
                if len(item) > budget:
                    job.inbox[0] = item[budget:]
                    item = item[:budget]
                else:
                    job.inbox.popleft()
                budget -= len(item)
                job.queued_samples -= len(item)
                items.append(item)
            else:
                job.inbox.popleft()
                items.append(item)
                break
        # input left over (a fast sender): back of the queue, and no waiting for others before its next step
        job.backlog = bool(job.inbox)
        job.ready_since = time.monotonic() if job.inbox else None
        return items

    def _step(self, batch: list[tuple[Job, list]]) -> None:
        t0 = time.perf_counter()
        live = []
        for job, items in batch:
            try:
                for item in items:
                    if isinstance(item, np.ndarray):
                        job.stream.accept_waveform(job.sample_rate, item)
                        self.stats.audio_s += len(item) / job.sample_rate
                    elif item is END:
                        job.stream.input_finished()
                live.append((job, items))
            except ValueError as e:     # bad samples the protocol checks missed
                self._fail(job, ProtocolError("bad_audio", str(e)))
        t1 = time.perf_counter()
        groups: dict[int, list[Job]] = {}
        for job, _ in live:
            groups.setdefault(id(job.rec), []).append(job)
        for jobs in groups.values():
            try:
                jobs[0].rec.decode_streams([j.stream for j in jobs])
            except Exception:
                log.exception("decode_streams failed for %d stream(s)", len(jobs))
                for j in jobs:
                    self._fail(j, ProtocolError("internal", "decoding failed on the server"))
        t2 = time.perf_counter()
        out = [(job, self._messages(job, items)) for job, items in live if not job.done]
        s = self.stats
        s.steps += 1
        s.stepped += len(batch)
        s.max_batch = max(s.max_batch, len(batch))
        s.decode_s += t2 - t1
        s.busy_s += time.perf_counter() - t0
        for job, messages in out:
            self._emit(job, messages, None)

    def _messages(self, job: Job, items: list) -> list[dict]:
        rec, stream = job.rec, job.stream
        r = rec.get_result(stream)
        out = [final_message(seg) for seg in r.segments[job.sent_segments:]]
        job.sent_segments = len(r.segments)
        if stream.open:      # after decode_streams at most one segment is open: the one taking audio
            words = r.open_words
            committed = " ".join(w.word for w in words)
            key = (len(r.segments), committed, r.partial)
            if key != job.last_partial and (committed or r.partial):
                job.last_partial = key
                out.append(partial_message(len(r.segments), stream.open[-1].start_s, committed, r.partial, words,
                                           stream.duration_s))
        out += [marker_message(it.id) for it in items if isinstance(it, Marker)]
        if stream.finished:
            job.done = True
            out.append(done_message(len(r.segments), r.text, stream.duration_s, stream.compute_s, r.truncated))
        return out

    def _fail(self, job: Job, err: ProtocolError) -> None:
        job.done = True
        self._emit(job, [], err)

    def _emit(self, job: Job, messages: list[dict], err: ProtocolError | None) -> None:
        if job.closed:
            return
        try:
            job.on_output(messages, err)
        except Exception:
            log.exception("delivering results failed")
