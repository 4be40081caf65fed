"""Training data: manifest records -> features (fbank or Whisper log-mel) on the fly -> duration-bucketed,
padded batches.

* :func:`load_manifest` reads a JSONL manifest (DESIGN.md §5) named by a config key, with errors naming
  that key and the file.
* :class:`FbankDataset` reads one utterance's audio and computes its features ``(T, F)`` when asked (the
  encoder's front end: fbank or Whisper log-mel); a
  missing or corrupt audio file raises a :class:`~speech_common.errors.UserError` naming the manifest, the
  utterance and the file. Small data sets (all features under ``cache_mb``) keep the features in memory
  after the first epoch (in the main process only: with loader workers nothing is cached).
* :class:`BucketBatchSampler` groups utterances of similar duration into batches under a frame budget
  (``B * max_T <= max_frames``, padding included). The batches of an epoch depend only on
  ``(seed, epoch)``, so the position inside an epoch is just a batch count: resuming at
  ``set_epoch(epoch, start=k)`` yields exactly the batches an uninterrupted run would have seen next.
  With several processes each rank takes every ``num_replicas``-th batch.
* :func:`collate` pads a list of items into a :class:`dict` batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from data_prep.audio import read_audio
from data_prep.manifest import read_manifest
from encoders.constants import NUM_MEL_BINS, SAMPLE_RATE
from encoders.frontend import compute_fbank, num_frames
from speech_common.errors import UserError

CACHE_MB = 512
"""Default memory budget for caching the features of a small data set (float32 fbank or Whisper log-mel)."""
JITTER = 0.1
"""Relative noise on the sort key, so that bucket contents change from epoch to epoch."""


def load_manifest(path: str | None, key: str) -> list[dict]:
    """Records of the manifest at ``path``, which config key ``key`` (``data.train_manifest``) names."""
    if not path:
        raise UserError(f"config key '{key}' is not set: give the JSONL manifest to use "
                        f"(e.g. {key}=data/x.jsonl)")
    if not Path(path).is_file():
        raise UserError(f"{key}: manifest not found: {path}")
    records = read_manifest(path)
    if not records:
        raise UserError(f"{key}: manifest {path} holds no utterances")
    return records


def record_frames(record: dict) -> int:
    """Feature frames of a record (10 ms frames: fbank or Whisper log-mel, about the same count), from its
    duration (for bucketing; the audio is not read)."""
    return num_frames(int(round(float(record["duration"]) * SAMPLE_RATE)))


class FbankDataset(Dataset):
    """Items ``{"index": i, "key": str, "feats": (T, F) float32}`` computed from each record's audio.

    Args:
        records: manifest records (``key``, ``audio``, ``duration``, ...).
        source: the manifest's name, for error messages.
        cache_mb: keep computed features in memory when all of them fit in this many MB (0 = never).
        features: ``(N,) samples -> (T, F)``, the encoder's offline features
            (:func:`speech_llm.model.build.feature_fn`); default 80-bin fbank.
    """

    def __init__(self, records: list[dict], source: str, cache_mb: float = CACHE_MB,
                 features: Callable[[torch.Tensor], torch.Tensor] = compute_fbank):
        self.records = records
        self.source = source
        self.compute = features
        size_mb = sum(record_frames(r) for r in records) * NUM_MEL_BINS * 4 / 2**20
        self._cache: dict[int, torch.Tensor] | None = {} if size_mb <= cache_mb else None

    def __len__(self) -> int:
        return len(self.records)

    def features(self, index: int) -> torch.Tensor:
        """(T, F) features (fbank or Whisper log-mel) of utterance ``index`` (from the cache when there)."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        rec = self.records[index]
        try:
            samples = read_audio(rec["audio"])
        except UserError as e:
            raise UserError(f"{self.source}: utterance {rec['key']}: {e}") from None
        feats = self.compute(torch.from_numpy(samples))
        if feats.size(0) == 0:
            raise UserError(f"{self.source}: utterance {rec['key']}: audio {rec['audio']} is shorter than "
                            "one 25 ms analysis window")
        if self._cache is not None and torch.utils.data.get_worker_info() is None:
            self._cache[index] = feats
        return feats

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "key": self.records[index]["key"], "feats": self.features(index)}


def pad_field(items: list[dict], name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Each item's ``name`` (T_i, D) zero-padded into (B, max T_i, D), with the lengths (B,)."""
    lens = torch.tensor([it[name].size(0) for it in items], dtype=torch.long)
    out = torch.zeros(len(items), int(lens.max()), items[0][name].size(1))
    for b, it in enumerate(items):
        out[b, : it[name].size(0)] = it[name]
    return out, lens


def collate(items: list[dict]) -> dict:
    """Pad items into a batch: ``feats`` (B, T, F) zero-padded, ``feat_lens`` (B,), ``indices`` (B,),
    ``keys``."""
    feats, lens = pad_field(items, "feats")
    return {"feats": feats, "feat_lens": lens, "indices": torch.tensor([it["index"] for it in items]),
            "keys": [it["key"] for it in items]}


def make_batches(frames: list[int], max_frames: int, order: list[int]) -> list[list[int]]:
    """Greedy batches over ``order`` (ascending length): add while ``len * longest <= max_frames``.

    An utterance longer than the budget on its own gets a batch of its own.
    """
    batches: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        new_longest = max(longest, frames[i])
        if cur and (len(cur) + 1) * new_longest > max_frames:
            batches.append(cur)
            cur, new_longest = [], frames[i]
        cur.append(i)
        longest = new_longest
    if cur:
        batches.append(cur)
    return batches


class BucketBatchSampler(Sampler[list[int]]):
    """Duration-bucketed batches under a frame budget, resumable by position (see the module docstring).

    Args:
        frames: feature frames of each utterance (:func:`record_frames`).
        max_frames: budget per batch, padding included.
        shuffle: jitter the lengths and shuffle the batch order each epoch (training); else sorted batches.
        seed: with the epoch, fixes every random choice.
        num_replicas, rank: data-parallel processes; each takes every ``num_replicas``-th batch (the batch
            list is padded by repetition to a multiple of ``num_replicas``).
    """

    def __init__(self, frames: list[int], max_frames: int, shuffle: bool = True, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0):
        if max_frames <= 0:
            raise ValueError(f"max_frames must be positive, got {max_frames}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, {num_replicas})")
        self.frames = list(frames)
        self.max_frames = max_frames
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch``, in order."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        n = len(self.frames)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch])
            keys = np.asarray(self.frames, dtype=np.float64) * (1.0 + JITTER * rng.uniform(-1.0, 1.0, n))
            order = np.argsort(keys, kind="stable").tolist()
        else:
            order = sorted(range(n), key=lambda i: self.frames[i])
        batches = make_batches(self.frames, self.max_frames, order)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.num_replicas > 1 and batches:
            total = math.ceil(len(batches) / self.num_replicas) * self.num_replicas
            batches = (batches * math.ceil(total / len(batches)))[:total]
            batches = batches[self.rank::self.num_replicas]
        self._cache = (epoch, batches)
        return batches

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate over ``epoch``'s batches from batch ``start`` on (``start`` = batches already consumed)."""
        self.epoch, self.start = epoch, start

    def __iter__(self):
        yield from self.batches(self.epoch)[self.start:]

    def __len__(self) -> int:
        return max(0, len(self.batches(self.epoch)) - self.start)
