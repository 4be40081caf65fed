"""Cost of streaming a long source through an LLM: group streaming vs re-encoding vs interleaved.

Usage:
    python bench/streaming_cost.py                       # tiny model and ~0.5B Qwen2 shape, 60 s stream
    python bench/streaming_cost.py --models tiny --seconds 30
    python bench/streaming_cost.py --models 0.5b --seconds 60,300 --threads 2 --reencode-every 8
    python bench/streaming_cost.py --help

A source of ``seconds`` of audio arrives as one token per ``token-ms`` (80 ms), read ``read-ms`` (640 ms)
at a time; after each read ``writes-per-read`` target tokens are written one by one (greedy). The token
written last at a read (the ``<wait>`` of the Recognizer) stays pending and is fed at the next read.
Methods:

  (a) group   — GroupStreamingLM session, as the Recognizer runs it: the chunk and the pending token in
                ONE forward (``greedy_write(..., source=chunk)``), then one forward per further token;
                each token forwarded once, group position IDs;
  (a') group-2fwd — the same session, the chunk read in a forward of its own and the pending token fed
                in the next (the decode path before issue #19: one forward more per read);
  (b) reencode — at every read the whole prefix (source so far + target so far) is run again through the
                LLM from an empty cache, then the new target tokens are written, as re-encoding
                systems do;
  (c) interleaved — one KV cache, arrival-order position IDs and a plain causal mask (no re-encoding,
                but source attends to earlier target: the input-attention mismatch); the chunk and the
                pending token in one forward, as (a).

Models have random weights (speed does not depend on them). The table gives total time, the mean time
per read (read + its writes) over the first and last 10 % of the reads, their ratio, and ratios to (a)
measured in the same run. Re-encoding at read i does not depend on earlier reads (it starts from an empty
cache), so ``--reencode-every N`` times it at every N-th read only (and at the last) and interpolates the
reads between linearly: the total is then an estimate, marked "~", of a cost that grows smoothly with i.
"""

from __future__ import annotations

import argparse
import functools
import time

import torch
from transformers import DynamicCache, Qwen2Config, Qwen2ForCausalLM

from speech_llm.lm.group_lm import GroupStreamingLM

MODELS = {
    "tiny": dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2),
    # Qwen2.5-0.5B shape (about 494M parameters with tied embeddings)
    "0.5b": dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
}


def build(name: str) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    cfg = Qwen2Config(max_position_embeddings=32768, attn_implementation="sdpa", **MODELS[name])
    return Qwen2ForCausalLM(cfg).eval()


def run_group(model, source: torch.Tensor, per_read: int, writes: int, fused: bool = True,
              **_) -> list[float | None]:
    """The Recognizer's path: with ``fused`` the chunk and the pending token share one forward, else the chunk
    is read in a forward of its own first (group-2fwd)."""
    glm = GroupStreamingLM(model, phi=0)
    sess = glm.start(1)
    pending = torch.tensor([1])
    times = []
    for start in range(0, source.size(1), per_read):
        t0 = time.perf_counter()
        chunk = source[:, start:start + per_read]
        if not fused:
            sess.read(chunk)
        pending = sess.greedy_write(pending, stop_ids=[], max_tokens=writes,
                                    source=chunk if fused else None).pending
        times.append(time.perf_counter() - t0)
    return times


def run_reencode(model, source: torch.Tensor, per_read: int, writes: int, every: int = 1) -> list[float | None]:
    """Times of the reads that were measured (every ``every``-th and the last); None for the others."""
    glm = GroupStreamingLM(model, phi=0)
    n_reads = -(-source.size(1) // per_read)
    written: list[int] = []
    pending = torch.tensor([1])
    times: list[float | None] = []
    for i, start in enumerate(range(0, source.size(1), per_read)):
        if i % every and i != n_reads - 1:   # not measured: the prefix grows as it would (ids do not matter)
            written += [int(pending)] + [1] * (writes - 1)
            times.append(None)
            continue
        t0 = time.perf_counter()
        sess = glm.start(1)
        sess.read(source[:, :start + per_read])
        if written:
            sess.write(torch.tensor([written]))  # the whole target prefix, again
        res = sess.greedy_write(pending, stop_ids=[], max_tokens=writes)
        written += [int(pending)] + res.tokens[0][:-1]
        pending = res.pending
        times.append(time.perf_counter() - t0)
    return times


@torch.inference_mode()
def run_interleaved(model, source: torch.Tensor, per_read: int, writes: int, **_) -> list[float | None]:
    cache = DynamicCache(config=model.config)
    emb = model.get_input_embeddings()
    pos = 0
    pending = torch.tensor([[1]])
    times = []
    for start in range(0, source.size(1), per_read):
        t0 = time.perf_counter()
        block = torch.cat([source[:, start:start + per_read], emb(pending)], dim=1)  # chunk + pending token
        for _ in range(writes):
            ids = torch.arange(pos, pos + block.size(1)).unsqueeze(0)
            out = model(inputs_embeds=block, position_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
            pos += block.size(1)
            pending = out.logits[:, -1:].argmax(-1)
            block = emb(pending)
        times.append(time.perf_counter() - t0)
    return times


METHODS = {"group": run_group, "group-2fwd": functools.partial(run_group, fused=False), "reencode": run_reencode,
           "interleaved": run_interleaved}


def fill_gaps(times: list[float | None]) -> list[float]:
    """Linear interpolation over the reads that were not measured (None) between measured ones."""
    known = [i for i, t in enumerate(times) if t is not None]
    out = list(times)
    for a, b in zip(known, known[1:]):
        for i in range(a + 1, b):
            out[i] = times[a] + (times[b] - times[a]) * (i - a) / (b - a)
    return out


def window_means(times: list[float]) -> tuple[float, float]:
    """Mean time per read over the first and the last 10 % of the reads (at least one read each)."""
    n = max(1, len(times) // 10)
    return sum(times[:n]) / n, sum(times[-n:]) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tiny,0.5b", help="comma list of: " + ", ".join(MODELS))
    ap.add_argument("--methods", default="group,group-2fwd,reencode,interleaved",
                    help="comma list of: " + ", ".join(METHODS) + " (group first: the others are compared to it)")
    ap.add_argument("--seconds", default="60", help="length(s) of the streamed source, comma list (e.g. 60,300)")
    ap.add_argument("--token-ms", type=float, default=80.0, help="audio per source token")
    ap.add_argument("--read-ms", type=float, default=640.0, help="audio per read")
    ap.add_argument("--writes-per-read", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--reencode-every", type=int, default=1,
                    help="time re-encoding at every N-th read only, interpolating between (1 = every read)")
    args = ap.parse_args()
    if args.reencode_every < 1:
        ap.error("--reencode-every must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)

    per_read = int(round(args.read_ms / args.token_ms))
    lengths = [float(x) for x in args.seconds.split(",")]
    header = ("| model | stream s | method | total s | RTF | ms/read first 10% | ms/read last 10% | last/first | "
              "total vs group |")
    print(f"# {per_read} source tokens per read ({args.token_ms:g} ms each), {args.writes_per_read} target tokens "
          f"per read, {torch.get_num_threads()} threads; re-encoding timed at every {args.reencode_every}. read")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for name in args.models.split(","):
        model = build(name)
        for seconds in lengths:
            n_src = int(round(seconds * 1000 / args.token_ms))
            source = torch.randn(1, n_src, model.config.hidden_size, generator=torch.Generator().manual_seed(0)) * 0.02
            base = None
            for method in args.methods.split(","):
                with torch.inference_mode():
                    measured = METHODS[method](model, source, per_read, args.writes_per_read,
                                               every=args.reencode_every)
                times = fill_gaps(measured)
                est = "~" if None in measured else ""
                total = sum(times)
                base = total if method == "group" else base
                first, last = window_means(times)
                ratio = f"{est}{total / base:.2f}x" if base else "n/a"
                print(f"| {name} | {seconds:g} | {method} | {est}{total:.2f} | {est}{total / seconds:.3f} | "
                      f"{first * 1e3:.1f} | {last * 1e3:.1f} | {last / first:.2f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
