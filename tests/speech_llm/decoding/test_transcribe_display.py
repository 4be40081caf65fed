"""`speech-llm transcribe`'s display and pacing (no model needed)."""

import io
import time

import numpy as np

from speech_llm.commands.transcribe import _paced, _show
from speech_llm.decoding.display import TranscriptLine
from speech_llm.decoding.recognizer import Result, SegmentResult, Word


def test_transcribe_segments_display_prints_finished_lines_then_the_open_words():
    w = [Word(x, 0.0, 0.0) for x in ["a", "b", "c"]]
    seg = SegmentResult(0, 0.0, 1.0, "a b", w[:2], "silence", truncated=True)
    r = Result(text="a b c d", committed="a b c", partial="d", words=w, finished=False, segments=[seg])
    out = io.StringIO()
    assert _show(TranscriptLine(out, prefix="f: "), r, 0, True) == 1
    assert out.getvalue().splitlines() == ["f: [00:00.0 - 00:01.0] a b [truncated]", "f: c [d]"]


def test_realtime_pacing_gives_each_block_no_sooner_than_the_audio_before_it_played():
    blocks = [(np.zeros(800, np.float32), 16000)] * 4   # 50 ms each
    t0 = time.monotonic()
    times = [time.monotonic() - t0 for _ in _paced(iter(blocks))]
    assert len(times) == 4 and all(t >= 0.05 * i - 0.002 for i, t in enumerate(times))
