"""Decode a test set (a Kaldi data dir) with a trained speech LLM, streaming or batch.

Usage:
    speech-llm decode --exp-dir exp/mini --data data/test --mode streaming --chunk-ms 640 --out exp/mini/decode_test
    speech-llm decode --exp-dir exp/mini --data data/test --mode batch --out exp/mini/decode_test_batch
    speech-llm decode --task mt --exp-dir exp/mt --data data/test --k 3 --out exp/mt/decode_test_k3

Speech (asr, st): --exp-dir is a trained speech-LLM experiment or checkpoint; it transcribes (asr) or
translates (st) the audio in wav.scp, whichever task the checkpoint was trained for (--task, when given,
must match it). Text (mt): --exp-dir is a text-translation experiment (``speech-llm train --stage mt``);
the source sentences are the data dir's ``text`` and the policy is word-level wait-k (--k) or batch
(--mode batch).

Writes ``text`` (hypotheses), ``emissions.jsonl`` (word emission times) and ``summary.json`` to --out;
an interrupted run resumes where it stopped. Score with ``speech-llm score --ref DATADIR --hyp OUT``.
"""

from __future__ import annotations

import json

NAME = "decode"
HELP = "decode a data dir (streaming or batch) into hypotheses and emission times"
ORDER = 40


def add_arguments(p) -> None:
    from speech_llm.commands._decode_options import add_decode_arguments

    p.add_argument("--exp-dir", required=True, help="experiment dir or checkpoint file of the trained model")
    p.add_argument("--data", required=True, help="Kaldi data dir to decode (wav.scp, text, ...)")
    p.add_argument("--out", required=True, help="output dir")
    p.add_argument("--task", choices=["asr", "st", "mt"], default=None,
                   help="asr/st: speech (checked against the checkpoint); mt: text wait-k (default: the "
                        "checkpoint's task)")
    p.add_argument("--k", type=int, default=3, help="mt: wait-k lag in source words (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=1,
                   help="utterances decoded together in one batch (asr/st; default: %(default)s)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_decode_arguments(p)


def run(args) -> int:
    from speech_common.errors import UserError
    from speech_llm.commands._decode_options import (
        check_decode_options,
        default_device,
        load_recognizer_from_args,
    )
    from speech_llm.decoding.decode import decode_data_dir

    if args.task == "mt":
        return _run_mt(args)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_decode_options(args)
    rec = load_recognizer_from_args(args, default_device(args.device))
    cfg = rec.experiment
    if args.task is not None and args.task != cfg.llm.task:
        raise UserError(f"--task {args.task}: {args.exp_dir} was trained for llm.task={cfg.llm.task}")
    info = {"task": cfg.llm.task, "exp_dir": str(args.exp_dir)}
    if cfg.llm.task == "st":
        info["target_lang"] = cfg.llm.target_lang
    summary = decode_data_dir(rec, args.data, args.out, progress=not args.no_progress, batch_size=args.batch_size,
                              info=info)
    print(json.dumps(summary, indent=2))
    return 0


def _run_mt(args) -> int:
    """``--task mt``: wait-k (or batch) text translation of the data dir's ``text``."""
    from pathlib import Path

    from data_prep.kaldi_dir import read_text_file
    from speech_common.errors import UserError
    from speech_llm.commands._decode_options import default_device
    from speech_llm.mt import decode_mt_data

    text = Path(args.data) / "text"
    if not text.is_file():
        raise UserError(f"--data {args.data}: no 'text' file (the source sentences for --task mt)")
    batch = args.mode == "batch"
    if not batch and args.k < 1:
        raise UserError(f"--k must be >= 1, got {args.k}")
    sources = read_text_file(text, allow_empty=False)
    summary = decode_mt_data(args.exp_dir, None, sources, None if batch else args.k, args.out, batch=batch,
                             device=default_device(args.device), progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    return 0
