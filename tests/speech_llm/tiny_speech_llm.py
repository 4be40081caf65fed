"""A tiny random-weight SpeechLLM for tests (outputs arbitrary but deterministic)."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from encoders import build_encoder
from speech_llm.model import SpecialTokens, SpeechLLM
from speech_llm.projector import Projector

WAIT = "<|wait|>"


def make_speech_llm(llm_dir, chunk_frames: int = 4, stack: int = 2, seed: int = 0):
    """A random-weight SpeechLLM (for equivalence tests: outputs are arbitrary but deterministic)."""
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(llm_dir)
    llm = AutoModelForCausalLM.from_pretrained(llm_dir, attn_implementation="sdpa")
    enc = build_encoder("conformer", input_dim=80, d_model=32, num_layers=2, num_heads=4, subsampling=4)
    proj = Projector(enc.output_dim, llm.config.hidden_size, stack=stack)
    tokens = SpecialTokens(prompt_ids=tok("transcribe:")["input_ids"], end_ids=tok.convert_tokens_to_ids(
        ["<|im_end|>"]), bos_id=tok.convert_tokens_to_ids("<|im_start|>"), wait_id=tok.convert_tokens_to_ids(WAIT),
        eos_id=tok.eos_token_id)
    model = SpeechLLM(enc, proj, llm, tokens, chunk_frames=chunk_frames, left_chunks=-1).eval()
    return model, tok
