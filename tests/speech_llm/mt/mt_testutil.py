"""Shared data of the text-translation tests: toy sentence pairs and the training config."""

from __future__ import annotations

from data_prep.sentences import generate_sentences
from speech_llm.config import load_config

SENTENCES = generate_sentences(56, seed=11)
PAIRS = [(s.text, s.translation["fr"]) for s in SENTENCES[:50]]
TEST = SENTENCES[50:]
STEPS = 60


def mt_config(base, *overrides):
    """Full fine-tuning of ``base`` (lags 1-3), about 8 pairs per batch, fp32 on the CPU."""
    return load_config(None, [f"llm.path_or_name={base}", "llm.lora_rank=0", "train.mt.k=[1, 2, 3]",
                              "train.mt.lr=3e-3", f"train.mt.max_steps={STEPS}", "train.mt.warmup_steps=6",
                              "train.mt.max_tokens_per_batch=320", "train.mt.precision=fp32",
                              "train.mt.log_every=10", "train.mt.save_every=30", *overrides])
