"""Fixtures of the ONNX export tests: tiny random-weight speech LLMs (tests/speech_llm/tiny_speech_llm.py),
their torch recognizers (endpointing off: the runtime decodes one segment per stream) and export dirs."""

from __future__ import annotations

import pytest
from tiny_speech_llm import make_speech_llm

from speech_llm.config import DecodeConfig, EndpointConfig
from speech_llm.decoding.recognizer import Recognizer
from speech_llm.export import export_recognizer


def decode_config(**kw) -> DecodeConfig:
    return DecodeConfig(max_tokens_per_read=3, max_tokens_per_segment=60, endpoint=EndpointConfig(enabled=False),
                        **kw)


@pytest.fixture(scope="session")
def torch_rec(tiny_llm_dir, one_thread):
    """Conformer (unlimited left context, 4-frame chunks, stack 2) + the tiny Llama, with a random CMVN."""
    import torch

    from encoders.frontend import GlobalCMVN

    model, tok = make_speech_llm(tiny_llm_dir)
    g = torch.Generator().manual_seed(1)
    model.cmvn = GlobalCMVN(torch.randn(80, generator=g) + 10.0, torch.rand(80, generator=g) * 2 + 1.0)
    return Recognizer(model, tok, decode_config())


@pytest.fixture(scope="session")
def export_dir(torch_rec, tmp_path_factory):
    return export_recognizer(torch_rec, tmp_path_factory.mktemp("onnx") / "export", int8=True)


@pytest.fixture(scope="session")
def windowed_rec(tiny_llm_dir, one_thread):
    """Another shape: a fixed attention window (left_chunks=1), 8-frame chunks, stack 4."""
    model, tok = make_speech_llm(tiny_llm_dir, chunk_frames=8, stack=4, seed=3)
    model.left_chunks = 1
    return Recognizer(model, tok, decode_config(read_ahead_chunks=1))


@pytest.fixture(scope="session")
def windowed_export(windowed_rec, tmp_path_factory):
    return export_recognizer(windowed_rec, tmp_path_factory.mktemp("onnx") / "windowed")
