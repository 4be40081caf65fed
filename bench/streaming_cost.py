"""Cost of streaming a long source through an LLM: group streaming vs re-encoding vs interleaved.

Usage:
    python bench/streaming_cost.py                       # tiny model and ~0.5B Qwen2 shape, 60 s stream
    python bench/streaming_cost.py --models tiny --seconds 30
    python bench/streaming_cost.py --help

A source of ``seconds`` of audio arrives as one token per ``token-ms`` (80 ms), read ``read-ms`` (640 ms)
at a time; after each read ``writes-per-read`` target tokens are written one by one (greedy). Methods:

  (a) group   — GroupStreamingLM session: each token forwarded once, group position IDs;
  (b) reencode — at every read the whole prefix (source so far + target so far) is run again through the
                 LLM from an empty cache, then the new target tokens are written, as re-encoding
                 systems do;
  (c) interleaved — one KV cache, arrival-order position IDs and a plain causal mask (no re-encoding,
                 but source attends to earlier target: the input-attention mismatch).

Models have random weights (speed does not depend on them). The table gives total time, the mean time
per read (read + its writes) over the first and last 5 reads, and ratios to (a) measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import DynamicCache, Qwen2Config, Qwen2ForCausalLM

from speech_llm.group_lm import GroupStreamingLM

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


def run_group(model, source: torch.Tensor, per_read: int, writes: int) -> list[float]:
    glm = GroupStreamingLM(model, phi=0)
    sess = glm.start(1)
    pending = torch.tensor([1])
    times = []
    for start in range(0, source.size(1), per_read):
        t0 = time.perf_counter()
        sess.read(source[:, start:start + per_read])
        pending = sess.greedy_write(pending, stop_ids=[], max_tokens=writes).pending
        times.append(time.perf_counter() - t0)
    return times


def run_reencode(model, source: torch.Tensor, per_read: int, writes: int) -> list[float]:
    glm = GroupStreamingLM(model, phi=0)
    written: list[int] = []
    pending = torch.tensor([1])
    times = []
    for start in range(0, source.size(1), per_read):
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
def run_interleaved(model, source: torch.Tensor, per_read: int, writes: int) -> list[float]:
    cache = DynamicCache(config=model.config)
    emb = model.get_input_embeddings()
    pos = 0
    pending = torch.tensor([[1]])
    times = []
    for start in range(0, source.size(1), per_read):
        t0 = time.perf_counter()
        block = source[:, start:start + per_read]
        ids = torch.arange(pos, pos + block.size(1)).unsqueeze(0)
        model(inputs_embeds=block, position_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        pos += block.size(1)
        for _ in range(writes):
            out = model(inputs_embeds=emb(pending), position_ids=torch.tensor([[pos]]), cache=cache,
                        use_cache=True)
            pos += 1
            pending = out.logits[:, -1:].argmax(-1)
        times.append(time.perf_counter() - t0)
    return times


METHODS = {"group": run_group, "reencode": run_reencode, "interleaved": run_interleaved}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tiny,0.5b", help="comma list of: " + ", ".join(MODELS))
    ap.add_argument("--methods", default="group,reencode,interleaved")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the streamed source")
    ap.add_argument("--token-ms", type=float, default=80.0, help="audio per source token")
    ap.add_argument("--read-ms", type=float, default=640.0, help="audio per read")
    ap.add_argument("--writes-per-read", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    n_src = int(round(args.seconds * 1000 / args.token_ms))
    per_read = int(round(args.read_ms / args.token_ms))
    print(f"# {args.seconds:g} s stream: {n_src} source tokens, {per_read} per read, "
          f"{args.writes_per_read} target tokens per read, {torch.get_num_threads()} threads")
    header = ("| model | method | total s | RTF | ms/read first 5 | ms/read last 5 | last/first | "
              "total vs group |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for name in args.models.split(","):
        model = build(name)
        source = torch.randn(1, n_src, model.config.hidden_size) * 0.02
        base = None
        for method in args.methods.split(","):
            with torch.inference_mode():
                times = METHODS[method](model, source, per_read, args.writes_per_read)
            total = sum(times)
            base = total if method == "group" else base
            first, last = sum(times[:5]) / 5 * 1e3, sum(times[-5:]) / 5 * 1e3
            ratio = f"{total / base:.2f}x" if base else "n/a"
            rtf = total / args.seconds
            print(f"| {name} | {method} | {total:.2f} | {rtf:.3f} | {first:.1f} | {last:.1f} | "
                  f"{last / first:.2f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
