"""The synthetic speech corpus: seeded sentences spoken by espeak-ng and flite, in LibriSpeech layout.

Usage (through the console script):
    speech-llm prepare synth --out corpora/synth --num-utts 2000 --seed 0 [--noise-snr 20]

Layout written (read by :func:`data_prep.librispeech.prepare_librispeech` like LibriSpeech itself)::

    <out>/corpus.json                                      parameters, speakers, counts
    <out>/<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac        16 kHz, 16 bit
    <out>/<split>/<spk>/<chapter>/<spk>-<chapter>.trans.txt         <key> <UPPER CASE TEXT>
    <out>/<split>/<spk>/<chapter>/<spk>-<chapter>.align.txt         <key> WORD:start:end ...
    <out>/<split>/<spk>/<chapter>/<spk>-<chapter>.trans.fr.txt      <key> <French translation>
    <out>/<split>/<spk>/<chapter>/<spk>-<chapter>.trans.de.txt      <key> <German translation>

Splits are ``train``/``dev``/``test`` (80/10/10 by default); every utterance has its own sentence, so the
splits share no sentence. Speakers are the voice settings of :data:`data_prep.voices.VOICES`; unlike
LibriSpeech, the same voices appear in every split (chapter ``100`` holds a speaker's train utterances,
``200`` dev, ``300`` test), so dev/test measure unseen sentences, not unseen speakers.

How the audio is made, and why the word times are exact: every word is synthesized on its own (and
cached per speaker), its leading and trailing silence trimmed, and the words are concatenated with
seeded pauses (60-140 ms between words, 150-300 ms at the ends). A word's start and end time is
therefore where its samples were placed. The speech is clean and consistent (no coarticulation across
words; a speaker says a given word the same way every time), which is what a small CTC encoder needs
to reach a low WER. Optional white noise is added at ``noise_snr_db`` relative to the speech power.
Everything depends only on the seed (not on the number of workers): the same seed gives the same
transcripts, and the same samples with the same espeak-ng/flite versions.

The corpus is built in a temporary directory and renamed into place when complete. An existing
``<out>`` made with the same parameters is kept as it is (the call is a no-op); any other existing,
non-empty ``<out>`` is refused, so nothing is overwritten.
"""

from __future__ import annotations

import json
import os
import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_prep.audio import write_audio
from data_prep.fileutil import staged_dir
from data_prep.sentences import LANGUAGES, Sentence, generate_sentences
from data_prep.synth_common import align_line, assign_speakers, set_level, speaker_chunks, split_counts, worker_results
from data_prep.voices import VOICES, Voice, check_engines, synthesize, trim_silence
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError

DEFAULT_SPLITS: dict[str, float] = {"train": 0.8, "dev": 0.1, "test": 0.1}
INFO_FILE = "corpus.json"
FORMAT_VERSION = 1

EDGE_PAUSE_S = (0.15, 0.30)
WORD_PAUSE_S = (0.06, 0.14)
MAX_UTTS_PER_CHAPTER = 10000


@dataclass(frozen=True)
class PlannedUtterance:
    """What one utterance of the corpus will be: where it goes, who says it, what is said."""

    key: str
    split: str
    voice: Voice
    chapter: str
    sentence: Sentence

    @property
    def rel_path(self) -> str:
        """``<split>/<spk>/<chapter>/<key>.flac`` relative to the corpus root."""
        return f"{self.split}/{self.voice.speaker}/{self.chapter}/{self.key}.flac"


def plan_corpus(num_utts: int, seed: int, splits: Mapping[str, float] = DEFAULT_SPLITS,
                voices: tuple[Voice, ...] = VOICES) -> list[PlannedUtterance]:
    """The corpus as a list of planned utterances (no audio yet), fully determined by the arguments.

    Each split takes a disjoint slice of ``num_utts`` distinct sentences; speakers are spread evenly
    over each split starting from a seeded offset.
    """
    if num_utts <= 0:
        raise UserError(f"--num-utts must be positive, got {num_utts}")
    sentences = generate_sentences(num_utts, seed)
    rng = random.Random(seed * 7919 + 17)
    plan: list[PlannedUtterance] = []
    counts = split_counts(num_utts, splits)
    for split_idx, split, voice, n, sentence in assign_speakers(sentences, counts, lambda _: voices, rng):
        chapter = str(100 * (split_idx + 1) + n // MAX_UTTS_PER_CHAPTER)
        key = f"{voice.speaker}-{chapter}-{n % MAX_UTTS_PER_CHAPTER:04d}"
        plan.append(PlannedUtterance(key, split, voice, chapter, sentence))
    return plan


# --------------------------------------------------------------------------------------- rendering

_WORD_CACHE: dict[tuple[Voice, str], np.ndarray] = {}


def _word_audio(voice: Voice, word: str) -> np.ndarray:
    """Trimmed float32 ``(N,)`` audio of one word (cached per worker process)."""
    key = (voice, word)
    if key not in _WORD_CACHE:
        audio = trim_silence(synthesize(voice, word.lower()))
        if audio.size == 0:
            raise UserError(f"{voice.engine} produced silence for the word {word!r} (speaker {voice.speaker})")
        _WORD_CACHE[key] = audio
    return _WORD_CACHE[key]


def render(utt: PlannedUtterance, seed: int, noise_snr_db: float | None = None) -> tuple[np.ndarray, list[dict]]:
    """Waveform ``(N,)`` at ``SAMPLE_RATE`` and word times ``[{"word", "start", "end"}]`` of an utterance."""
    rng = np.random.default_rng([seed, zlib.crc32(utt.key.encode())])
    pieces: list[np.ndarray] = []
    words: list[dict] = []
    spans: list[tuple[int, int]] = []
    pos = 0

    def pause(lo_hi: tuple[float, float]) -> None:
        nonlocal pos
        n = int(rng.uniform(*lo_hi) * SAMPLE_RATE)
        pieces.append(np.zeros(n, dtype=np.float32))
        pos += n

    pause(EDGE_PAUSE_S)
    for i, word in enumerate(utt.sentence.words):
        if i:
            pause(WORD_PAUSE_S)
        audio = _word_audio(utt.voice, word)
        pieces.append(audio)
        spans.append((pos, pos + len(audio)))
        words.append({"word": word, "start": round(pos / SAMPLE_RATE, 3),
                      "end": round((pos + len(audio)) / SAMPLE_RATE, 3)})
        pos += len(audio)
    pause(EDGE_PAUSE_S)
    x = np.concatenate(pieces)
    x = set_level(x, np.concatenate([x[a:b] for a, b in spans]), rng, noise_snr_db)
    return x.astype(np.float32), words


def _render_chunk(args: tuple[list[PlannedUtterance], str, int, float | None]) -> list[tuple[str, list[dict]]]:
    """Worker: render and write a chunk of utterances under ``root``; returns ``(key, words)`` pairs."""
    chunk, root, seed, noise_snr_db = args
    out = []
    for utt in chunk:
        audio, words = render(utt, seed, noise_snr_db)
        write_audio(Path(root) / utt.rel_path, audio, SAMPLE_RATE)
        out.append((utt.key, words))
    return out


# ---------------------------------------------------------------------------------------- writing

def _write_text_files(root: Path, plan: list[PlannedUtterance], words: dict[str, list[dict]]) -> None:
    """Per-chapter ``.trans.txt``, ``.align.txt`` and ``.trans.<lang>.txt``, lines sorted by key."""
    chapters: dict[tuple[str, str, str], list[PlannedUtterance]] = {}
    for utt in plan:
        chapters.setdefault((utt.split, utt.voice.speaker, utt.chapter), []).append(utt)
    for (split, spk, chapter), utts in chapters.items():
        d = root / split / spk / chapter
        utts = sorted(utts, key=lambda u: u.key)
        stem = f"{spk}-{chapter}"
        (d / f"{stem}.trans.txt").write_text("".join(f"{u.key} {u.sentence.text}\n" for u in utts))
        (d / f"{stem}.align.txt").write_text("".join(align_line(u.key, words[u.key]) for u in utts))
        for lang in LANGUAGES:
            (d / f"{stem}.trans.{lang}.txt").write_text(
                "".join(f"{u.key} {u.sentence.translation[lang]}\n" for u in utts), encoding="utf-8")


def _params(num_utts: int, seed: int, noise_snr_db: float | None, splits: Mapping[str, float]) -> dict:
    return {"format_version": FORMAT_VERSION, "num_utts": num_utts, "seed": seed,
            "noise_snr_db": noise_snr_db, "splits": dict(splits)}


def _existing_params(corpus_dir: Path) -> dict | None:
    try:
        return json.loads((corpus_dir / INFO_FILE).read_text()).get("params")
    except (OSError, ValueError, AttributeError):
        return None


def generate_corpus(out_dir: str | os.PathLike, num_utts: int, seed: int, noise_snr_db: float | None = None,
                    splits: Mapping[str, float] = DEFAULT_SPLITS, num_workers: int = 2,
                    progress: bool = True) -> Path:
    """Generate the synthetic corpus into ``out_dir`` (layout in the module docstring); returns ``out_dir``.

    Args:
        out_dir: corpus root; must not exist, be empty, or hold a corpus made with the same parameters.
        num_utts: total number of utterances (each with a distinct sentence).
        seed: seeds sentences, speaker assignment, pauses and noise.
        noise_snr_db: add white noise at this SNR (dB); ``None`` for clean speech.
        splits: ``{split: share}``; shares are normalized.
        num_workers: synthesis processes (``<= 1`` runs in this process).

    Raises:
        UserError: ``out_dir`` holds something else, a synthesizer is missing or fails.
    """
    out_dir = Path(out_dir)
    params = _params(num_utts, seed, noise_snr_db, splits)
    if out_dir.exists() and any(out_dir.iterdir()):
        if _existing_params(out_dir) == params:
            return out_dir
        raise UserError(f"{out_dir} exists and is not a synthetic corpus made with these parameters "
                        f"({params}); remove it or choose another --out (nothing was changed)")
    check_engines()
    plan = plan_corpus(num_utts, seed, splits)
    words: dict[str, list[dict]] = {}
    with staged_dir(out_dir) as root:
        tasks = [(chunk, str(root), seed, noise_snr_db) for chunk in speaker_chunks(plan, num_workers)]
        with tqdm(total=len(plan), desc="synthesize", unit="utt", disable=not progress) as bar, \
                worker_results(_render_chunk, tasks, num_workers) as results:
            for done in results:
                words.update(done)
                bar.update(len(done))
        _write_text_files(root, plan, words)
        counts: dict[str, int] = {}
        for utt in plan:
            counts[utt.split] = counts.get(utt.split, 0) + 1
        info = {"params": params, "counts": counts,
                "speakers": [vars(v) for v in VOICES if any(u.voice == v for u in plan)]}
        (root / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return out_dir
