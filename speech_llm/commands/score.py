"""Score decoded hypotheses against a data dir: WER for ASR, BLEU/chrF for translation, and latency.

Usage:
    speech-llm score --ref data/test_clean --hyp exp/mini/decode_test_clean
    speech-llm score --ref data/test_clean --hyp DIR --normalize case,punct --cer --out DIR
    speech-llm score --ref data/test_st --hyp exp/st/decode_test --task st --lang fr
    speech-llm score --ref data/test_st --hyp exp/mt/decode_test --task mt --lang fr

--ref is a Kaldi data dir (``text``, optionally ``manifest.jsonl`` with reference word times and
translations); --hyp a decode dir (``text``, optionally ``emissions.jsonl`` and ``summary.json``). What each
task reports and the files written (results.md, printed too; results.json; wer_details.txt for asr) are
described in :mod:`speech_llm.metrics.score`.
"""

from __future__ import annotations

import argparse

NAME = "score"
HELP = "score hypotheses: WER (asr) or BLEU/chrF (st, mt), with latency from emission times"
ORDER = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from speech_llm.metrics.score import TASKS
    from speech_llm.metrics.wer import DEFAULT_NORMALIZE

    parser.add_argument("--ref", required=True, metavar="DATADIR", help="reference Kaldi data dir")
    parser.add_argument("--hyp", required=True, metavar="DIR",
                        help="decode dir holding 'text' (and emissions)")
    parser.add_argument("--task", choices=TASKS, default="asr", help="what is scored (default: asr)")
    parser.add_argument("--lang", default="fr", help="translation language for st/mt (default: fr)")
    parser.add_argument("--normalize", default="default", metavar="SPEC",
                        help=f"asr text normalisation: 'default' (= {DEFAULT_NORMALIZE}), 'none', or a comma "
                             "list of unicode,case,punct,apostrophe (see speech_llm/metrics/wer.py)")
    parser.add_argument("--cer", action="store_true", help="asr: also report the character error rate")
    parser.add_argument("--out", metavar="DIR", help="where results go (default: the --hyp dir)")


def run(args: argparse.Namespace) -> int:
    from speech_llm.metrics.score import score_decode_dir

    _, table = score_decode_dir(args.ref, args.hyp, task=args.task, lang=args.lang, normalize=args.normalize,
                                cer=args.cer, out_dir=args.out)
    print(table, end="")
    return 0
