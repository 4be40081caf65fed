"""Export a trained speech LLM to ONNX for recognition on onnxruntime without torch (issue #27).

Usage:
    speech-llm export --exp-dir exp/mini --out exp/mini/onnx
    speech-llm export --exp-dir exp/mini --out exp/mini/onnx --int8 --set chunk_ms=320
    speech-llm export --exp-dir exp/mini --out exp/mini/onnx --int8 --int8-scope all   # LM head in int8 too
    speech-llm export --exp-dir exp/asr --out exp/asr/onnx --int8 --int8-parts encoder,projector,llm  # all three
    speech-llm transcribe --exp-dir exp/mini/onnx audio.wav      # the export dir decodes like a checkpoint
    python -m speech_runtime exp/mini/onnx audio.wav             # the same without torch

OUT holds the encoder chunk step, the projector, the LLM step (LoRA merged), the embedding table, the
tokenizer, the special tokens, the decode config and the front-end settings (docs/DEPLOYMENT.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speech_common.export_dir import INT8_DEFAULT_PARTS, INT8_PARTS, INT8_SCOPES
from speech_llm.commands._out_dir import refuse_nonempty_out

NAME = "export"
HELP = "export a checkpoint to ONNX for onnxruntime (speech_runtime, no torch)"
ORDER = 26


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exp-dir", type=Path, required=True, metavar="DIR",
                        help="an llm checkpoint, or an experiment dir (its llm/best, else llm/last)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the export dir")
    parser.add_argument("--int8", action="store_true",
                        help="also write int8 copies (8-bit block-wise weights, onnxruntime MatMulNBits with "
                             "int8 compute)")
    parser.add_argument("--int8-scope", choices=INT8_SCOPES, default=INT8_SCOPES[0],
                        help="with --int8: body keeps the vocabulary-wide products (the LM head, the vocabulary "
                             "projector's class table) in float32; all quantizes them too (smaller, less exact) "
                             "(default: %(default)s)")
    parser.add_argument("--int8-parts", default=",".join(INT8_DEFAULT_PARTS), metavar="PARTS",
                        help="with --int8: the models to quantize, a comma list of " + ", ".join(INT8_PARTS)
                             + "; the others run in float32 under --int8 too (default: %(default)s: on the "
                               "real-speech model the int8 encoder and projector were slower than float and cost "
                               "WER, bench/RESULTS.md)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="decode-config override baked into the export (repeatable), e.g. chunk_ms=320")
    parser.add_argument("--overwrite", action="store_true", help="write into an existing non-empty OUT")


def run(args: argparse.Namespace) -> int:
    from speech_llm.export import export_checkpoint

    refuse_nonempty_out(args.out, args.overwrite)
    out = export_checkpoint(args.exp_dir, args.out, int8=args.int8, overrides=tuple(args.set),
                            int8_scope=args.int8_scope,
                            int8_parts=tuple(p.strip() for p in args.int8_parts.split(",") if p.strip()))
    print(f"export: wrote {out}")
    return 0
