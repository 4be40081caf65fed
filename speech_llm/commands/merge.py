"""Merge a trained speech-LLM checkpoint into a standalone model dir.

Usage:
    speech-llm merge --checkpoint exp/mini --out exp/mini/merged
    speech-llm merge --checkpoint exp/mini/llm/last --out /models/mini-merged

The LoRA adapter and the trained <wait> token rows are merged into the LLM weights; OUT/llm is then a
plain Hugging Face model dir (``AutoModelForCausalLM.from_pretrained(OUT/llm)``, tokenizer included)
and OUT/model.pt holds the encoder, CMVN and projector. OUT no longer refers to the base LLM or the
CTC checkpoint: ``speech_llm.model.checkpoint.load_model(OUT)`` (and decoding) read it alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speech_llm.commands._out_dir import refuse_nonempty_out

NAME = "merge"
HELP = "merge a checkpoint's LoRA adapter into a standalone model dir"
ORDER = 25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, metavar="DIR",
                        help="an llm checkpoint, or an experiment dir (its llm/best, else llm/last)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the standalone model dir")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")


def run(args: argparse.Namespace) -> int:
    from speech_llm.model.checkpoint import merge_checkpoint

    refuse_nonempty_out(args.out, args.overwrite)
    out = merge_checkpoint(args.checkpoint, args.out)
    print(f"merge: wrote {out}")
    return 0
