"""Causal-LM pre-training of a small local LLM on text, so that it knows the language before the speech stages.

Each step takes ``batch_size`` random windows ``(B, seq_len)`` of the token stream (texts joined by eos). The
optimizer, the LR schedule and the update are the trainer's (:mod:`speech_llm.train.trainer`:
:func:`~speech_llm.train.trainer.make_optimizer`, :func:`~speech_llm.train.trainer.warmup_cosine`,
:func:`~speech_llm.train.trainer.optimizer_step`): one home for how this project trains.

Usage:
    from speech_llm.model.tiny_llm import build_tiny_llm, train_tokenizer
    from speech_llm.train.lm_pretrain import evaluate_lm, pretrain_lm
    train_tokenizer(lines, vocab_size=1000, out_dir="exp/tiny_llm")
    build_tiny_llm("exp/tiny_llm", "exp/tiny_llm", arch="qwen2", hidden_size=64, num_layers=2)
    losses = pretrain_lm("exp/tiny_llm", lines, steps=200)
    evaluate_lm("exp/tiny_llm", lines[:1000])      # nats per token

or from the shell: ``speech-llm build-llm --text data/train/text --kaldi-text --out exp/tiny_llm``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tqdm import tqdm

from speech_common.errors import UserError
from speech_llm.model.tiny_llm import load_lm, load_tokenizer
from speech_llm.train.trainer import make_optimizer, optimizer_step, warmup_cosine

WEIGHT_DECAY = 0.01
GRAD_CLIP = 1.0
BETAS = (0.9, 0.95)
"""AdamW's betas for a language model trained from scratch (nanoGPT's)."""


def token_stream(tokenizer, texts: Iterable[str]) -> torch.Tensor:
    """All texts tokenized and joined, each followed by eos: a 1-D LongTensor ``(N,)``."""
    ids: list[int] = []
    for text in texts:
        if text:
            ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
            ids.append(tokenizer.eos_token_id)
    if not ids:
        raise UserError("no text to train or evaluate the language model on")
    return torch.tensor(ids, dtype=torch.long)


def _repeat_to(stream: torch.Tensor, length: int) -> torch.Tensor:
    """``stream`` repeated until it holds at least ``length`` tokens (a short text still fills a window)."""
    while stream.numel() < length:
        stream = torch.cat([stream, stream])
    return stream


def pretrain_lm(
    model_dir: str | Path,
    texts: Iterable[str],
    steps: int,
    batch_size: int = 8,
    lr: float = 1e-3,
    seq_len: int = 64,
    out_dir: str | Path | None = None,
    seed: int = 0,
    warmup_steps: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> list[float]:
    """Train the model in ``model_dir`` as a causal LM on ``texts``; save it to ``out_dir`` (default: in place).

    Each step takes ``batch_size`` random windows ``(B, seq_len)`` of the token stream (texts joined by
    eos); the trainer's AdamW at ``lr`` and schedule (linear warm-up, default 10% of the steps, then cosine
    decay to 10%), gradients clipped at 1. The tokenizer is saved next to the model when ``out_dir`` differs.
    Returns the loss of every step.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("seq_len", seq_len)):
        if value <= 0:
            raise UserError(f"pretrain_lm: {name} must be positive, got {value}")
    tokenizer = load_tokenizer(model_dir)
    model = load_lm(model_dir, device)
    if seq_len > model.config.max_position_embeddings:
        raise UserError(f"pretrain_lm: seq_len {seq_len} exceeds the model's max_position_embeddings "
                        f"{model.config.max_position_embeddings}")
    stream = _repeat_to(token_stream(tokenizer, texts), seq_len)
    gen = torch.Generator().manual_seed(seed)

    optimizer = make_optimizer(model, lr, WEIGHT_DECAY, f"pretrain_lm {model_dir}", betas=BETAS)
    scheduler = warmup_cosine(optimizer, max(1, steps // 10) if warmup_steps is None else warmup_steps, steps)
    model.train()
    losses = []
    bar = tqdm(range(steps), desc="pretrain LM", unit="step", disable=not progress)
    for _ in bar:
        starts = torch.randint(0, stream.numel() - seq_len + 1, (batch_size,), generator=gen)
        batch = torch.stack([stream[s:s + seq_len] for s in starts.tolist()]).to(device)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer_step(optimizer, scheduler, model, GRAD_CLIP)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()

    out_dir = Path(out_dir) if out_dir is not None else Path(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    if out_dir.resolve() != Path(model_dir).resolve():
        tokenizer.save_pretrained(out_dir)
    return losses


@torch.no_grad()
def evaluate_lm(model_dir: str | Path, texts: Iterable[str], seq_len: int = 64,
                device: str | torch.device = "cpu") -> float:
    """Mean causal-LM loss (nats per token) of the model in ``model_dir`` over consecutive windows of texts."""
    tokenizer = load_tokenizer(model_dir)
    model = load_lm(model_dir, device).eval()
    stream = _repeat_to(token_stream(tokenizer, texts), seq_len)
    n = stream.numel() // seq_len
    blocks = stream[: n * seq_len].view(n, seq_len).to(device)
    total, count = 0.0, 0
    for block in blocks.split(16):
        loss = model(input_ids=block, labels=block).loss
        tokens = block.numel() - block.shape[0]  # each row predicts seq_len - 1 tokens
        total += loss.item() * tokens
        count += tokens
    return total / count
