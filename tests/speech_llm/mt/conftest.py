"""Fixtures for text translation: a tiny base LLM that knows the toy English and French, and one wait-k
model trained from it with ``run_mt_stage`` (the shared trainer), used by the decode and CLI tests."""

from __future__ import annotations

import pytest
from mt_testutil import PAIRS, mt_config

from speech_llm.mt import load_mt_model
from speech_llm.mt.train import run_mt_stage
from speech_llm.train.toy import make_toy_llm


@pytest.fixture(scope="session")
def mt_root(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("mt")
    # tokenizer + a 64-wide Qwen2 in base/, pre-trained as an LM on both languages (a base LLM knows its
    # languages; a random one needs far more than a test's steps to write words)
    make_toy_llm(root / "base", [x for pair in PAIRS for x in pair] * 4, pretrain_steps=200, hidden_size=64)
    return root


@pytest.fixture(scope="session")
def trained_run(mt_root):
    """(exp dir, TrainResult) of 60 wait-k full fine-tuning steps on 50 English -> French pairs."""
    exp = mt_root / "exp"
    result = run_mt_stage(mt_config(mt_root / "base"), exp, pairs=PAIRS, resume=False, cpu=True,
                          progress_bar=False)
    return exp, result


@pytest.fixture(scope="session")
def trained(trained_run):
    return load_mt_model(trained_run[0])
