"""Prepare corpora: LibriSpeech (download or local copy) and the synthetic LibriSpeech-format corpus.

Usage:
    speech-llm prepare librispeech --parts dev-clean,test-clean --download-dir downloads --out data
    speech-llm prepare librispeech --parts dev-clean --corpus-dir /corpora/LibriSpeech --out data
    speech-llm prepare synth --out corpora/synth --num-utts 2000 --seed 0 [--noise-snr 20] [--data-out data]

Both write Kaldi data dirs ``<out>/<split>/{wav.scp,text,utt2spk,spk2utt,utt2dur}`` plus
``<out>/<split>/manifest.jsonl`` (``synth`` only when ``--data-out`` is given). Bad input stops the run
before anything is written; every problem is listed with its file, line and utterance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speech_llm.errors import UserError

NAME = "prepare"
HELP = "prepare corpora (LibriSpeech, synthetic speech) as Kaldi data dirs and JSONL manifests"
ORDER = 10


def _parts(value: str) -> list[str]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("give at least one part, e.g. dev-clean,test-clean")
    return parts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="corpus", metavar="<corpus>")
    sub.required = True

    ls = sub.add_parser("librispeech", help="download (or use a local copy of) LibriSpeech and prepare it",
                        description="Download LibriSpeech parts (resumable, sha256-checked) or read an "
                                    "extracted copy, then write data dirs and manifests.")
    ls.add_argument("--parts", type=_parts, required=True,
                    help="comma-separated parts, e.g. dev-clean,test-clean,train-clean-100")
    ls.add_argument("--out", type=Path, required=True, help="parent of the data dirs (e.g. data)")
    src = ls.add_mutually_exclusive_group(required=True)
    src.add_argument("--download-dir", type=Path, help="download and extract the parts here")
    src.add_argument("--corpus-dir", type=Path, help="an extracted corpus (the dir holding dev-clean/ ...)")
    ls.add_argument("--base-url", default=None, help="server dir with <part>.tar.gz (default: OpenSLR 12)")
    ls.add_argument("--checksums", type=Path, default=None,
                    help="md5sum/sha256sum-style file overriding the built-in sha256 of the archives")
    ls.add_argument("--retries", type=int, default=3, help="resumed attempts after an interrupted transfer")
    ls.add_argument("--verify-audio", action="store_true",
                    help="decode every audio file completely (slow; catches truncated files)")

    sy = sub.add_parser("synth", help="generate the synthetic speech corpus (espeak-ng + flite)",
                        description="Generate seeded sentences spoken by espeak-ng and flite voices in "
                                    "LibriSpeech layout (train/dev/test), with word times and fr/de "
                                    "translations.")
    sy.add_argument("--out", type=Path, required=True, help="corpus root to create")
    sy.add_argument("--num-utts", type=int, required=True, help="number of utterances in all splits")
    sy.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sy.add_argument("--noise-snr", type=float, default=None, metavar="DB", help="add white noise at this SNR")
    sy.add_argument("--num-workers", type=int, default=2, help="synthesis processes (default 2)")
    sy.add_argument("--data-out", type=Path, default=None,
                    help="also prepare data dirs + manifests here (as prepare librispeech would)")


def run(args: argparse.Namespace) -> int:
    from data_prep import librispeech

    if args.corpus == "librispeech":
        from data_prep.download import read_checksum_file

        corpus_dir = args.corpus_dir
        if corpus_dir is None:
            checksums = None
            if args.checksums is not None:
                if not args.checksums.is_file():
                    raise UserError(f"--checksums: file not found: {args.checksums}")
                checksums = read_checksum_file(args.checksums)
            corpus_dir = librispeech.download_librispeech(
                args.parts, args.download_dir, base_url=args.base_url or librispeech.OFFICIAL_URL,
                checksums=checksums, retries=args.retries)
        dirs = librispeech.prepare_librispeech(corpus_dir, args.parts, args.out, verify_audio=args.verify_audio)
    else:
        from data_prep.synth import DEFAULT_SPLITS, generate_corpus

        corpus = generate_corpus(args.out, args.num_utts, args.seed, noise_snr_db=args.noise_snr,
                                 num_workers=args.num_workers)
        print(f"synthetic corpus in {corpus}")
        if args.data_out is None:
            return 0
        splits = [s for s in DEFAULT_SPLITS if (corpus / s).is_dir()]   # a tiny corpus may lack dev/test
        dirs = librispeech.prepare_librispeech(corpus, splits, args.data_out)
    for split, d in dirs.items():
        print(f"{split}: {d} ({sum(1 for _ in open(d / 'text'))} utterances)")
    return 0
