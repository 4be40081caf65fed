"""Put a CTC-pre-aligned projector (``--stage proj``) into a trained speech-LLM checkpoint.

Usage:
    speech-llm swap-projector --checkpoint exp/asr --projector exp/asr2/proj/best --out exp/asr2/llm_swapped

With ``projector.kind: vocab`` the LLM reads posterior-weighted mixes of its own token embeddings, so its LoRA
adapter trained on one CTC head reads a better one without retraining (LegoSLM's encoder swap). OUT is an
``llm`` checkpoint (decode it with ``speech-llm decode --exp-dir OUT``); both checkpoints must come from the same
encoder's frames. A starting point for more llm-stage steps too (``train.llm.init_projector`` trains from the
base LLM instead).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speech_llm.commands._out_dir import refuse_nonempty_out

NAME = "swap-projector"
HELP = "replace an llm checkpoint's projector with a proj-stage one (same encoder)"
ORDER = 26


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, metavar="DIR",
                        help="an llm checkpoint, or an experiment dir (its llm/best, else llm/last)")
    parser.add_argument("--projector", type=Path, required=True, metavar="DIR",
                        help="a proj checkpoint, or an experiment dir (its proj/best, else proj/last)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the new llm checkpoint dir")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")


def run(args: argparse.Namespace) -> int:
    from speech_llm.model.checkpoint import swap_projector

    refuse_nonempty_out(args.out, args.overwrite)
    out = swap_projector(args.checkpoint, args.projector, args.out)
    print(f"swap-projector: wrote {out}")
    return 0
