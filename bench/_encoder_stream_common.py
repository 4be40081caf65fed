"""The measurement that bench/encoder_stream.py (Conformer) and bench/whisper_encoder_stream.py (Whisper)
share: cached chunk-by-chunk ``streaming_forward`` vs re-encoding the whole prefix with ``forward`` at each
chunk, timed per chunk, and the table rows. Not a bench itself: each bench builds its encoder, then calls
:func:`header` and :func:`compare_lengths`.
"""

from __future__ import annotations

import time

import torch

from encoders.constants import FRAME_SHIFT_MS

COSTS = ("RTF", "ms / audio s")  # the cost column: compute time / audio duration, or that x 1000
_COST_WIDTH = {"RTF": 6, "ms / audio s": 12}


def timed(fn, repeats: int):
    """(min seconds over ``repeats`` calls, last result): the minimum is the least disturbed by other load."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def chunk_ends(model, num_feats: int, chunk: int) -> list[int]:
    """Feature count at which each whole chunk of encoder frames becomes computable."""
    stride = model.embed.stride
    first = stride * (chunk - 1) + model.embed.receptive_field
    return list(range(first, num_feats + 1, stride * chunk))


def run_stream(model, feats: torch.Tensor, chunk: int, left: int, repeats: int) -> tuple[list[float], torch.Tensor]:
    """Seconds of each streaming_forward call (one per chunk of new features of feats (1, T, F)), and the
    frames (1, T', D)."""
    states = model.init_states(1, chunk, left)
    times, outs, start = [], [], 0
    for end in chunk_ends(model, feats.size(1), chunk):
        block = feats[:, start:end]
        seconds, (out, new_states) = timed(lambda b=block, s=states: model.streaming_forward(b, s), repeats)
        states = new_states
        times.append(seconds)
        outs.append(out)
        start = end
    return times, torch.cat(outs, dim=1)


def run_reencode(model, feats: torch.Tensor, chunk: int, left: int, repeats: int) -> tuple[list[float], torch.Tensor]:
    """Seconds of a full masked forward over the prefix of feats (1, T, F) available when each chunk completes,
    and the frames (1, T', D) each one added."""
    times, outs = [], []
    for k, end in enumerate(chunk_ends(model, feats.size(1), chunk)):
        prefix, lens = feats[:, :end], torch.tensor([end])
        seconds, (out, _) = timed(lambda p=prefix, n=lens: model(p, n, chunk, left), repeats)
        times.append(seconds)
        outs.append(out[:, k * chunk:(k + 1) * chunk])
    return times, torch.cat(outs, dim=1)


def header(cost: str = "RTF", lead: str = "") -> str:
    """The table header; ``lead`` names leading columns the caller prints before each row (e.g. threads)."""
    return (f"{lead}{'audio s':>7} {'mode':>9} {'chunks':>6} {'mean ms/chunk':>13} {'first ms':>8} "
            f"{'last ms':>8} {cost:>{_COST_WIDTH[cost]}} {'x stream':>8} {'max diff':>9}")


def compare_lengths(model, seconds_list: list[float], chunk: int, left: int, repeats: int, cost: str = "RTF",
                    lead: str = "") -> None:
    """Warm up on 2 s, then for each audio length of random features print a stream row and a re-encode row
    (``lead`` first): chunks, mean/first/last ms per chunk, cost, re-encode time over stream time, and the
    max abs difference of their frames (they must be equal)."""
    frames_per_s = 1000.0 / FRAME_SHIFT_MS
    chunk_ms = chunk * model.frame_shift_s * 1000
    warm = torch.randn(1, int(2 * frames_per_s), model.input_dim)
    run_stream(model, warm, chunk, left, 1)
    run_reencode(model, warm, chunk, left, 1)
    for seconds in seconds_list:
        feats = torch.randn(1, int(seconds * frames_per_s), model.input_dim)
        s_times, s_out = run_stream(model, feats, chunk, left, repeats)
        r_times, r_out = run_reencode(model, feats, chunk, left, repeats)
        if not s_times:
            print(f"{lead}{seconds:7.1f}: shorter than one chunk")
            continue
        diff = float((s_out - r_out).abs().max())
        audio_s = len(s_times) * chunk_ms / 1000
        for mode, times in (("stream", s_times), ("re-encode", r_times)):
            rtf = sum(times) / audio_s
            cost_text = f"{rtf:6.3f}" if cost == "RTF" else f"{1000 * rtf:12.1f}"
            print(f"{lead}{seconds:7.1f} {mode:>9} {len(times):6d} {1000 * sum(times) / len(times):13.1f} "
                  f"{1000 * times[0]:8.1f} {1000 * times[-1]:8.1f} {cost_text} "
                  f"{sum(times) / sum(s_times):8.2f} {diff:9.1e}")
