"""Build a tiny local LLM (tokenizer + Qwen2/Llama model) that loads by path like a hub model.

Usage:
    speech-llm build-llm --text corpus.txt --out exp/tiny_llm
    speech-llm build-llm --text data/train/text --kaldi-text --out exp/tiny_llm \\
        --arch qwen2 --vocab-size 1000 --hidden-size 128 --num-layers 2 --pretrain-steps 300

Trains a byte-level BPE tokenizer on the text (one sentence per line), builds a randomly initialised
model sized to it, optionally pre-trains it as a language model on the same text, and saves everything
into --out. Then ``AutoModelForCausalLM.from_pretrained(OUT)`` / ``AutoTokenizer.from_pretrained(OUT)``
load it offline, and a config can point at it with ``llm.path_or_name=OUT``.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from speech_common.errors import UserError
from speech_llm.commands._out_dir import refuse_nonempty_out

NAME = "build-llm"
HELP = "build a tiny local LLM (tokenizer + Qwen2/Llama) for tests and CPU recipes"
ORDER = 15


def _defaults() -> dict:
    from speech_llm.model.tiny_llm import build_tiny_llm, pretrain_lm

    params = {**inspect.signature(pretrain_lm).parameters, **inspect.signature(build_tiny_llm).parameters}
    return {name: p.default for name, p in params.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = _defaults()
    parser.add_argument("--text", type=Path, action="append", required=True, metavar="FILE",
                        help="training text, one sentence per line (repeat for several files)")
    parser.add_argument("--kaldi-text", action="store_true",
                        help="the files are Kaldi 'text' files: drop the first field (utterance id) of each line")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output model dir")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = parser.add_argument_group("model")
    g.add_argument("--arch", choices=["qwen2", "llama"], default=d["arch"])
    g.add_argument("--vocab-size", type=int, default=1000, help="BPE vocabulary size (default: %(default)s)")
    for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size",
                 "max_position_embeddings", "seed"):
        g.add_argument("--" + name.replace("_", "-"), type=int, default=d[name], help="(default: %(default)s)")
    g = parser.add_argument_group("language-model pre-training")
    g.add_argument("--pretrain-steps", type=int, default=0, help="0 = keep random weights (default: %(default)s)")
    g.add_argument("--batch-size", type=int, default=d["batch_size"], help="(default: %(default)s)")
    g.add_argument("--lr", type=float, default=d["lr"], help="(default: %(default)s)")
    g.add_argument("--seq-len", type=int, default=d["seq_len"], help="(default: %(default)s)")


def read_lines(paths: list[Path], kaldi: bool) -> list[str]:
    """Non-empty lines of the files; with ``kaldi``, without the leading utterance id."""
    lines = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise UserError(f"--text {path}: cannot read: {e.strerror}") from None
        for line in text.splitlines():
            if kaldi:
                parts = line.split(maxsplit=1)
                line = parts[1] if len(parts) == 2 else ""
            line = line.strip()
            if line:
                lines.append(line)
    if not lines:
        raise UserError(f"--text {', '.join(map(str, paths))}: no text found")
    return lines


def run(args: argparse.Namespace) -> int:
    from speech_llm.model.tiny_llm import build_tiny_llm, evaluate_lm, pretrain_lm, train_tokenizer

    refuse_nonempty_out(args.out, args.overwrite, "write into it")
    if args.pretrain_steps < 0:
        raise UserError(f"--pretrain-steps must be >= 0, got {args.pretrain_steps}")
    lines = read_lines(args.text, args.kaldi_text)
    print(f"build-llm: {len(lines)} lines of text")

    tokenizer = train_tokenizer(lines, args.vocab_size, args.out, model_max_length=args.max_position_embeddings)
    print(f"build-llm: tokenizer with {len(tokenizer)} tokens")
    build_tiny_llm(args.out, args.out, arch=args.arch, hidden_size=args.hidden_size, num_layers=args.num_layers,
                   num_heads=args.num_heads, num_kv_heads=args.num_kv_heads,
                   intermediate_size=args.intermediate_size,
                   max_position_embeddings=args.max_position_embeddings, seed=args.seed)
    if args.pretrain_steps > 0:
        sample = lines[:1000]
        before = evaluate_lm(args.out, sample, seq_len=args.seq_len)
        pretrain_lm(args.out, lines, steps=args.pretrain_steps, batch_size=args.batch_size, lr=args.lr,
                    seq_len=args.seq_len, seed=args.seed, progress=not args.no_progress)
        after = evaluate_lm(args.out, sample, seq_len=args.seq_len)
        print(f"build-llm: LM loss on (the start of) the text {before:.3f} -> {after:.3f} nats/token")
    print(f"build-llm: wrote {args.out}")
    return 0
