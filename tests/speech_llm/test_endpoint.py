"""Endpointing (speech_llm.endpoint): segments from the samples alone, whatever the block sizes."""

import numpy as np
from endpoint_testutil import EP, FRAME, bursts, expected_samples

from encoders.constants import SAMPLE_RATE
from speech_llm.endpoint import Endpointer, frame_levels_db


def segments_of(ep: Endpointer, x: np.ndarray, sizes) -> list[tuple[int, int, str, np.ndarray]]:
    """Run the endpointer over x in blocks of the given sizes; collect (start, end, reason, audio)."""
    events, pos = [], 0
    for n in sizes:
        events += ep.process(x[pos:pos + n])
        pos += n
    events += ep.flush()
    segs, audio = [], []
    for ev in events:
        if ev[0] == "start":
            start, audio = ev[1], []
        elif ev[0] == "audio":
            audio.append(ev[1])
        else:
            assert ev[1] == start + sum(map(len, audio))  # the audio of a segment is contiguous
            segs.append((start, ev[1], ev[2], np.concatenate(audio)))
    return segs


def test_endpointer_cuts_after_silence_and_at_max_length():
    x = bursts()
    segs = segments_of(Endpointer(EP), x, [len(x)])
    assert [s[:3] for s in segs] == expected_samples()
    for start, end, _, audio in segs:
        np.testing.assert_array_equal(audio, x[start:end])  # exactly the session samples, nothing lost


def test_endpointer_does_not_depend_on_block_sizes():
    x = bursts()
    whole = segments_of(Endpointer(EP), x, [len(x)])
    sizes = np.random.default_rng(1).integers(1, 3000, size=len(x) // 1000).tolist()
    assert sum(sizes) >= len(x)
    blocks = segments_of(Endpointer(EP), x, sizes)
    assert [s[:3] for s in blocks] == [s[:3] for s in whole]
    for a, b in zip(blocks, whole):
        np.testing.assert_array_equal(a[3], b[3])


def test_endpointer_input_end_closes_the_open_segment():
    x = bursts([(0.5, 1.0)])[:-7]  # speech to the very end, which is not on the frame grid
    segs = segments_of(Endpointer(EP), x, [len(x)])  # the last partial frame waits for flush
    assert [s[:3] for s in segs] == [(round(0.2 * SAMPLE_RATE), len(x), "end")]
    silent = segments_of(Endpointer(EP), np.zeros(SAMPLE_RATE, np.float32), [SAMPLE_RATE])
    assert silent == []  # no speech, no segment (digital silence is -inf dBFS)


def test_frame_levels_db():
    full_sine = np.sin(2 * np.pi * np.arange(FRAME * 4) / 40).reshape(4, FRAME)
    np.testing.assert_allclose(frame_levels_db(full_sine), 20 * np.log10(np.sqrt(0.5)), atol=1e-6)
    assert frame_levels_db(np.zeros((1, FRAME)))[0] == -np.inf
