"""Endpointing (speech_common.endpoint): segments from the samples alone, whatever the block sizes."""

import numpy as np
from endpoint_testutil import EP, FRAME, bursts, expected_samples

from encoders.constants import SAMPLE_RATE
from speech_common.endpoint import Endpointer, frame_levels_db


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
    segs = segments_of(Endpointer(EP, SAMPLE_RATE), x, [len(x)])
    assert [s[:3] for s in segs] == expected_samples()
    for start, end, _, audio in segs:
        np.testing.assert_array_equal(audio, x[start:end])  # exactly the session samples, nothing lost


def test_endpointer_does_not_depend_on_block_sizes():
    x = bursts()
    whole = segments_of(Endpointer(EP, SAMPLE_RATE), x, [len(x)])
    sizes = np.random.default_rng(1).integers(1, 3000, size=len(x) // 1000).tolist()
    assert sum(sizes) >= len(x)
    blocks = segments_of(Endpointer(EP, SAMPLE_RATE), x, sizes)
    assert [s[:3] for s in blocks] == [s[:3] for s in whole]
    for a, b in zip(blocks, whole):
        np.testing.assert_array_equal(a[3], b[3])


def test_endpointer_input_end_closes_the_open_segment():
    x = bursts([(0.5, 1.0)])[:-7]  # speech to the very end, which is not on the frame grid
    segs = segments_of(Endpointer(EP, SAMPLE_RATE), x, [len(x)])  # the last partial frame waits for flush
    assert [s[:3] for s in segs] == [(round(0.2 * SAMPLE_RATE), len(x), "end")]
    silent = segments_of(Endpointer(EP, SAMPLE_RATE), np.zeros(SAMPLE_RATE, np.float32), [SAMPLE_RATE])
    assert silent == []  # no speech, no segment (digital silence is -inf dBFS)


def test_frame_levels_db():
    full_sine = np.sin(2 * np.pi * np.arange(FRAME * 4) / 40).reshape(4, FRAME)
    np.testing.assert_allclose(frame_levels_db(full_sine), 20 * np.log10(np.sqrt(0.5)), atol=1e-6)
    assert frame_levels_db(np.zeros((1, FRAME)))[0] == -np.inf


def test_gate_without_ends_only_opens_segments_and_restarts_on_a_fresh_grid():
    """ends=False (decoder endpointing): the first loud frame opens a segment with its pre-roll, quiet audio
    inside it ends nothing, only flush does; restart(i) forgets everything and examines from sample i on."""
    x = bursts()
    first = round(1.0 * SAMPLE_RATE)                   # LAYOUT: the first burst starts at 1.0 s
    pre = round(EP.preroll_s * SAMPLE_RATE)
    for sizes in ([len(x)], np.random.default_rng(2).integers(1, 5000, len(x) // 500).tolist()):
        segs = segments_of(Endpointer(EP, SAMPLE_RATE, ends=False), x, sizes)
        assert [s[:3] for s in segs] == [(first - pre, len(x), "end")]
        np.testing.assert_array_equal(segs[0][3], x[first - pre:])
    ep = Endpointer(EP, SAMPLE_RATE, ends=False)
    assert ep.process(x[:round(2.0 * SAMPLE_RATE)])[0] == ("start", first - pre)
    restart = round(2.7 * SAMPLE_RATE) + 7             # inside the silence after the first burst, off the grid
    ep.restart(restart)
    events = ep.process(x[restart:]) + ep.flush()
    # the second burst starts at 3.7 s, inside the frame of the grid from `restart` that holds it (that frame
    # is loud); the segment starts one pre-roll before that frame
    second = round(3.7 * SAMPLE_RATE)
    opened = restart + (second - restart) // FRAME * FRAME - pre
    assert opened != second - pre
    assert events[0] == ("start", opened) and events[-1] == ("end", len(x), "end")
    np.testing.assert_array_equal(np.concatenate([e[1] for e in events if e[0] == "audio"]), x[opened:])
    ep.restart(restart)
    assert ep.process(np.zeros(SAMPLE_RATE, np.float32)) == [] and ep.flush() == []   # quiet: nothing opens
