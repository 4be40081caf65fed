"""What the two synthesized corpora share (:mod:`data_prep.synth`, words spoken one by one, and
:mod:`data_prep.sentence_corpus`, sentences spoken whole): split sizes, speakers spread over the splits,
worker units and their pool, the level and noise of an utterance, and the LibriSpeech-style ``.align.txt``
line.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import random
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from speech_common.errors import UserError

TARGET_RMS_DB = -20.0  # speech level of every utterance (dB full scale)
PEAK = 0.99  # an utterance that would clip is scaled down to this peak


def split_counts(num_utts: int, splits: Mapping[str, float]) -> dict[str, int]:
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


def assign_speakers(sentences: Sequence, counts: Mapping[str, int], speakers: Callable[[str], Sequence],
                    rng: random.Random) -> Iterator[tuple[int, str, object, int, object]]:
    """Each split (in the order of ``counts``) takes the next ``counts[split]`` sentences, spoken in turn by
    ``speakers(split)`` (voices, with ``.speaker``) from an offset drawn from ``rng``. Yields
    ``(split index, split, voice, n, sentence)``, ``n`` the number of earlier sentences of that voice in the
    split."""
    start = 0
    for split_idx, (split, count) in enumerate(counts.items()):
        voices = speakers(split)
        offset = rng.randrange(len(voices))
        per_speaker: dict[str, int] = {}
        for i, sentence in enumerate(sentences[start:start + count]):
            voice = voices[(offset + i) % len(voices)]
            n = per_speaker.get(voice.speaker, 0)
            per_speaker[voice.speaker] = n + 1
            yield split_idx, split, voice, n, sentence
        start += count


def speaker_chunks(plan: Sequence, num_workers: int) -> list[list]:
    """Work units of planned utterances (anything with ``.voice.speaker``), one speaker each so that a
    worker loads an engine or fills a word cache once per unit, a few units per worker, largest first."""
    by_voice: dict[str, list] = {}
    for utt in plan:
        by_voice.setdefault(utt.voice.speaker, []).append(utt)
    size = max(1, math.ceil(len(plan) / (4 * max(1, num_workers))))
    chunks = [utts[i:i + size] for utts in by_voice.values() for i in range(0, len(utts), size)]
    return sorted(chunks, key=len, reverse=True)


@contextlib.contextmanager
def worker_results(worker: Callable, tasks: Sequence, num_workers: int) -> Iterator[Iterator]:
    """The results of ``worker`` on each task, in this process when ``num_workers <= 1`` or there is one task,
    else from a pool of ``num_workers`` processes (forked where possible) in completion order; the pool is
    ended when the ``with`` block is left, also on an error or an interruption."""
    if num_workers <= 1 or len(tasks) <= 1:
        yield map(worker, tasks)
        return
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    pool = ctx.Pool(num_workers)
    try:
        yield pool.imap_unordered(worker, tasks)
    finally:
        pool.terminate()
        pool.join()


def set_level(x: np.ndarray, speech: np.ndarray, rng: np.random.Generator, noise_snr_db: float | None,
              eps: float = 0.0) -> np.ndarray:
    """An utterance (N,) float32 at its level: scaled (in place) so that its ``speech`` samples (M,) have
    :data:`TARGET_RMS_DB` (``eps`` is added to their power), white noise from ``rng`` added
    ``noise_snr_db`` below that (None: none), then scaled down to :data:`PEAK` if it would clip."""
    x *= 10 ** (TARGET_RMS_DB / 20) / math.sqrt(float(np.mean(speech ** 2)) + eps)
    if noise_snr_db is not None:
        noise_power = 10 ** ((TARGET_RMS_DB - noise_snr_db) / 10)  # speech power is now TARGET_RMS_DB
        x += rng.standard_normal(len(x)).astype(np.float32) * math.sqrt(noise_power)
    peak = float(np.abs(x).max())
    if peak > PEAK:
        x *= PEAK / peak
    return x


def align_line(key: str, words: list[dict]) -> str:
    """``.align.txt`` line of an utterance: ``KEY WORD:start:end ...`` (seconds, 3 decimals), newline-ended."""
    return f"{key} " + " ".join(f"{w['word']}:{w['start']:.3f}:{w['end']:.3f}" for w in words) + "\n"
