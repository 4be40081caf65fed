"""Where the time of one streaming chunk goes, for the 0.5B-shaped LLM (or the mini one) on the CPU.

Usage:
    python bench/profile_chunk.py                        # 0.5B shape, 640 ms chunks, 2 threads, fp32
    python bench/profile_chunk.py --warmup 420 --writes-per-chunk 3   # 4.5 minutes into the stream
    python bench/profile_chunk.py --precision int8 --threads 2
    python bench/profile_chunk.py --model mini --chunks 20

A stream of random audio is decoded chunk by chunk through the Recognizer exactly as in
bench/decode_speed.py (every chunk writes ``--writes-per-chunk`` tokens; <wait>/eos banned). After
``--warmup`` chunks (the context the timed chunks attend to), ``--chunks`` chunks are timed with wall-clock
timers around each part:

  front end     fbank of the new audio (Recognizer.Stream.accept_waveform)
  encoder       the chunked Conformer and the projector (SpeechLLM.stream_audio)
  attention     every decoder layer's self-attention (q/k/v/o projections, rotary, SDPA)
  KV cache      writing the new keys/values into the preallocated cache (speech_llm.lm.kv_cache.BlockLayer.update)
  MLP           every decoder layer's MLP
  LM head       the final norm and the output projection (logits of the kept position)
  mask build    the additive mask columns and the block mask of each forward (masks.column_bias/block_mask)
  rest          everything else inside decode (embedding, greedy bookkeeping, Python)

The table gives milliseconds per chunk and the share of the chunk's total. Timers are nested-aware: a part's
time excludes the parts inside it (the KV cache write is taken out of attention).
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode_speed import PRECISIONS, audio, build_recognizer  # noqa: E402

from encoders.constants import SAMPLE_RATE  # noqa: E402

TIMES: dict[str, float] = collections.defaultdict(float)
_STACK: list[list] = []


@contextmanager
def part(name: str):
    """Time a part; time spent in nested parts is subtracted from the enclosing one."""
    frame = [name, time.perf_counter(), 0.0]
    _STACK.append(frame)
    try:
        yield
    finally:
        _STACK.pop()
        spent = time.perf_counter() - frame[1]
        TIMES[name] += spent - frame[2]
        if _STACK:
            _STACK[-1][2] += spent


def wrap_module(module: torch.nn.Module, name: str) -> None:
    forward = module.forward

    def timed(*args, **kwargs):
        with part(name):
            return forward(*args, **kwargs)

    module.forward = timed


def wrap_function(owner, attr: str, name: str) -> None:
    fn = getattr(owner, attr)

    def timed(*args, **kwargs):
        with part(name):
            return fn(*args, **kwargs)

    setattr(owner, attr, timed)


def instrument(rec) -> None:
    import speech_llm.decoding.recognizer as recognizer
    import speech_llm.lm.group_lm as group_lm
    import speech_llm.lm.kv_cache as kv_cache

    lm = rec.model.glm.lm
    base = lm.model if hasattr(lm, "model") else lm
    for layer in base.layers:
        wrap_module(layer.self_attn, "attention")
        wrap_module(layer.mlp, "MLP")
    wrap_module(base.norm, "LM head")
    wrap_module(lm.get_output_embeddings(), "LM head")
    wrap_function(group_lm, "column_bias", "mask build")
    wrap_function(group_lm, "block_mask", "mask build")
    wrap_function(kv_cache.BlockLayer, "update", "KV cache")
    wrap_function(rec.model, "stream_audio", "encoder")
    wrap_function(recognizer.Stream, "accept_waveform", "front end")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--model", default="0.5b", choices=["mini", "0.5b"])
    ap.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    ap.add_argument("--config", default="conf/mini.yaml", help="encoder/projector/chunk config")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--writes-per-chunk", type=int, default=1,
                    help="tokens each chunk writes (1: the <wait> of a quiet chunk, the common case)")
    ap.add_argument("--warmup", type=int, default=3, help="chunks decoded before the timed ones")
    ap.add_argument("--chunks", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        rec = build_recognizer(args.model, args.config, Path(tmp), None, args.writes_per_chunk,
                               seconds=(args.warmup + args.chunks + 1) * 0.64 + 1, precision=args.precision)
        block = int(round(rec.chunk_s * SAMPLE_RATE))
        x = audio(math.ceil((args.warmup + args.chunks + 1) * rec.chunk_s) + 1, 0)
        stream = rec.create_stream()
        with torch.inference_mode():
            for i in range(args.warmup):
                stream.accept_waveform(SAMPLE_RATE, x[i * block:(i + 1) * block])
                rec.decode(stream)
            instrument(rec)
            TIMES.clear()
            for i in range(args.warmup, args.warmup + args.chunks):
                with part("rest"):
                    stream.accept_waveform(SAMPLE_RATE, x[i * block:(i + 1) * block])
                    rec.decode(stream)
    total = sum(TIMES.values())
    print(f"# {args.model} LLM, {args.precision}, {torch.get_num_threads()} thread(s), {rec.chunk_s * 1e3:.0f} ms "
          f"chunks, {args.writes_per_chunk} token(s) written per chunk, mean of {args.chunks} chunks after "
          f"{args.warmup} ({args.warmup * rec.chunk_s:.0f} s of stream)")
    print("| part | ms per chunk | share |")
    print("|---|---:|---:|")
    order = ["front end", "encoder", "attention", "KV cache", "MLP", "LM head", "mask build", "rest"]
    for name in order:
        ms = TIMES.get(name, 0.0) / args.chunks * 1e3
        print(f"| {name} | {ms:.2f} | {100 * TIMES.get(name, 0.0) / total:.1f} % |")
    print(f"| **total** | {total / args.chunks * 1e3:.2f} | 100 % |")


if __name__ == "__main__":
    main()
