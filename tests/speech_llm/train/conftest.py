"""Fixtures for the training tests (the toy experiment itself is in ../conftest.py, shared with the decode-side
tests)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _tiny_training(one_thread, fbank_once):
    """Every training test: one torch thread, each audio file's fbank computed once (../conftest.py)."""
    yield


@pytest.fixture(scope="session")
def whisper_dir(tmp_path_factory):
    """A tiny random Whisper (2 encoder layers of 32) saved like a hub checkpoint."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=64, num_mel_bins=80, d_model=32, encoder_layers=2, encoder_attention_heads=4,
                           encoder_ffn_dim=64, decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=64,
                           max_source_positions=1500, max_target_positions=16, pad_token_id=0, bos_token_id=1,
                           eos_token_id=1, decoder_start_token_id=2, begin_suppress_tokens=None)
    path = tmp_path_factory.mktemp("tiny_whisper")
    WhisperForConditionalGeneration(config).save_pretrained(path)
    return path
