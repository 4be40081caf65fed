"""Translate text line by line with word-level wait-k (simultaneous text translation).

Usage:
    echo "TURN ON THE LIGHT" | speech-llm translate --model exp/mt --k 3
    speech-llm translate --model exp/mt --batch --input sentences.txt
    speech-llm translate --model exp/mt --k 3 --input data/test/text --kaldi-text --out exp/mt/decode_k3
    speech-llm score --ref data/test --hyp exp/mt/decode_k3 --task mt --lang fr

--model is a text-translation experiment or checkpoint (``speech-llm train --stage mt``).
Each input line is one source sentence (with --kaldi-text: ``<key> <sentence>``, e.g. a data dir's
``text``). The translations are printed one per line (``<key> <translation>`` with --kaldi-text; with
--show-delays each word is followed by the number of source words read when it was written, ``la@3``).
--out writes ``text``, ``emissions.jsonl`` and ``summary.json`` for ``speech-llm score --task mt``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speech_common.errors import UserError

NAME = "translate"
HELP = "simultaneous text translation with word-level wait-k (or batch)"
ORDER = 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="text-translation experiment or checkpoint (speech-llm train --stage mt)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--k", type=int, default=3, help="wait-k lag in source words (default: %(default)s)")
    mode.add_argument("--batch", action="store_true", help="read each whole sentence, then translate")
    parser.add_argument("--input", default="-", metavar="FILE|-", help="source sentences (default: stdin)")
    parser.add_argument("--kaldi-text", action="store_true",
                        help="input lines are '<key> <sentence>' (a Kaldi 'text' file)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write text, emissions.jsonl and summary.json here (for speech-llm score --task mt)")
    parser.add_argument("--show-delays", action="store_true", help="print word@source_words_read")
    parser.add_argument("--max-tokens", type=int, metavar="N",
                        help="cap on written tokens per sentence (default: 4 x source tokens + 16)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")


def read_sources(path: str, kaldi: bool) -> dict[str, str]:
    """``{key: sentence}`` in input order; plain lines get keys ``line000001`` ...; blank lines are skipped."""
    where = "stdin" if path == "-" else path
    if path == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise UserError(f"--input {path}: cannot read: {e.strerror}") from None
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if kaldi:
            parts = line.split(maxsplit=1)
            if len(parts) < 2:
                raise UserError(f"{where}:{lineno}: want '<key> <sentence>', got {line.strip()!r}")
            key, sentence = parts
            if key in out:
                raise UserError(f"{where}:{lineno}: duplicated key {key!r}")
        else:
            key, sentence = f"line{lineno:06d}", line
        out[key] = sentence.strip()
    if not out:
        raise UserError(f"--input {where}: no sentences")
    return out


def run(args: argparse.Namespace) -> int:
    from speech_llm.mt import decode_mt_data, load_mt_model, translate
    from speech_llm.mt.decode import MTResult

    if not args.batch and args.k < 1:
        raise UserError(f"--k must be >= 1, got {args.k}")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise UserError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    sources = read_sources(args.input, args.kaldi_text)
    model = load_mt_model(args.model, device=args.device)
    k = None if args.batch else args.k

    def show(key: str, r: MTResult) -> None:
        text = " ".join(f"{w.word}@{w.src_words}" for w in r.words) if args.show_delays else r.text
        print(f"{key} {text}" if args.kaldi_text else text, flush=True)

    if args.out is None:
        for key, sentence in sources.items():
            show(key, translate(model, sentence, k, max_tokens=args.max_tokens))
        return 0
    decode_mt_data(model, None, sources, k, args.out, batch=args.batch, max_tokens=args.max_tokens,
                   on_result=show)
    print(f"speech-llm translate: wrote {args.out}/text, emissions.jsonl, summary.json", file=sys.stderr)
    return 0
