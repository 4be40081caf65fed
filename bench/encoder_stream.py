"""Streaming Conformer speed: cached chunk-by-chunk encoding vs re-encoding the whole prefix at each chunk.

Usage:
    python bench/encoder_stream.py                       # ~30M-parameter config, 4/8/16 s, 640 ms chunks
    python bench/encoder_stream.py --seconds 10 --chunk-size 8 --left-chunks 4
    python bench/encoder_stream.py --d-model 144 --num-layers 8 --ffn-dim 576   # a smaller model

For each audio length, both ways produce the same encoder frames (the max abs difference is printed):
- stream:   ``streaming_forward`` on each new chunk of features; every frame is encoded once;
- re-encode: ``forward`` over all features received so far (same chunk mask), keeping the new chunk.
Per-chunk time is wall-clock on this machine's CPU (one torch thread unless --threads), the minimum of ``--repeats``
runs of the same step; RTF = compute time / audio
duration; "x stream" is the re-encode time over the streaming time of the same run.
"""

from __future__ import annotations

import argparse
import time

import torch

from encoders.conformer import ConformerEncoder
from encoders.constants import FRAME_SHIFT_MS, NUM_MEL_BINS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--seconds", type=float, nargs="+", default=[4.0, 8.0, 16.0], help="audio lengths")
    p.add_argument("--chunk-size", type=int, default=16, help="chunk in encoder frames (16 = 640 ms at x4)")
    p.add_argument("--left-chunks", type=int, default=-1, help="left context in chunks, -1 unlimited")
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--num-layers", type=int, default=12)
    p.add_argument("--num-heads", type=int, default=4)
    p.add_argument("--ffn-dim", type=int, default=2048)
    p.add_argument("--subsampling", type=int, default=4, choices=[4, 6, 8])
    p.add_argument("--repeats", type=int, default=3, help="time each step this often, keep the minimum")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: stable timings on a shared machine; 0 = torch's default)")
    return p.parse_args(argv)


def timed(fn, repeats: int):
    """(min seconds over ``repeats`` calls, last result): the minimum is the least disturbed by other load."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def chunk_ends(model: ConformerEncoder, num_feats: int, chunk: int) -> list[int]:
    """Feature count at which each whole chunk of encoder frames becomes computable."""
    stride = model.subsampling_rate
    first = stride * (chunk - 1) + model.embed.receptive_field
    return list(range(first, num_feats + 1, stride * chunk))


def run_stream(model: ConformerEncoder, feats: torch.Tensor, chunk: int, left: int, repeats: int
               ) -> tuple[list[float], torch.Tensor]:
    """Seconds of each streaming_forward call (one per chunk of new features), and the frames."""
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


def run_reencode(model: ConformerEncoder, feats: torch.Tensor, chunk: int, left: int, repeats: int
                 ) -> tuple[list[float], torch.Tensor]:
    """Seconds of a full masked forward over the prefix available when each chunk completes."""
    times, outs = [], []
    for k, end in enumerate(chunk_ends(model, feats.size(1), chunk)):
        prefix, lens = feats[:, :end], torch.tensor([end])
        seconds, (out, _) = timed(lambda p=prefix, n=lens: model(p, n, chunk, left), repeats)
        times.append(seconds)
        outs.append(out[:, k * chunk:(k + 1) * chunk])
    return times, torch.cat(outs, dim=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ConformerEncoder(NUM_MEL_BINS, args.d_model, args.num_layers, args.num_heads,
                             subsampling=args.subsampling, ffn_dim=args.ffn_dim).eval()
    params = sum(p.numel() for p in model.parameters())
    chunk_ms = args.chunk_size * model.frame_shift_s * 1000
    print(f"ConformerEncoder d_model={args.d_model} layers={args.num_layers} heads={args.num_heads} "
          f"ffn={args.ffn_dim} x{args.subsampling}: {params / 1e6:.1f}M parameters; "
          f"chunk {args.chunk_size} frames = {chunk_ms:.0f} ms, left_chunks={args.left_chunks}, "
          f"torch threads={torch.get_num_threads()}")
    frames_per_s = 1000.0 / FRAME_SHIFT_MS
    header = (f"{'audio s':>7} {'mode':>9} {'chunks':>6} {'mean ms/chunk':>13} {'first ms':>8} "
              f"{'last ms':>8} {'RTF':>6} {'x stream':>8} {'max diff':>9}")
    print(header)
    print("-" * len(header))
    with torch.inference_mode():
        warm = torch.randn(1, int(2 * frames_per_s), NUM_MEL_BINS)
        run_stream(model, warm, args.chunk_size, args.left_chunks, 1)
        run_reencode(model, warm, args.chunk_size, args.left_chunks, 1)
        for seconds in args.seconds:
            feats = torch.randn(1, int(seconds * frames_per_s), NUM_MEL_BINS)
            s_times, s_out = run_stream(model, feats, args.chunk_size, args.left_chunks, args.repeats)
            r_times, r_out = run_reencode(model, feats, args.chunk_size, args.left_chunks, args.repeats)
            if not s_times:
                print(f"{seconds:7.1f}: shorter than one chunk")
                continue
            diff = float((s_out - r_out).abs().max())
            audio_s = len(s_times) * chunk_ms / 1000
            for mode, times in (("stream", s_times), ("re-encode", r_times)):
                ratio = sum(times) / sum(s_times)
                print(f"{seconds:7.1f} {mode:>9} {len(times):6d} {1000 * sum(times) / len(times):13.1f} "
                      f"{1000 * times[0]:8.1f} {1000 * times[-1]:8.1f} {sum(times) / audio_s:6.3f} "
                      f"{ratio:8.2f} {diff:9.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
