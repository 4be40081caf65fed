"""Training data: bucketed batches under a frame budget, resumable position, sharding, audio errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data_prep.audio import write_audio
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError
from speech_llm.train.data import BucketBatchSampler, FbankDataset, collate, load_manifest, make_batches

FRAMES = [120, 300, 80, 410, 250, 260, 90, 500, 330, 150, 220, 400, 180, 610, 70, 280]


def test_batches_respect_the_frame_budget_and_cover_every_utterance():
    sampler = BucketBatchSampler(FRAMES, max_frames=1000, shuffle=True, seed=3)
    for epoch in range(3):
        batches = sampler.batches(epoch)
        assert sorted(i for b in batches for i in b) == list(range(len(FRAMES)))
        for b in batches:
            assert len(b) == 1 or len(b) * max(FRAMES[i] for i in b) <= 1000
    assert sampler.batches(0) != sampler.batches(1)  # reshuffled per epoch
    again = BucketBatchSampler(FRAMES, max_frames=1000, shuffle=True, seed=3)
    assert again.batches(1) == sampler.batches(1)  # a function of (seed, epoch) only


def test_a_too_long_utterance_gets_its_own_batch():
    assert make_batches([100, 5000, 100], 1000, [0, 2, 1]) == [[0, 2], [1]]


def test_resuming_mid_epoch_yields_the_remaining_batches():
    full = BucketBatchSampler(FRAMES, 900, seed=1)
    full.set_epoch(2)
    everything = list(full)
    resumed = BucketBatchSampler(FRAMES, 900, seed=1)
    resumed.set_epoch(2, start=3)
    assert list(resumed) == everything[3:]
    assert len(resumed) == len(everything) - 3


def test_ranks_share_the_batches_evenly():
    world = [BucketBatchSampler(FRAMES, 700, seed=0, num_replicas=3, rank=r) for r in range(3)]
    parts = [w.batches(0) for w in world]
    assert len({len(p) for p in parts}) == 1
    seen = {i for p in parts for b in p for i in b}
    assert seen == set(range(len(FRAMES)))


def test_validation_batches_are_sorted_and_fixed():
    s = BucketBatchSampler(FRAMES, 1000, shuffle=False)
    flat = [i for b in s.batches(0) for i in b]
    assert [FRAMES[i] for i in flat] == sorted(FRAMES)
    assert s.batches(5) == s.batches(0)


def _records(tmp_path):
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    write_audio(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 300 * t))
    (tmp_path / "b.wav").write_bytes(b"RIFF garbage, not audio")
    return [{"key": "utt-a", "audio": str(tmp_path / "a.wav"), "duration": 0.5, "text": "A", "speaker": "s"},
            {"key": "utt-b", "audio": str(tmp_path / "b.wav"), "duration": 0.5, "text": "B", "speaker": "s"}]


def test_dataset_features_and_collate(tmp_path):
    ds = FbankDataset(_records(tmp_path)[:1], "test manifest")
    item = ds[0]
    assert item["feats"].shape == (50, 80) and item["key"] == "utt-a"
    batch = collate([item, {"index": 1, "key": "x", "feats": torch.ones(20, 80)}])
    assert batch["feats"].shape == (2, 50, 80)
    assert batch["feat_lens"].tolist() == [50, 20]
    assert batch["feats"][1, 20:].abs().sum() == 0  # zero padding


def test_corrupt_audio_names_manifest_utterance_and_file(tmp_path):
    ds = FbankDataset(_records(tmp_path), "data.train_manifest m.jsonl")
    with pytest.raises(UserError, match=r"data.train_manifest m.jsonl: utterance utt-b: .*b\.wav"):
        ds[1]


def test_load_manifest_errors_name_the_config_key(tmp_path):
    with pytest.raises(UserError, match="'data.valid_manifest' is not set"):
        load_manifest(None, "data.valid_manifest")
    with pytest.raises(UserError, match="data.train_manifest: manifest not found: .*missing.jsonl"):
        load_manifest(str(tmp_path / "missing.jsonl"), "data.train_manifest")
    good = tmp_path / "m.jsonl"
    good.write_text(json.dumps(_records(tmp_path)[0]) + "\n")
    assert load_manifest(str(good), "data.train_manifest")[0]["key"] == "utt-a"
