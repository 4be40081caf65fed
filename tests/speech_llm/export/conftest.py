"""Fixtures of the ONNX export tests: tiny random-weight speech LLMs (tests/speech_llm/tiny_speech_llm.py),
their torch recognizers (endpointing off: the runtime decodes one segment per stream) and export dirs."""

from __future__ import annotations

import pytest
from runtime_testutil import WHISPER_POSITIONS, decode_config, whisper_config
from tiny_speech_llm import make_speech_llm

from speech_common.export_dir import INT8_PARTS
from speech_llm.decoding.recognizer import Recognizer
from speech_llm.export import export_recognizer


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
    return export_recognizer(torch_rec, tmp_path_factory.mktemp("onnx") / "export", int8=True, int8_parts=INT8_PARTS)


@pytest.fixture(scope="session")
def windowed_rec(tiny_llm_dir, one_thread):
    """Another shape: a fixed attention window (left_chunks=1), 8-frame chunks, stack 4."""
    model, tok = make_speech_llm(tiny_llm_dir, chunk_frames=8, stack=4, seed=3)
    model.left_chunks = 1
    return Recognizer(model, tok, decode_config(read_ahead_chunks=1))


@pytest.fixture(scope="session")
def windowed_export(windowed_rec, tmp_path_factory):
    return export_recognizer(windowed_rec, tmp_path_factory.mktemp("onnx") / "windowed")


# ---------------------------------------------------------------------------------------------- Whisper + vocab
@pytest.fixture(scope="session")
def whisper_dir(tmp_path_factory):
    """A tiny random Whisper (2 encoder layers of 32, 80 mel bins) saved like a hub checkpoint, with
    non-trivial biases and norms so that a miswired weight shows, and a strong first convolution so that
    the audio, not the position table, dominates what its random encoder writes."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=64, num_mel_bins=80, d_model=32, encoder_layers=2, encoder_attention_heads=4,
                           encoder_ffn_dim=64, decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=64,
                           max_source_positions=WHISPER_POSITIONS, max_target_positions=16, pad_token_id=0,
                           bos_token_id=1, eos_token_id=1, decoder_start_token_id=2, begin_suppress_tokens=None)
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
        model.model.encoder.conv1.weight.mul_(20.0)
    path = tmp_path_factory.mktemp("tiny_whisper")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def whisper_rec(tiny_llm_dir, whisper_dir, one_thread):
    """Whisper encoder (unlimited left context, 8-frame chunks) + VocabProjector (stack 4) + the tiny Llama."""
    import torch

    from speech_llm.model.build import build_speech_llm

    torch.manual_seed(5)
    model, tok = build_speech_llm(whisper_config(tiny_llm_dir, whisper_dir), adapters=False)
    return Recognizer(model.eval(), tok, decode_config())


@pytest.fixture(scope="session")
def whisper_export(whisper_rec, tmp_path_factory):
    return export_recognizer(whisper_rec, tmp_path_factory.mktemp("onnx") / "whisper", int8=True, int8_parts=INT8_PARTS)
