"""Prepare corpora: LibriSpeech (download or local copy), the synthetic LibriSpeech-format corpora (template
words and whole sentences) and the Asterisk prompts (real recorded speech).

Usage:
    speech-llm prepare librispeech --parts dev-clean,test-clean --download-dir downloads --out data
    speech-llm prepare librispeech --parts dev-clean --corpus-dir /corpora/LibriSpeech --out data
    speech-llm prepare synth --out corpora/synth --num-utts 2000 --seed 0 [--noise-snr 20] [--data-out data]
    speech-llm prepare sentences --out corpora/sentences --num-utts 2000 --seed 0 --engines espeak,flite,piper \
        [--heldout-voice slt] [--exclude-text data/asterisk/text] [--data-out data]
    speech-llm prepare asterisk --out data/asterisk

All write Kaldi data dirs ``<out>/<split>/{wav.scp,text,utt2spk,spk2utt,utt2dur}`` plus
``<out>/<split>/manifest.jsonl`` (``synth`` and ``sentences`` only when ``--data-out`` is given; ``asterisk``
writes one data dir, ``<out>`` itself). Bad input stops the run before anything is written; every problem
is listed with its file, line and utterance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speech_common.errors import UserError

NAME = "prepare"
HELP = "prepare corpora (LibriSpeech, synthetic speech, Asterisk prompts) as Kaldi data dirs and JSONL manifests"
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
    _add_sentences(sub)
    _add_asterisk(sub)


def _add_sentences(sub) -> None:
    se = sub.add_parser("sentences", help="real English sentences spoken whole by espeak-ng, flite and piper",
                        description="Select WordNet example sentences (Debian wordnet-base), normalise them the "
                                    "LibriSpeech way and synthesize each in one call, in LibriSpeech layout "
                                    "(train/dev/test, plus test-heldout with --heldout-voice). Resumable.")
    se.add_argument("--out", type=Path, required=True, help="corpus root to create (or finish)")
    se.add_argument("--num-utts", type=int, required=True, help="number of utterances in all splits")
    se.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    se.add_argument("--engines", default="espeak,flite,piper", help="comma-separated: espeak, flite, piper")
    se.add_argument("--heldout-voice", default=None, metavar="NAME",
                    help="speak this voice (e.g. slt, joe, en-us+m3, or a speaker id) only in test-heldout")
    se.add_argument("--exclude-text", type=Path, action="append", default=[], metavar="TEXT",
                    help="Kaldi text file whose sentences must not be spoken (repeatable), e.g. data/asterisk/text")
    se.add_argument("--noise-snr", type=float, default=None, metavar="DB", help="add white noise at this SNR")
    se.add_argument("--num-workers", type=int, default=2, help="synthesis processes (default 2)")
    se.add_argument("--data-out", type=Path, default=None, help="also prepare data dirs + manifests here")


def _add_asterisk(sub) -> None:
    ast = sub.add_parser("asterisk", help="real recorded speech: Asterisk's English prompts as a test set",
                         description="Write Debian's asterisk-core-sounds-en(-wav) prompts (one voice, 8 kHz, "
                                     "CC-BY-SA-3.0) as a Kaldi data dir with normalised transcripts.")
    ast.add_argument("--out", type=Path, required=True, help="the data dir to write (e.g. data/asterisk)")
    ast.add_argument("--sounds-dir", type=Path, default=None, help="the recordings (default: the package's)")
    ast.add_argument("--transcripts", type=Path, default=None, help="core-sounds-en.txt(.gz) (default: the package's)")


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
    elif args.corpus == "asterisk":
        from data_prep.asterisk import prepare_asterisk

        print(prepare_asterisk(args.out, args.sounds_dir, args.transcripts).summary())
        return 0
    elif args.corpus == "sentences":
        from data_prep.kaldi_dir import read_text_file
        from data_prep.sentence_corpus import generate_sentence_corpus, split_names
        from data_prep.tts import parse_engines

        exclude = [t for path in args.exclude_text for t in read_text_file(path, allow_empty=False).values()]
        corpus = generate_sentence_corpus(args.out, args.num_utts, args.seed, engines=parse_engines(args.engines),
                                          heldout_voice=args.heldout_voice, exclude=exclude,
                                          noise_snr_db=args.noise_snr, num_workers=args.num_workers)
        print(f"sentence corpus in {corpus}")
        if args.data_out is None:
            return 0
        dirs = librispeech.prepare_librispeech(corpus, split_names(corpus), args.data_out)
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
