"""Decode one checkpoint (or several) over a grid of chunk sizes and read-aheads, score every point, and
write the latency/accuracy table and plot.

Usage:
    speech-llm sweep --exp-dir exp/mini --data data/test --out exp/mini/sweep
    speech-llm sweep --exp-dir exp/mini --exp-dir exp/mini_single --label multi-chunk --label single-chunk \
        --data data/test --out exp/sweep --chunks 320,480,640,960,1280 --read-ahead 0,1

Writes OUT/<label>/decode_<chunk>ms_ra<k>/ (and decode_batch/) decode dirs, scored, then OUT/sweep.md,
OUT/sweep.json and OUT/sweep.png: WER against mean word emission delay (speech translation: BLEU against
AL), ideal and computation-aware, one point per setting, one curve per checkpoint, batch mode as a
horizontal line. A rerun reuses the points
already scored. Decoding options (--max-tokens-per-segment, endpointing, ...) apply to every point.
"""

from __future__ import annotations

import argparse

NAME = "sweep"
HELP = "decode a checkpoint over chunk sizes and read-aheads: the latency/accuracy table and plot"
ORDER = 42


def add_arguments(p: argparse.ArgumentParser) -> None:
    from speech_llm.commands._decode_options import add_decode_arguments

    p.add_argument("--exp-dir", action="append", required=True, help="experiment dir or checkpoint (repeatable)")
    p.add_argument("--label", action="append", default=None, help="a name per --exp-dir (default: its dir name)")
    p.add_argument("--data", required=True, help="Kaldi data dir to decode")
    p.add_argument("--out", required=True, help="output dir")
    p.add_argument("--chunks", default="320,480,640,960,1280", help="chunk sizes in ms (default: %(default)s)")
    p.add_argument("--read-ahead", default="0", dest="read_aheads",
                   help="read-aheads in chunks, comma-separated (default: %(default)s)")
    p.add_argument("--no-batch", action="store_true", help="leave out the batch-mode point")
    p.add_argument("--batch-size", type=int, default=8, help="utterances decoded together (default: %(default)s)")
    p.add_argument("--title", default="", help="plot title")
    p.add_argument("--lang", default="fr", help="st: the translation language scored (default: %(default)s)")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    add_decode_arguments(p, skip=("--mode", "--chunk-ms", "--read-ahead"))


def _ints(text: str, option: str) -> list[int]:
    from speech_common.errors import UserError

    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option}: want comma-separated integers, got {text!r}") from None
    if not values:
        raise UserError(f"{option}: no value given")
    return values


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from speech_common.errors import UserError
    from speech_llm.commands._decode_options import check_decode_options, decode_overrides, default_device
    from speech_llm.decoding.sweep import run_sweep, write_sweep

    check_decode_options(args)
    chunks, aheads = _ints(args.chunks, "--chunks"), _ints(args.read_aheads, "--read-ahead")
    labels = args.label or [Path(e).name for e in args.exp_dir]
    if len(labels) != len(args.exp_dir):
        raise UserError(f"{len(labels)} --label for {len(args.exp_dir)} --exp-dir")
    curves = {}
    for exp, label in zip(args.exp_dir, labels):
        curves[label] = run_sweep(exp, args.data, Path(args.out) / label, chunks, aheads, batch=not args.no_batch,
                                  batch_size=args.batch_size, device=default_device(args.device),
                                  progress=not args.no_progress, overrides=tuple(decode_overrides(args)),
                                  label=label, lang=args.lang)
    md, js, png = write_sweep(curves, Path(args.out) / "sweep", args.title)
    print(md.read_text(encoding="utf-8"), end="")
    print(f"\nsweep: wrote {md}, {js} and {png}")
    return 0
