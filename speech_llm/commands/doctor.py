"""Check that this environment can run the toolkit: package pins, the torch/torchaudio pair, compiled ops.

Usage:
    speech-llm doctor            # report; exit 1 when something the toolkit needs is broken
    speech-llm doctor --strict   # also fail when espeak-ng, flite, PortAudio or libsndfile is missing

See :mod:`speech_llm.doctor` for what each line checks.
"""

from __future__ import annotations

import argparse

NAME = "doctor"
HELP = "check versions, the torch/torchaudio pair, torchaudio's compiled ops, CUDA and system tools"
ORDER = 95


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strict", action="store_true",
                        help="missing system tools (espeak-ng, flite, PortAudio, libsndfile) are failures")


def run(args: argparse.Namespace) -> int:
    from speech_llm.doctor import failed, run_checks, versions_line

    print(versions_line())
    checks = run_checks(require_tools=args.strict)
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"  {c.status:<4}  {c.name:<{width}}  {c.detail}")
    bad = failed(checks)
    if bad:
        print(f"doctor: {len(bad)} problem(s): {', '.join(c.name for c in bad)}")
        return 1
    print("doctor: everything the toolkit needs works")
    return 0
