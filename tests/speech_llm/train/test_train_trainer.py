"""Trainer pieces that need no data: the LR schedule, precision choice, config comparison on resume."""

from __future__ import annotations

import math

import pytest

from speech_common.errors import UserError
from speech_llm.config import load_config
from speech_llm.train.trainer import WarmupCosine, config_differences, mixed_precision, resumable_keys


def test_warmup_then_cosine_to_a_tenth():
    f = WarmupCosine(warmup=4, total=14)
    assert [round(f(s), 3) for s in range(4)] == [0.2, 0.4, 0.6, 0.8]
    assert f(4) == pytest.approx(1.0)
    assert f(9) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(14) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(4, 20))


def test_precision_on_cpu():
    assert mixed_precision("auto", cpu=True) == "no"
    assert mixed_precision("fp32", cpu=True) == "no"
    with pytest.raises(UserError, match="bf16 needs a GPU"):
        mixed_precision("bf16", cpu=True)


def test_config_differences_name_the_keys_and_skip_resumable_ones():
    a = load_config(None, ["train.ctc.lr=1e-3", "train.ctc.max_steps=10"])
    b = load_config(None, ["train.ctc.lr=2e-3", "train.ctc.max_steps=20", "encoder.num_layers=2"])
    diff = config_differences(b, a, ignore=resumable_keys("ctc"))
    assert diff == ["encoder.num_layers: 4 -> 2", "train.ctc.lr: 0.001 -> 0.002"]
    # the other stages' sections never block resuming this one
    c = load_config(None, ["train.ctc.lr=1e-3", "train.llm.lr=5e-4", "train.mt.k=[2]"])
    assert config_differences(c, a, ignore=resumable_keys("ctc")) == []
    assert config_differences(c, a, ignore=resumable_keys("llm")) == ["train.llm.lr: 0.001 -> 0.0005"]
