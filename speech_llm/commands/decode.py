"""Decode a test set (a Kaldi data dir) with a trained speech LLM, streaming or batch.

Usage:
    speech-llm decode --exp-dir exp/mini --data data/test --mode streaming --chunk-ms 640 --out exp/mini/decode_test
    speech-llm decode --exp-dir exp/mini --data data/test --mode batch --out exp/mini/decode_test_batch

Writes ``text`` (hypotheses), ``emissions.jsonl`` (word emission times) and ``summary.json`` to --out;
an interrupted run resumes where it stopped. Score with ``speech-llm score --ref DATADIR --hyp OUT``.
"""

from __future__ import annotations

import json

NAME = "decode"
HELP = "decode a data dir (streaming or batch) into hypotheses and emission times"
ORDER = 40


def add_arguments(p) -> None:
    p.add_argument("--exp-dir", required=True, help="experiment dir or checkpoint file of the trained model")
    p.add_argument("--data", required=True, help="Kaldi data dir to decode (wav.scp, text, ...)")
    p.add_argument("--out", required=True, help="output dir")
    p.add_argument("--mode", choices=["streaming", "batch"], default="streaming")
    p.add_argument("--chunk-ms", type=float, default=None,
                   help="streaming chunk in ms (default: the chunk the model was trained with)")
    p.add_argument("--lookahead", type=int, default=0, help="extra chunks read before writing (streaming)")
    p.add_argument("--max-tokens-per-read", type=int, default=20)
    p.add_argument("--max-total-tokens", type=int, default=200)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from speech_llm.decode import decode_data_dir, load_recognizer
    from speech_llm.errors import UserError
    from speech_llm.recognizer import DecodeOptions

    try:
        opts = DecodeOptions(mode=args.mode, chunk_ms=args.chunk_ms, lookahead_chunks=args.lookahead,
                             max_tokens_per_read=args.max_tokens_per_read, max_total_tokens=args.max_total_tokens)
        rec = load_recognizer(args.exp_dir, opts, device=args.device)
    except ValueError as e:
        raise UserError(str(e)) from e
    summary = decode_data_dir(rec, args.data, args.out, progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    return 0
