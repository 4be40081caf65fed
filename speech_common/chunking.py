"""The streaming chunk in its one unit (milliseconds) -> encoder frames: the one home of that arithmetic, for the
torch side (:mod:`speech_llm.model.build`, :class:`speech_llm.model.speech_model.SpeechLLM`) and the onnxruntime
side (:mod:`speech_runtime.recognizer`)."""

from __future__ import annotations


def chunk_frames_of(chunk_ms: float, frame_ms: float, stack: int) -> int:
    """Encoder frames in a chunk of ``chunk_ms`` with encoder frames of ``frame_ms``. Raises ValueError unless the
    chunk is a positive whole number of LLM tokens (``stack`` encoder frames each).

    >>> chunk_frames_of(640, 40.0, 4), chunk_frames_of(640, 20.0, 8)
    (16, 32)
    """
    frames = chunk_ms / frame_ms
    if frames < 1 or abs(frames - round(frames)) > 1e-9 or round(frames) % stack:
        raise ValueError(f"a chunk of {chunk_ms:g} ms must be a positive multiple of {frame_ms * stack:g} ms "
                         f"(one LLM input token: {stack} encoder frames of {frame_ms:g} ms)")
    return int(round(frames))
