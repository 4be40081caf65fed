"""What a recognizer returns, one home for the torch recognizer (:mod:`speech_llm.decoding.recognizer`) and the
onnxruntime one (:mod:`speech_runtime.recognizer`): the written words with their times, the finished segments,
and the stream's result put together from them (:func:`stream_result`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Word:
    """A written word and when: ``audio_s`` = seconds of stream audio read when its last token was written,
    ``wall_s`` = wall-clock seconds since the stream's first audio arrived."""

    word: str
    audio_s: float
    wall_s: float


@dataclass
class SegmentResult:
    """A finished segment: ``[start_s, end_s)`` of stream audio, its text and words (stream times).

    reason: why it ended: ``silence`` (trailing non-speech after text: decoder rule 2, or quiet audio in
        energy mode), ``no_text`` (decoder rule 1: non-speech and nothing written), ``max_length`` (rule 3)
        or ``end`` (of the input).
    truncated: the per-segment token cap was hit before the model finished writing.
    """

    index: int
    start_s: float
    end_s: float
    text: str
    words: list[Word]
    reason: str
    truncated: bool = False


@dataclass
class Result:
    text: str
    committed: str
    partial: str
    words: list[Word]
    finished: bool
    segments: list[SegmentResult] = field(default_factory=list)
    """The finished segments, in order (the open one is in ``committed`` / ``partial``)."""

    @property
    def truncated(self) -> bool:
        """Some segment hit the token cap: text may be missing there (never silently)."""
        return any(s.truncated for s in self.segments)

    @property
    def open_words(self) -> list[Word]:
        """The words of the open segment: those after the finished segments' words."""
        return self.words[sum(len(s.words) for s in self.segments):]


def stream_result(segments: Sequence[SegmentResult], open_parts: Sequence[tuple[list[Word], str]],
                  finished: bool) -> Result:
    """A stream's text so far from its finished ``segments`` and, per open segment, its committed words and the
    word still being written (``partial``): committed words never change; the last open segment's partial wins.

    >>> done = SegmentResult(0, 0.0, 1.0, "hello", [Word("hello", 0.6, 0.7)], "silence")
    >>> r = stream_result([done], [([Word("big", 1.5, 1.6)], "wor")], finished=False)
    >>> r.text, r.committed, r.partial, [w.word for w in r.open_words]
    ('hello big wor', 'hello big', 'wor', ['big'])
    """
    words = [w for seg in segments for w in seg.words]
    texts = [seg.text for seg in segments if seg.text]
    partial = ""
    for seg_words, seg_partial in open_parts:
        words += seg_words
        texts += [" ".join(w.word for w in seg_words)] if seg_words else []
        partial = seg_partial or partial
    committed = " ".join(texts)
    text = (committed + " " + partial).strip()
    return Result(text=text, committed=committed, partial=partial, words=words, finished=finished,
                  segments=list(segments))
