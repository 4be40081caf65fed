"""The shared result types and the stream result, and ``decode.nonblank_cap``'s allowance (both recognizers)."""

from __future__ import annotations

import pytest

from speech_common.results import SegmentResult, Word, stream_result
from speech_common.write_caps import nonblank_allowance


def test_stream_result_joins_finished_and_open_segments():
    done = [SegmentResult(0, 0.0, 1.0, "hello there", [Word("hello", 0.4, 0.5), Word("there", 0.9, 1.0)], "silence"),
            SegmentResult(1, 1.0, 2.0, "", [], "no_text", truncated=True)]
    r = stream_result(done, [([Word("big", 2.5, 2.6)], "wor")], finished=False)
    assert (r.text, r.committed, r.partial) == ("hello there big wor", "hello there big", "wor")
    assert [w.word for w in r.words] == ["hello", "there", "big"] and [w.word for w in r.open_words] == ["big"]
    assert r.truncated and not r.finished and r.segments == done
    assert stream_result([], [], finished=True).text == ""
    # an open segment with only a partial word: nothing committed from it
    assert stream_result(done[:1], [([], "wo")], finished=False).committed == "hello there"


@pytest.mark.parametrize("cap,slack,heard,allowed", [
    (0.0, 3, 10.0, None), (1.5, 3, 0.0, 3), (1.5, 3, 2.0, 6), (1.5, 3, 2.1, 7), (1.0, 0, 4.0 + 1e-9, 4),
    (0.5, 1, 3.0, 3)])
def test_nonblank_allowance(cap, slack, heard, allowed):
    assert nonblank_allowance(cap, slack, heard) == allowed
