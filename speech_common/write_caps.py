"""How many tokens a segment may write: ``decode.nonblank_cap``'s rule, one home for the torch recognizer
(:mod:`speech_llm.decoding.recognizer`) and the onnxruntime one (:mod:`speech_runtime.recognizer`)."""

from __future__ import annotations

import math


def nonblank_allowance(cap: float, slack: int, heard: float) -> int | None:
    """The tokens a segment may have written after audio whose non-blank CTC mass sums to ``heard`` (about the
    text tokens the projector's CTC head hears in it): ``ceil(cap * heard) + slack``, or None when ``cap <= 0``
    (no limit). A small tolerance keeps a mass that is a whole number up to rounding on that number.

    >>> nonblank_allowance(1.5, 3, 4.0), nonblank_allowance(1.5, 3, 4.0000001), nonblank_allowance(0.0, 3, 9.0)
    (9, 9, None)
    """
    if cap <= 0:
        return None
    return math.ceil(cap * heard - 1e-6) + slack
