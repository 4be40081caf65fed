"""A tiny random-weight SpeechLLM for tests (outputs arbitrary but deterministic), built by the production
assembly (:func:`speech_llm.model.build.build_speech_llm`) with the production framing."""

from __future__ import annotations

import torch

from speech_llm.config import load_config
from speech_llm.decoding.decode import decode_samples
from speech_llm.model.build import build_speech_llm

WAIT = "<|wait|>"
LLM_LR = "train.llm.lr=1e-2"
"""The tiny random LLM stage of the toy experiment learns fast at a higher rate than the toy default."""


def tiny_config(llm_dir, chunk_frames: int = 4, stack: int = 2, *overrides: str):
    """A 2-layer 32-wide Conformer, ``stack`` frames per LLM token, chunks of ``chunk_frames`` encoder frames."""
    return load_config(None, [*overrides,
        "encoder.d_model=32", "encoder.num_layers=2", "encoder.num_heads=4", "encoder.ffn_dim=128",
        "encoder.subsampling=4", f"projector.stack={stack}",
        f"streaming.chunk_ms={chunk_frames * 40}", f"decode.chunk_ms={chunk_frames * 40}",
        f"llm.path_or_name={llm_dir}", f"llm.wait_token={WAIT}", "llm.prompt.asr=transcribe:"])


def make_speech_llm(llm_dir, chunk_frames: int = 4, stack: int = 2, seed: int = 0, *overrides: str):
    """A random-weight SpeechLLM (for equivalence tests: outputs are arbitrary but deterministic); ``overrides``
    are config keys (``projector.context_layers=1``)."""
    torch.manual_seed(seed)
    model, tok = build_speech_llm(tiny_config(llm_dir, chunk_frames, stack, *overrides), adapters=False)
    return model.eval(), tok


def decode_in_chunks(rec, samples, rate: int):
    """The in-process reference :class:`~speech_llm.decoding.recognizer.Result` of samples (N,) at ``rate``: one
    stream alone, fed in chunk-sized blocks and decoded after each, then finished (as ``transcribe`` does;
    the server and live tests must give the same)."""
    return decode_samples(rec, samples, sample_rate=rate)[0]
