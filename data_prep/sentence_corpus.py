"""The sentence corpus: real English sentences spoken whole by espeak-ng, flite and piper voices.

Usage (through the console script):
    speech-llm prepare sentences --out corpora/sentences --num-utts 2000 --seed 0 \\
        --engines espeak,flite,piper [--heldout-voice slt] [--exclude-text data/asterisk/text] [--data-out data]

The text is real English (WordNet's usage examples, :mod:`data_prep.text_corpus`), normalised the
LibriSpeech way; every sentence is synthesized in one call, as connected speech (:mod:`data_prep.tts`).
The layout is LibriSpeech's, so :func:`data_prep.librispeech.prepare_librispeech` reads it::

    <out>/corpus.json                                          parameters, speakers, counts
    <out>/<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac   16 kHz, 16 bit
    <out>/<split>/<spk>/<chapter>/<spk>-<chapter>.trans.txt    <key> <UPPER CASE TEXT>
    <out>/<split>/<spk>/<chapter>/<spk>-<chapter>.align.txt    <key> WORD:start:end ... (where known)

Splits: ``train``/``dev``/``test`` (80/10/10), all spoken by the training voices (chapters 100/200/300).
``heldout_voice`` names a voice (its engine voice name such as ``slt`` or ``joe``, ``engine:name``, or a
speaker id): every speaker using it is taken out of those splits and speaks only ``test-heldout``
(chapter 400; ``test_heldout`` once prepared), which gets a tenth share, as ``test`` does. No split
shares a sentence with another, and sentences passed in ``exclude`` (a real test set's transcripts) appear
nowhere.

Word times (``.align.txt``) are written for the utterances whose engine gives them (see
:mod:`data_prep.tts`: espeak-ng when every word has its own event, flite's clustergen voices, piper);
the others have none and get theirs from the recipe's CTC forced alignment. Each utterance's audio is the
engine's, with its leading and trailing silence replaced by seeded pauses of 150-300 ms, scaled to -20 dB
RMS over the speech, optionally with white noise at ``noise_snr_db``.

Resumable: an utterance is written when its FLAC and its record in ``<out>/.progress/`` are in place
(each renamed into place whole), and a rerun with the same parameters skips those; the transcripts and
``corpus.json`` are written last, then ``.progress/`` is removed. Everything depends only on the seed
(piper's noise is seeded per utterance), not on the number of workers or on interruptions. A finished
corpus with the same parameters makes the call a no-op; an ``<out>`` holding anything else is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_prep.audio import write_audio
from data_prep.fileutil import atomic_write_text
from data_prep.normalize import normalize_text
from data_prep.synth_common import align_line, assign_speakers, set_level, speaker_chunks, split_counts, worker_results
from data_prep.text_corpus import MAX_WORDS, MIN_WORDS, CorpusSentence, select_sentences
from data_prep.tts import ENGINES, check_engines, synthesize_sentence
from data_prep.voices import SENTENCE_VOICES, Voice, loud_range
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError

SPLITS: dict[str, float] = {"train": 0.8, "dev": 0.1, "test": 0.1}
HELDOUT_SPLIT = "test-heldout"
HELDOUT_SHARE = 0.1
CHAPTERS = {"train": "100", "dev": "200", "test": "300", HELDOUT_SPLIT: "400"}
INFO_FILE = "corpus.json"
PROGRESS_DIR = ".progress"
PARAMS_FILE = "params.json"
FORMAT_VERSION = 1

EDGE_PAUSE_S = (0.15, 0.30)
SILENCE_DB = -40.0


@dataclass(frozen=True)
class PlannedSentence:
    """One utterance to synthesize: where it goes, who says it, what is said."""

    key: str
    split: str
    voice: Voice
    sentence: CorpusSentence

    @property
    def chapter_dir(self) -> str:
        return f"{self.split}/{self.voice.speaker}/{CHAPTERS[self.split]}"

    @property
    def rel_path(self) -> str:
        return f"{self.chapter_dir}/{self.key}.flac"


def corpus_voices(engines: Iterable[str] = ENGINES) -> tuple[Voice, ...]:
    """The speakers of :data:`data_prep.voices.SENTENCE_VOICES` that use one of ``engines``."""
    engines = set(engines)
    return tuple(v for v in SENTENCE_VOICES if v.engine in engines)


def heldout_voices(name: str, voices: tuple[Voice, ...]) -> tuple[Voice, ...]:
    """The speakers held out by ``name``: a speaker id, an engine voice name (``slt``) or ``engine:name``.

    Raises:
        UserError: nothing matches, or nothing would be left for training.
    """
    held = tuple(v for v in voices if name in (v.speaker, v.name, f"{v.engine}:{v.name}"))
    if not held:
        known = sorted({v.name for v in voices})
        raise UserError(f"--heldout-voice {name!r} matches no voice of the chosen engines; voices: {', '.join(known)}"
                        f" (or a speaker id {voices[0].speaker}..{voices[-1].speaker})")
    if len(held) == len(voices):
        raise UserError(f"--heldout-voice {name!r} would hold out every voice; nothing would be left for training")
    return held


def plan_sentences(num_utts: int, seed: int, engines: Iterable[str] = ENGINES, heldout_voice: str | None = None,
                   exclude: Iterable[str] = (), wordnet_dir: str | os.PathLike | None = None,
                   min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> list[PlannedSentence]:
    """The corpus as planned utterances (no audio), fully determined by the arguments.

    Each split takes a disjoint slice of ``num_utts`` distinct sentences; speakers are spread evenly over
    each split from a seeded offset; the held-out speakers speak only :data:`HELDOUT_SPLIT`.
    """
    voices = corpus_voices(engines)
    if not voices:
        raise UserError("no voices: give at least one engine of espeak, flite, piper")
    held = heldout_voices(heldout_voice, voices) if heldout_voice else ()
    training = tuple(v for v in voices if v not in held)
    shares = dict(SPLITS, **({HELDOUT_SPLIT: HELDOUT_SHARE} if held else {}))
    sentences = select_sentences(num_utts, seed, exclude, wordnet_dir, min_words, max_words)
    rng = random.Random(seed * 7919 + 23)
    plan: list[PlannedSentence] = []
    counts = split_counts(num_utts, shares)
    for _, split, voice, n, sentence in assign_speakers(sentences, counts,
                                                       lambda split: held if split == HELDOUT_SPLIT else training, rng):
        plan.append(PlannedSentence(f"{voice.speaker}-{CHAPTERS[split]}-{n:04d}", split, voice, sentence))
    return plan


# --------------------------------------------------------------------------------------------- rendering

def _active_range(x: np.ndarray) -> tuple[int, int]:
    """First and last sample of 5 ms frames within ``SILENCE_DB`` of the loudest frame (all of ``x`` when it
    is shorter than a frame)."""
    return loud_range(x, SILENCE_DB, 5.0) or (0, len(x))


def render_sentence(utt: PlannedSentence, seed: int, noise_snr_db: float | None = None
                    ) -> tuple[np.ndarray, list[dict] | None]:
    """Waveform ``(N,)`` at ``SAMPLE_RATE`` and word times ``[{"word", "start", "end"}]`` (or ``None``)."""
    rng = np.random.default_rng([seed, zlib.crc32(utt.key.encode())])
    synth = synthesize_sentence(utt.voice, utt.sentence.spoken, len(utt.sentence.words),
                                seed=[seed, zlib.crc32(utt.key.encode()), 1])
    x, times = synth.audio, synth.word_times
    a, b = _active_range(x)
    if times:
        a = min(a, int(times[0][0] * SAMPLE_RATE))
        b = max(b, int(math.ceil(times[-1][1] * SAMPLE_RATE)))
    lead, tail = (int(rng.uniform(*EDGE_PAUSE_S) * SAMPLE_RATE) for _ in range(2))
    speech = x[a:b]
    x = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(tail, np.float32)])
    x = set_level(x, speech, rng, noise_snr_db, eps=1e-12)
    words = None
    if times:
        shift = (lead - a) / SAMPLE_RATE
        words = [{"word": w, "start": round(s + shift, 3), "end": round(e + shift, 3)}
                 for w, (s, e) in zip(utt.sentence.words, times)]
    return x.astype(np.float32), words


def _render_chunk(args: tuple[list[PlannedSentence], str, int, float | None]) -> list[str]:
    """Worker: render, write and record a chunk of utterances under ``root``; returns their keys."""
    chunk, root, seed, noise_snr_db = args
    root_path = Path(root)
    progress = root_path / PROGRESS_DIR
    for utt in chunk:
        audio, words = render_sentence(utt, seed, noise_snr_db)
        fd, tmp = tempfile.mkstemp(prefix=f"{utt.key}.", suffix=".flac", dir=progress)
        os.close(fd)
        write_audio(tmp, audio, SAMPLE_RATE)
        final = root_path / utt.rel_path
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        atomic_write_text(progress / f"{utt.key}.json", json.dumps({"words": words}) + "\n")
    return [u.key for u in chunk]


# ---------------------------------------------------------------------------------------------- writing

def _write_text_files(root: Path, plan: list[PlannedSentence], words: dict[str, list[dict] | None]) -> None:
    """Per-chapter ``.trans.txt`` and ``.align.txt`` (only utterances with word times), sorted by key."""
    chapters: dict[str, list[PlannedSentence]] = {}
    for utt in plan:
        chapters.setdefault(utt.chapter_dir, []).append(utt)
    for chapter_dir, utts in chapters.items():
        utts = sorted(utts, key=lambda u: u.key)
        stem = f"{utts[0].voice.speaker}-{CHAPTERS[utts[0].split]}"
        d = root / chapter_dir
        atomic_write_text(d / f"{stem}.trans.txt", "".join(f"{u.key} {u.sentence.text}\n" for u in utts))
        aligned = [u for u in utts if words.get(u.key)]
        align = d / f"{stem}.align.txt"
        if aligned:
            atomic_write_text(align, "".join(align_line(u.key, words[u.key]) for u in aligned))
        elif align.exists():
            align.unlink()


def _params(num_utts: int, seed: int, engines: list[str], heldout_voice: str | None, noise_snr_db: float | None,
            exclude: Iterable[str], min_words: int, max_words: int) -> dict:
    excluded = sorted({normalize_text(t) for t in exclude} - {""})
    digest = hashlib.sha256("\n".join(excluded).encode()).hexdigest()[:16] if excluded else None
    return {"format_version": FORMAT_VERSION, "num_utts": num_utts, "seed": seed, "engines": sorted(engines),
            "heldout_voice": heldout_voice, "noise_snr_db": noise_snr_db, "min_words": min_words,
            "max_words": max_words, "excluded_sentences": len(excluded), "excluded_sha256": digest}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def generate_sentence_corpus(out_dir: str | os.PathLike, num_utts: int, seed: int = 0,
                             engines: Iterable[str] = ENGINES, heldout_voice: str | None = None,
                             exclude: Iterable[str] = (), noise_snr_db: float | None = None,
                             num_workers: int = 2, progress: bool = True, wordnet_dir: str | os.PathLike | None = None,
                             min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> Path:
    """Generate (or finish) the sentence corpus in ``out_dir`` (layout in the module docstring).

    Args:
        num_utts: utterances in all splits together.
        seed: seeds the sentence order, speaker assignment, pauses, noise and piper's sampling.
        engines: ``espeak-ng``, ``flite``, ``piper`` (any subset).
        heldout_voice: voice spoken only in ``test-heldout`` (see :func:`heldout_voices`).
        exclude: sentences that must not be spoken (compared after normalisation).
        num_workers: synthesis processes (``<= 1`` runs in this process).

    Raises:
        UserError: ``out_dir`` holds something else; an engine, WordNet or enough sentences are missing.
    """
    out_dir = Path(out_dir)
    exclude = list(exclude)
    engines = sorted(set(engines))
    params = _params(num_utts, seed, engines, heldout_voice, noise_snr_db, exclude, min_words, max_words)
    progress_dir = out_dir / PROGRESS_DIR
    info = _read_json(out_dir / INFO_FILE)
    if info is not None and info.get("params") == params:
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()) and _read_json(progress_dir / PARAMS_FILE) != params:
        raise UserError(f"{out_dir} exists and is not a sentence corpus (finished or not) made with these "
                        f"parameters ({params}); remove it or choose another --out (nothing was changed)")
    plan = plan_sentences(num_utts, seed, engines, heldout_voice, exclude, wordnet_dir, min_words, max_words)
    check_engines(engines)
    progress_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(progress_dir / PARAMS_FILE, json.dumps(params, indent=2) + "\n")
    for leftover in progress_dir.glob("*.flac"):          # temporaries of an interrupted run
        leftover.unlink()
    todo = [u for u in plan if not (progress_dir / f"{u.key}.json").is_file() or not (out_dir / u.rel_path).is_file()]
    tasks = [(chunk, str(out_dir), seed, noise_snr_db) for chunk in speaker_chunks(todo, num_workers)]
    with tqdm(total=len(plan), initial=len(plan) - len(todo), desc="synthesize", unit="utt",
              disable=not progress) as bar, worker_results(_render_chunk, tasks, num_workers) as results:
        for done in results:
            bar.update(len(done))
    words = {u.key: (_read_json(progress_dir / f"{u.key}.json") or {}).get("words") for u in plan}
    _write_text_files(out_dir, plan, words)
    counts: dict[str, int] = {}
    for utt in plan:
        counts[utt.split] = counts.get(utt.split, 0) + 1
    timed: dict[str, list[int]] = {}
    for utt in plan:
        n = timed.setdefault(utt.voice.engine, [0, 0])
        n[0] += words[utt.key] is not None
        n[1] += 1
    info = {"params": params, "counts": counts, "text_source": "WordNet 3.0 usage examples (Debian wordnet-base)",
            "word_times": {e: {"with_times": a, "utterances": b} for e, (a, b) in sorted(timed.items())},
            "speakers": [dict(vars(v), split=sorted({u.split for u in plan if u.voice == v}))
                         for v in SENTENCE_VOICES if any(u.voice == v for u in plan)]}
    atomic_write_text(out_dir / INFO_FILE, json.dumps(info, indent=2) + "\n")
    shutil.rmtree(progress_dir, ignore_errors=True)
    return out_dir


def split_names(corpus_dir: str | os.PathLike) -> list[str]:
    """The split directories a finished corpus has, in the order train, dev, test, test-heldout."""
    corpus_dir = Path(corpus_dir)
    return [s for s in (*SPLITS, HELDOUT_SPLIT) if (corpus_dir / s).is_dir()]

