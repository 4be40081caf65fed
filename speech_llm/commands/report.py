"""Collect scored decode dirs into one results table (markdown + JSON), as a recipe's last stage.

Usage:
    speech-llm report --out exp/mini/results --baseline exp/mini/decode_test_batch \
        exp/mini/decode_test_640ms exp/mini/decode_test_320ms exp/mini/decode_test_batch
    speech-llm report --out exp/results --baseline sibling exp/a/decode_test_640ms exp/a/decode_test_batch \
        exp/b/decode_asterisk_640ms exp/b/decode_asterisk_batch

Each DIR must have been scored (``speech-llm score``, which writes DIR/results.json). Writes
OUT.md and OUT.json and prints the table. ``rel. to batch`` is each row's WER (BLEU for translation)
divided by the --baseline dir's (``sibling``: by the batch decode beside each row, ``<set>_batch``).
Rows from several experiment dirs are named ``<exp>/<decode dir>``.
"""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "collect scored decode dirs into one results table (markdown + JSON)"
ORDER = 45


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="scored decode dirs (holding results.json)")
    parser.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIX.md and PREFIX.json")
    parser.add_argument("--baseline", metavar="DIR", default=None,
                        help="the dir the 'rel. to batch' column divides by (usually the batch decode), or "
                             "'sibling': for each row the _batch dir beside it (several test sets in one table)")


def run(args: argparse.Namespace) -> int:
    from speech_llm.metrics.report import collect_rows, format_table, write_report

    rows = collect_rows(args.dirs, baseline=args.baseline)
    md, js = write_report(rows, args.out)
    print(format_table(rows))
    print(f"\nreport: wrote {md} and {js}")
    return 0
