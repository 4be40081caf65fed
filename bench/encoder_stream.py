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
duration; "x stream" is the re-encode time over the streaming time of the same run. The measurement is
bench/_encoder_stream_common.py, shared with bench/whisper_encoder_stream.py.
"""

from __future__ import annotations

import argparse

import torch
from _encoder_stream_common import compare_lengths, header

from encoders.conformer import ConformerEncoder
from encoders.constants import NUM_MEL_BINS


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
    print(header("RTF"))
    print("-" * len(header("RTF")))
    with torch.inference_mode():
        compare_lengths(model, args.seconds, args.chunk_size, args.left_chunks, args.repeats, "RTF")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
