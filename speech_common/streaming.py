"""The feed-decode-finish loop of one stream, for any recognizer with the ``create_stream`` / ``decode`` API: the
torch one (:mod:`speech_llm.decoding.recognizer`) and the onnxruntime one (:mod:`speech_runtime`). ``decode``,
``transcribe`` (``--realtime`` too), ``live`` and the tests all run a stream through it."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def run_stream(rec, blocks: Iterable[tuple[object, int]], on_decode: Callable[[object], None] | None = None):
    """Feed ``(samples, rate)`` blocks to a new stream of ``rec`` with a decode after each (in batch mode the
    recognizer decodes each segment once it is complete) and ``on_decode(stream)`` after that decode; when
    ``blocks`` ends, finish the input and decode the rest. Returns the finished stream (its text:
    ``rec.get_result(stream)``)."""
    s = rec.create_stream()
    for samples, rate in blocks:
        s.accept_waveform(rate, samples)
        rec.decode(s)
        if on_decode is not None:
            on_decode(s)
    s.input_finished()
    rec.decode(s)
    return s
