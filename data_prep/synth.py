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
import math
import multiprocessing as mp
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
from data_prep.voices import VOICES, Voice, check_engines, synthesize, trim_silence
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError

DEFAULT_SPLITS: dict[str, float] = {"train": 0.8, "dev": 0.1, "test": 0.1}
INFO_FILE = "corpus.json"
FORMAT_VERSION = 1

EDGE_PAUSE_S = (0.15, 0.30)
WORD_PAUSE_S = (0.06, 0.14)
TARGET_RMS_DB = -20.0
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


def _split_counts(num_utts: int, splits: Mapping[str, float]) -> dict[str, int]:
    """Utterances per split by largest remainder; every split with a share gets one when possible."""
    if not splits or any(p < 0 for p in splits.values()) or sum(splits.values()) <= 0:
        raise UserError(f"bad split proportions {dict(splits)} (want non-negative shares, sum > 0)")
    total = sum(splits.values())
    raw = {s: num_utts * p / total for s, p in splits.items()}
    counts = {s: math.floor(r) for s, r in raw.items()}
    for s in sorted(raw, key=lambda s: counts[s] - raw[s])[: num_utts - sum(counts.values())]:
        counts[s] += 1
    for s in splits:
        while splits[s] > 0 and counts[s] == 0 and num_utts >= len(splits):
            donor = max(counts, key=counts.get)
            counts[donor] -= 1
            counts[s] += 1
    return counts


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
    start = 0
    for split_idx, (split, count) in enumerate(_split_counts(num_utts, splits).items()):
        offset = rng.randrange(len(voices))
        per_speaker: dict[str, int] = {}
        for i, sentence in enumerate(sentences[start:start + count]):
            voice = voices[(offset + i) % len(voices)]
            n = per_speaker.get(voice.speaker, 0)
            per_speaker[voice.speaker] = n + 1
            chapter = str(100 * (split_idx + 1) + n // MAX_UTTS_PER_CHAPTER)
            key = f"{voice.speaker}-{chapter}-{n % MAX_UTTS_PER_CHAPTER:04d}"
            plan.append(PlannedUtterance(key, split, voice, chapter, sentence))
        start += count
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
    speech = np.concatenate([x[a:b] for a, b in spans])
    power = float(np.mean(speech ** 2))
    x *= 10 ** (TARGET_RMS_DB / 20) / math.sqrt(power)
    if noise_snr_db is not None:
        noise_power = 10 ** ((TARGET_RMS_DB - noise_snr_db) / 10)  # speech power is now TARGET_RMS_DB
        x += rng.standard_normal(len(x)).astype(np.float32) * math.sqrt(noise_power)
    peak = float(np.abs(x).max())
    if peak > 0.99:
        x *= 0.99 / peak
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


def _chunks(plan: list[PlannedUtterance], num_workers: int) -> list[list[PlannedUtterance]]:
    """Work units grouped by speaker (so each worker's word cache is reused), a few per worker."""
    by_voice: dict[str, list[PlannedUtterance]] = {}
    for utt in plan:
        by_voice.setdefault(utt.voice.speaker, []).append(utt)
    size = max(1, math.ceil(len(plan) / (4 * max(1, num_workers))))
    chunks = [utts[i:i + size] for utts in by_voice.values() for i in range(0, len(utts), size)]
    return sorted(chunks, key=len, reverse=True)


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
        (d / f"{stem}.align.txt").write_text("".join(
            f"{u.key} " + " ".join(f"{w['word']}:{w['start']:.3f}:{w['end']:.3f}" for w in words[u.key]) + "\n"
            for u in utts))
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
        tasks = [(chunk, str(root), seed, noise_snr_db) for chunk in _chunks(plan, num_workers)]
        with tqdm(total=len(plan), desc="synthesize", unit="utt", disable=not progress) as bar:
            if num_workers <= 1:
                results = map(_render_chunk, tasks)
                pool = None
            else:
                ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
                pool = ctx.Pool(num_workers)
                results = pool.imap_unordered(_render_chunk, tasks)
            try:
                for done in results:
                    words.update(done)
                    bar.update(len(done))
            finally:
                if pool is not None:
                    pool.terminate()
                    pool.join()
        _write_text_files(root, plan, words)
        counts: dict[str, int] = {}
        for utt in plan:
            counts[utt.split] = counts.get(utt.split, 0) + 1
        info = {"params": params, "counts": counts,
                "speakers": [vars(v) for v in VOICES if any(u.voice == v for u in plan)]}
        (root / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return out_dir
