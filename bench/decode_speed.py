"""Decoding speed of the full Recognizer (fbank -> encoder -> projector -> LLM): RTF and per-chunk latency.

Usage:
    python bench/decode_speed.py                   # mini and ~0.5B Qwen2 shapes (~5-10 min on 2 cores)
    python bench/decode_speed.py --quick           # ~1 minute smoke run (short audio)
    python bench/decode_speed.py --models mini --exp-dir exp/mini     # a trained mini model instead
    python bench/decode_speed.py --models 0.5b --seconds-0.5b 20 --streams 8 --threads 2
    python bench/decode_speed.py --models 0.5b --precisions fp32,bf16,int8 --threads 2   # CPU options
    python bench/decode_speed.py --device cuda --models 0.5b --streams 1,8,64 --precisions bf16  # a GPU

Models (random weights unless --exp-dir; speed does not depend on the weights):
  mini  -- conf/mini.yaml's encoder and projector + a 4-layer, 256-hidden Qwen2 (the recipe's tiny LLM);
  0.5b  -- the same encoder/projector + a Qwen2.5-0.5B-shaped LLM (hidden 896, 24 layers, 14 heads,
           2 KV heads, intermediate 4864), vocabulary cut to a tokenizer trained here.

Random weights would write arbitrary text, so the LM head is hooked to never choose ``<wait>`` or eos:
every chunk then writes exactly ``--writes-per-chunk`` tokens (the per-read cap) and the final write the
same number (the total cap), so all methods do the same work. Audio arrives one chunk at a time, as fast as
it is processed (not paced in real time). Methods:

  group        -- the Recognizer: every token forwarded once (KV cache, group positions), one stream;
  reencode     -- the same Recognizer, but at every chunk the LLM re-runs the whole source so far and the
                  target so far from an empty cache (no KV reuse), as re-encoding systems do;
  sequential   -- ``--streams`` concurrent streams, each chunk decoded stream after stream (``decode``);
  batched      -- the same streams advanced together by one ``decode_streams`` call per chunk.

``--precisions`` repeats the rows for each inference option of ``build.prepare_for_inference``: fp32, bf16
(the LLM's weights in bfloat16) and int8 (torchao dynamic int8 linear layers; CPU). ``--streams`` takes a
comma list: the sequential row is measured for the first count only (on a GPU it is the slow baseline).

Per-chunk latency runs from the chunk's arrival (fed with ``accept_waveform``, fbank included) to the end
of the writes after it; for concurrent streams from the moment all streams' chunks arrived, so a stream
served later in a sequential round waits for the ones before it. RTF = compute seconds / audio seconds of
all streams. "vs" is the RTF ratio to the reference row named there, measured in the same run.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from encoders.constants import SAMPLE_RATE
from encoders.frontend import num_frames
from speech_llm.config import DecodeConfig, EndpointConfig, load_config
from speech_llm.decoding.recognizer import Recognizer
from speech_llm.model.build import build_speech_llm, new_cmvn
from speech_llm.model.tiny_llm import train_tokenizer

LLMS = {
    # the tiny LLM recipes/mini builds (run.sh: --llm-hidden 256 --llm-layers 4)
    "mini": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2),
    # Qwen2.5-0.5B shape (vocabulary cut to the local tokenizer)
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, tie_word_embeddings=True),
}
TEXTS = ["the quick brown fox jumps over the lazy dog", "turn on the light in the kitchen please",
         "one two three four five six seven eight nine ten", "alice and bob meet at noon"] * 10


class ReencodingRecognizer(Recognizer):
    """Baseline: the same policy, but before each write the LLM session is rebuilt from scratch over all
    source read so far and all target written so far (no KV reuse)."""

    def _run_steps(self, plans, segs) -> None:   # the open segments of this round (one per stream here)
        bos = self.model.tokens.bos_id
        for g in segs:
            for st in plans[id(g)]:
                prev = getattr(g, "source_so_far", st.source[:0])
                g.source_so_far = torch.cat([prev, st.source])
                g.tokens_read += st.n_audio
                g.stream.tokens_read += st.n_audio
                if st.write is None:
                    continue
                sess = self.model.glm.start(1)
                if prev.size(0):
                    sess.read(prev.unsqueeze(0))
                trace = g.stream.trace   # every generated token; the last one is pending (not fed yet)
                if trace:
                    sess.write(torch.tensor([[bos] + [t for t, _ in trace[:-1]]], device=sess.device))
                # the new chunk and the pending token in one forward, as the Recognizer does
                self._read_and_write(sess, [g], [st], st.source.unsqueeze(0), torch.tensor([st.source.size(0)]))
                g.session = sess
                g.finished = st.write == "final"


PRECISIONS = {"fp32": ("float32", "none"), "bf16": ("bfloat16", "none"), "int8": ("float32", "int8")}


def build_recognizer(name: str, cfg_path: str, tok_dir: Path, exp_dir: str | None, writes: int,
                     seconds: float, precision: str = "fp32", device: str = "cpu") -> Recognizer:
    """A Recognizer whose LLM never writes <wait>/eos, with caps that make every write ``writes`` tokens,
    prepared for inference as ``precision`` (:data:`PRECISIONS`) on ``device``."""
    if exp_dir:
        from speech_llm.model.checkpoint import load_model

        model, tok, _ = load_model(exp_dir)
    else:
        cfg = load_config(cfg_path)
        tok = train_tokenizer(TEXTS, vocab_size=400, out_dir=tok_dir)
        tok.add_special_tokens({"additional_special_tokens": [cfg.llm.wait_token]})
        torch.manual_seed(0)
        llm_dir = tok_dir / f"llm_{name}"       # a random LLM of the shape, saved so the real loader reads it
        Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), max_position_embeddings=32768,
                                     **LLMS[name])).save_pretrained(llm_dir)
        tok.save_pretrained(llm_dir)
        model, tok = build_speech_llm(cfg, cmvn=new_cmvn(), llm_path=llm_dir, adapters=False,
                                      initialize_rows=False)
        model.eval()
    model.to(device)
    banned = [model.tokens.wait_id, model.tokens.eos_id]

    def ban(_module, _inputs, logits):
        logits[..., banned] = float("-inf")
        return logits

    model.glm.lm.get_output_embeddings().register_forward_hook(ban)
    enc_frames = model.encoder.output_lengths(num_frames(int(seconds * SAMPLE_RATE)))
    tokens = -(-enc_frames // model.projector.stack)
    chunks = math.ceil(tokens / (model.chunk_frames // model.projector.stack))
    dtype, quantize = PRECISIONS[precision]
    opts = DecodeConfig(max_tokens_per_read=writes, max_tokens_per_segment=writes * (chunks + 1),
                        endpoint=EndpointConfig(enabled=False),   # random audio: one segment, as long as asked
                        dtype=dtype, quantize=quantize)
    return Recognizer(model, tok, opts)


def audio(seconds: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * SAMPLE_RATE)
    t = torch.arange(n) / SAMPLE_RATE
    return 0.3 * torch.sin(2 * torch.pi * (200 + 100 * seed + 300 * t) * t) + 0.05 * torch.randn(n, generator=g)


@torch.inference_mode()
def run(rec: Recognizer, xs: list[torch.Tensor], batched: bool) -> tuple[float, list[float], int]:
    """Stream ``xs`` chunk by chunk; returns compute seconds, per-chunk latencies (s), tokens written."""
    streams = [rec.create_stream() for _ in xs]
    block = int(round(rec.chunk_s * SAMPLE_RATE))
    total, lat = 0.0, []
    on_gpu = next(rec.model.parameters()).device.type == "cuda"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    for r in range(math.ceil(max(len(x) for x in xs) / block)):
        sync()
        t0 = time.perf_counter()
        live = []
        for s, x in zip(streams, xs):
            if s.input_done:
                continue
            s.accept_waveform(SAMPLE_RATE, x[r * block:(r + 1) * block])
            if (r + 1) * block >= len(x):
                s.input_finished()
            live.append(s)
        if batched:
            rec.decode_streams(live)
            sync()
            lat += [time.perf_counter() - t0] * len(live)
        else:
            for s in live:
                rec.decode(s)
                sync()
                lat.append(time.perf_counter() - t0)
        total += time.perf_counter() - t0
    assert all(s.finished for s in streams)
    return total, lat, sum(len(s.trace) for s in streams)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--models", default="mini,0.5b", help="comma list of: " + ", ".join(LLMS))
    ap.add_argument("--config", default="conf/mini.yaml", help="encoder/projector/prompt/chunk config")
    ap.add_argument("--exp-dir", help="trained experiment dir for the mini row (instead of random weights)")
    ap.add_argument("--seconds-mini", type=float, default=30.0, help="audio per stream, mini model")
    ap.add_argument("--seconds-0.5b", dest="seconds_big", type=float, default=10.0,
                    help="audio per stream, 0.5B model")
    ap.add_argument("--streams", default="4",
                    help="concurrent streams, a comma list (sequential vs batched; sequential for the first only)")
    ap.add_argument("--precisions", default="fp32", help="comma list of: " + ", ".join(PRECISIONS))
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    ap.add_argument("--writes-per-chunk", type=int, default=3, help="target tokens forced per chunk")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: stable timings on a shared machine; 0 = torch's default)")
    ap.add_argument("--quick", action="store_true", help="short audio (4 s mini, 1.5 s 0.5B), 2 streams")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.seconds_mini, args.seconds_big, args.streams = 4.0, 1.5, "2"
    counts = [int(n) for n in args.streams.split(",")]
    for p in args.precisions.split(","):
        if p not in PRECISIONS:
            raise SystemExit(f"--precisions: unknown {p!r}; known: {', '.join(PRECISIONS)}")

    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(f"# {where}, {torch.get_num_threads()} torch thread(s); every chunk writes exactly "
          f"{args.writes_per_chunk} target tokens (<wait>/eos banned: random weights), final write the same; "
          f"{args.streams} streams for sequential/batched")
    header = ("| model | precision | method | streams | audio s/stream | RTF | chunk latency ms: mean | p50 | p90 "
              "| max | tokens | vs |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name not in LLMS:
                raise SystemExit(f"--models: unknown model {name!r}; known: {', '.join(LLMS)}")
            seconds = args.seconds_mini if name == "mini" else args.seconds_big
            exp_dir = args.exp_dir if name == "mini" else None
            for precision in args.precisions.split(","):
                kw = dict(cfg_path=args.config, tok_dir=Path(tmp) / name, exp_dir=exp_dir,
                          writes=args.writes_per_chunk, seconds=seconds, precision=precision, device=args.device)
                group = build_recognizer(name, **kw)
                reenc = ReencodingRecognizer(group.model, group.tokenizer, group.config)
                run(group, [audio(min(seconds, 2.0), 99)], batched=False)  # warm-up
                rows = [("group", group, [audio(seconds, 0)], False, None),
                        ("reencode", reenc, [audio(seconds, 0)], False, "group")]
                for i, n in enumerate(c for c in counts if c > 1):
                    many = [audio(seconds, j) for j in range(n)]
                    if i == 0:
                        rows.append((f"sequential {n}", group, many, False, None))
                    rows.append((f"batched {n}", group, many, True, f"sequential {n}" if i == 0 else "group"))
                rtf = {}
                for method, rec, xs, batched, ref in rows:
                    total, lat, toks = run(rec, xs, batched)
                    rtf[method] = total / (seconds * len(xs))
                    ms = sorted(x * 1e3 for x in lat)
                    p = [ms[min(len(ms) - 1, int(q * len(ms)))] for q in (0.5, 0.9)]
                    vs = f"{rtf[method] / rtf[ref]:.2f}x {ref}" if ref else "ref"
                    label = name + (" (exp)" if exp_dir else "")
                    print(f"| {label} | {precision} | {method.split()[0]} | {len(xs)} | {seconds:g} | "
                          f"{rtf[method]:.3f} | {statistics.mean(ms):.1f} | {p[0]:.1f} | {p[1]:.1f} | {ms[-1]:.1f} "
                          f"| {toks} | {vs} |", flush=True)
                del group, reenc


if __name__ == "__main__":
    main()
