"""Fixtures for data_prep tests: a tiny LibriSpeech-format corpus of tones, and a 30-utterance synthetic one."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_prep_testutil import make_tiny_corpus


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A LibriSpeech-format corpus root holding ``dev-clean`` with 5 utterances (2 speakers)."""
    make_tiny_corpus(tmp_path / "LibriSpeech")
    return tmp_path / "LibriSpeech"


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 synthetic utterances (seed 0) generated once per test session with two workers."""
    from data_prep.synth import generate_corpus

    return generate_corpus(tmp_path_factory.mktemp("synth") / "corpus", num_utts=30, seed=0, num_workers=2,
                           progress=False)
