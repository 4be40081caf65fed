"""Prepare corpora: LibriSpeech (download or local copy), the synthetic LibriSpeech-format corpora (template
words and whole sentences), the Asterisk prompts (real recorded speech) and long-form test sets (the
utterances of a data dir joined into long files).

Usage:
    speech-llm prepare librispeech --parts dev-clean,test-clean --download-dir downloads --out data
    speech-llm prepare librispeech --parts dev-clean --corpus-dir /corpora/LibriSpeech --out data
    speech-llm prepare synth --out corpora/synth --num-utts 2000 --seed 0 [--noise-snr 20] [--data-out data]
    speech-llm prepare sentences --out corpora/sentences --num-utts 2000 --seed 0 --engines espeak,flite,piper \
        [--heldout-voice slt] [--exclude-text data/asterisk/text] [--data-out data]
    speech-llm prepare asterisk --out data/asterisk
    speech-llm prepare longform --data data/test --out data/longform --minutes 1,5,20 [--seed 0] \
        [--pause 0.5,1.0] [--pause-noise match|none|DB] [--num-files 1]
    speech-llm prepare augment --manifest data/train/manifest.jsonl --out data/train_aug \
        --variants sp0.9+noise,sp1.1+tel [--seed 0] [--with-originals]

All write Kaldi data dirs ``<out>/<split>/{wav.scp,text,utt2spk,spk2utt,utt2dur}`` plus
``<out>/<split>/manifest.jsonl`` (``synth`` and ``sentences`` only when ``--data-out`` is given; ``asterisk``
writes one data dir, ``<out>`` itself; ``longform`` one per length, ``<out>/long_<M>min``, plus
``segments.jsonl`` with each source utterance's offsets: :mod:`data_prep.longform`). Bad input stops the
run before anything is written; every problem is listed with its file, line and utterance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speech_common.errors import UserError

NAME = "prepare"
HELP = ("prepare corpora (LibriSpeech, synthetic speech, Asterisk prompts, long-form sets) as Kaldi data dirs and "
        "JSONL manifests")
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
    sy.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_sentences(sub)
    _add_asterisk(sub)
    _add_text(sub)
    _add_longform(sub)
    _add_augment(sub)


def _add_augment(sub) -> None:
    au = sub.add_parser("augment", help="augmented copies of a manifest's audio (speed, noise, telephone band)",
                        description="One copy of every utterance per variant (data_prep.augment): spX speed "
                                    "perturbation, noise (white, 10-30 dB SNR), tel (300-3400 Hz, 8 kHz mu-law), "
                                    "joined with '+'. Writes <out>/manifest.jsonl and a Kaldi data dir.")
    au.add_argument("--manifest", type=Path, required=True,
                    help="the manifest to copy (e.g. data/train/manifest.jsonl)")
    au.add_argument("--out", type=Path, required=True, help="the new data dir")
    au.add_argument("--variants", required=True, help="comma-separated variants, e.g. sp0.9+noise,sp1.1+tel")
    au.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    au.add_argument("--with-originals", action="store_true", help="the manifest's own records too")
    au.add_argument("--no-progress", action="store_true", help="no progress bar")


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
    se.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_text(sub) -> None:
    tx = sub.add_parser("text", help="WordNet's example sentences as plain text (e.g. train.proj.vocab_text)",
                        description="Write every usable WordNet example sentence (Debian wordnet-base), normalised "
                                    "the LibriSpeech way, one per line, minus the sentences of --exclude-text (the "
                                    "test sets'): the text whose LLM tokens the proj stage's CTC classes cover.")
    tx.add_argument("--out", type=Path, required=True, help="text file to write")
    tx.add_argument("--exclude-text", type=Path, action="append", default=[], metavar="TEXT",
                    help="Kaldi text file whose sentences to leave out (repeatable)")


def _add_asterisk(sub) -> None:
    ast = sub.add_parser("asterisk", help="real recorded speech: Asterisk's English prompts as a test set",
                         description="Write Debian's asterisk-core-sounds-en(-wav) prompts (one voice, 8 kHz, "
                                     "CC-BY-SA-3.0) as a Kaldi data dir with normalised transcripts.")
    ast.add_argument("--out", type=Path, required=True, help="the data dir to write (e.g. data/asterisk)")
    ast.add_argument("--sounds-dir", type=Path, default=None, help="the recordings (default: the package's)")
    ast.add_argument("--transcripts", type=Path, default=None, help="core-sounds-en.txt(.gz) (default: the package's)")


def _add_longform(sub) -> None:
    lf = sub.add_parser("longform", help="join a data dir's utterances, with pauses, into long files (1, 5, 20 min)",
                        description="Join the utterances of a Kaldi data dir, in order, with random pauses into "
                                    "long files of about the given lengths (cycling through the utterances again "
                                    "when the set is shorter); one data dir per length, <out>/long_<M>min, with "
                                    "the joined transcript and segments.jsonl (each source utterance's start/end "
                                    "in seconds). Seeded, resumable: an up-to-date dir is skipped.")
    lf.add_argument("--data", type=Path, required=True, help="source Kaldi data dir (e.g. data/test)")
    lf.add_argument("--out", type=Path, required=True, help="parent of the long_<M>min dirs (e.g. data/longform)")
    lf.add_argument("--minutes", required=True, help="comma-separated lengths in minutes, e.g. 1,5,20")
    lf.add_argument("--seed", type=int, default=0, help="random seed of the pauses (default 0)")
    lf.add_argument("--pause", default="0.5,1.0", metavar="MIN,MAX",
                    help="pause length range in seconds, drawn uniformly (default %(default)s)")
    lf.add_argument("--pause-noise", default="match", metavar="match|none|DB",
                    help="what the pauses hold: 'match' = white noise at the noise floor of the next utterance "
                         "(default), 'none' = digital silence, or a fixed noise level in dBFS (e.g. -60)")
    lf.add_argument("--num-files", type=int, default=1, help="long files per length (default 1)")
    lf.add_argument("--no-progress", action="store_true", help="no progress bar")


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
    elif args.corpus == "longform":
        from data_prep.longform import build_longform

        print(build_longform(args.data, args.out, args.minutes, seed=args.seed, pause_s=args.pause,
                             pause_noise=args.pause_noise, num_files=args.num_files,
                             progress=not args.no_progress).summary())
        return 0
    elif args.corpus == "augment":
        from data_prep.augment import build_augmented

        records = build_augmented(args.manifest, args.out, args.variants, seed=args.seed,
                                  with_originals=args.with_originals, progress=not args.no_progress)
        print(f"{len(records)} utterances ({sum(r['duration'] for r in records) / 60:.1f} min) -> {args.out}")
        return 0
    elif args.corpus == "text":
        from data_prep.fileutil import atomic_write_text
        from data_prep.kaldi_dir import read_text_file
        from data_prep.normalize import normalize_text
        from data_prep.text_corpus import available_sentences

        exclude = {normalize_text(t) for path in args.exclude_text
                   for t in read_text_file(path, allow_empty=False).values()}
        lines = [s.text for s in available_sentences() if s.text not in exclude]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, "".join(line + "\n" for line in lines))
        print(f"{len(lines)} sentences -> {args.out}")
        return 0
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
                                          noise_snr_db=args.noise_snr, num_workers=args.num_workers,
                                          progress=not args.no_progress)
        print(f"sentence corpus in {corpus}")
        if args.data_out is None:
            return 0
        dirs = librispeech.prepare_librispeech(corpus, split_names(corpus), args.data_out)
    else:
        from data_prep.synth import DEFAULT_SPLITS, generate_corpus

        corpus = generate_corpus(args.out, args.num_utts, args.seed, noise_snr_db=args.noise_snr,
                                 num_workers=args.num_workers, progress=not args.no_progress)
        print(f"synthetic corpus in {corpus}")
        if args.data_out is None:
            return 0
        splits = [s for s in DEFAULT_SPLITS if (corpus / s).is_dir()]   # a tiny corpus may lack dev/test
        dirs = librispeech.prepare_librispeech(corpus, splits, args.data_out)
    for split, d in dirs.items():
        print(f"{split}: {d} ({sum(1 for _ in open(d / 'text'))} utterances)")
    return 0
