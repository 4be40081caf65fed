"""The shared display pieces: a finished segment's line and the open segment's words."""

from speech_llm.decoding.display import format_time, segment_line
from speech_llm.decoding.recognizer import Result, SegmentResult, Word


def test_segment_line_times_text_and_truncation():
    seg = SegmentResult(index=0, start_s=61.5, end_s=3725.0, text="hello world", words=[], reason="silence")
    assert segment_line(seg) == "[01:01.5 - 1:02:05.0] hello world"
    assert format_time(61.5) == "01:01.5"
    seg.truncated = True
    assert segment_line(seg) == "[01:01.5 - 1:02:05.0] hello world [truncated]"


def test_open_words_are_those_after_the_finished_segments():
    w = [Word(x, i * 0.5, 0.0) for i, x in enumerate(["a", "b", "c", "d"])]
    done = [SegmentResult(0, 0.0, 1.0, "a b", w[:2], "silence"), SegmentResult(1, 1.0, 1.5, "", [], "silence")]
    r = Result(text="a b c d e", committed="a b c d", partial="e", words=w, finished=False, segments=done)
    assert [x.word for x in r.open_words] == ["c", "d"]
    r.segments = []
    assert r.open_words == w

