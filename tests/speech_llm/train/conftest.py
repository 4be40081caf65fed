"""Fixtures for the training tests (the toy experiment itself is in ../conftest.py, shared with the decode-side
tests)."""

from __future__ import annotations

import pytest

LLM_LR = "train.llm.lr=1e-2"
"""The tiny random LLM stage learns fast at a higher rate than the toy default."""


@pytest.fixture(scope="session", autouse=True)
def _tiny_training(one_thread, fbank_once):
    """Every training test: one torch thread, each audio file's fbank computed once (../conftest.py)."""
    yield
