"""Constructed audio for the endpointing tests: chirp bursts ("speech") between stretches of quiet noise."""

from __future__ import annotations

import numpy as np

from encoders.constants import SAMPLE_RATE
from speech_llm.config import EndpointConfig

FRAME = SAMPLE_RATE // 40       # 25 ms endpointing frame at 16 kHz
EP = EndpointConfig(mode="energy", silence_s=0.8, max_segment_s=3.0, threshold_db=-40.0, preroll_s=0.3)
"""Energy endpointing (the segment ends come from the samples alone: these tests use a random-weight model)."""
# (silence before, speech) in seconds; all multiples of 25 ms so burst edges fall on the frame grid.
LAYOUT = [(1.0, 1.5), (1.2, 1.8), (2.0, 4.5), (1.0, 0.0)]
# What EP must cut LAYOUT into: (start_s, end_s, reason).
EXPECTED = [(0.7, 3.3, "silence"), (3.4, 6.3, "silence"), (7.2, 10.2, "max_length"), (10.2, 12.8, "silence")]


def expected_samples(rate=SAMPLE_RATE) -> list[tuple[int, int, str]]:
    return [(round(s * rate), round(e * rate), r) for s, e, r in EXPECTED]


def bursts(layout=LAYOUT, rate=SAMPLE_RATE, seed=0) -> np.ndarray:
    """Chirp + noise bursts ("speech", about -13 dBFS) between stretches of -70 dBFS noise ("silence")."""
    rng = np.random.default_rng(seed)
    parts = []
    for silence, speech in layout:
        parts.append(3e-4 * rng.standard_normal(round(silence * rate)))
        t = np.arange(round(speech * rate)) / rate
        parts.append(0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.05 * rng.standard_normal(len(t)))
    return np.concatenate(parts).astype(np.float32)


def feed(rec, x: np.ndarray, sizes=(1600,), decode_every: int = 1, tails: list | None = None):
    """Feed ``x`` (16 kHz) to a new stream of ``rec`` in blocks of ``sizes`` (cycled), decoding after every
    ``decode_every``-th block (``tails`` gets the samples each open segment holds back after each decode);
    then finish the input. Returns the finished stream and its result."""
    s = rec.create_stream()
    pos, i = 0, 0
    while pos < len(x):
        n = sizes[i % len(sizes)]
        s.accept_waveform(SAMPLE_RATE, x[pos:pos + n])
        pos, i = pos + n, i + 1
        if i % decode_every == 0:
            rec.decode(s)
            if tails is not None:
                tails.append(sum(g.rules.held for g in s.open if g.rules is not None))
    s.input_finished()
    rec.decode(s)
    assert s.finished and not s.open
    return s, rec.get_result(s)
