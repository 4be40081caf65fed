"""A small trainer for simultaneous text translation: wait-k fine-tuning of a causal LM (LoRA or full).

Each step draws ``batch_size`` sentence pairs; each pair gets its own lag ``k`` drawn from ``k`` (several
lags train one model for all of them, as in multi-path wait-k), or batch mode with probability
``batch_share``; the wait-k visibility of :mod:`speech_llm.mt.targets` goes into one masked forward of
the :class:`~speech_llm.group_lm.GroupStreamingLM`; the loss is the mean cross-entropy over target tokens
(eos included). AdamW, linear warm-up then cosine decay to 10 %, gradient clipping. The result is saved
with :func:`~speech_llm.mt.model.save_mt_model` (LoRA merged), ready for ``speech-llm translate``.

This is deliberately a plain torch loop for text MT; speech training lives in :mod:`speech_llm.train`.

Usage:
    from data_prep.sentences import generate_sentences
    from speech_llm.mt import train_mt
    pairs = [(s.text, s.translation["fr"]) for s in generate_sentences(500, seed=0)]
    losses = train_mt("exp/tiny_llm", pairs, "exp/mt", k=(1, 2, 3, 4, 5), steps=500, lora_rank=0)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from speech_llm.errors import UserError
from speech_llm.mt.framing import DEFAULT_PROMPT, source_groups, target_word_tokens
from speech_llm.mt.model import MTModel, save_mt_model, wrap_model
from speech_llm.mt.targets import check_k, collate_targets, wait_k_target

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def mt_loss(model: MTModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the target tokens of a collated batch
    (:func:`~speech_llm.mt.targets.collate_targets`) and the number of those tokens."""
    glm = model.glm
    src = glm.embed(batch["source_ids"])                                  # (B, S, D)
    logits = glm(src, batch["source_lens"], batch["input_ids"], batch["target_lens"],
                 batch["source_visible"]).logits                          # (B, T, V)
    labels = batch["labels"]
    loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
    return loss, int((labels != -100).sum())


def _add_lora(llm, rank: int, alpha: int, targets: Sequence[str]):
    from peft import LoraConfig

    from speech_llm.build import wrap_peft

    try:
        return wrap_peft(llm, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0,
                                               target_modules=list(targets), bias="none"))
    except ValueError as e:
        raise UserError(f"train_mt: lora_targets {list(targets)}: {e}") from None


def _tokenize_pairs(model: MTModel, pairs: Sequence[tuple[str, str]]):
    data = []
    for i, pair in enumerate(pairs):
        if len(pair) != 2 or not all(isinstance(x, str) for x in pair):
            raise UserError(f"train_mt: pair {i} must be (source, target) strings, got {pair!r}")
        src, tgt = pair
        if not src.split() or not tgt.split():
            raise UserError(f"train_mt: pair {i} has an empty source or target: {pair!r}")
        try:
            words = target_word_tokens(model.tokenizer, tgt, model.starts_word)
        except UserError as e:
            raise UserError(f"train_mt: pair {i}: {e}") from None
        data.append((source_groups(model.tokenizer, model.framing, src), words))
    if not data:
        raise UserError("train_mt: no sentence pairs to train on")
    return data


def train_mt(model_dir: str | Path, pairs: Sequence[tuple[str, str]], out_dir: str | Path, *,
             k: int | Sequence[int] = (1, 2, 3, 4, 5), batch_share: float = 0.2, steps: int = 200,
             batch_size: int = 8, lr: float = 1e-3, weight_decay: float = 0.01, warmup_steps: int | None = None,
             grad_clip: float = 1.0, lora_rank: int = 0, lora_alpha: int = 16,
             lora_targets: Sequence[str] = LORA_TARGETS, prompt: str = DEFAULT_PROMPT, phi: int = 0,
             seed: int = 0, device: str | torch.device = "cpu", progress: bool = True) -> list[float]:
    """Fine-tune the causal LM in ``model_dir`` on (source, target) sentence pairs with wait-k visibility.

    Args:
        model_dir: a Hugging Face model dir with its tokenizer (e.g. from ``speech-llm build-llm``).
        pairs: (source sentence, target sentence).
        out_dir: where the trained model dir goes (:func:`~speech_llm.mt.model.save_mt_model`).
        k: a lag, or lags to draw from uniformly, one per pair and step.
        batch_share: probability that a pair is trained in batch mode (whole source visible).
        lora_rank: 0 = full fine-tuning; > 0 = LoRA on ``lora_targets`` (merged into the saved weights).
        prompt, phi: instruction text (source group 0) and target position start (DESIGN.md §2).

    Returns:
        The training loss of every step.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_cosine_with_min_lr_schedule_with_warmup

    lags = [k] if isinstance(k, int) else list(k)
    if not lags:
        raise UserError("train_mt: k must name at least one lag")
    for lag in lags:
        try:
            check_k(lag)
        except ValueError as e:
            raise UserError(f"train_mt: {e}") from None
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if value <= 0:
            raise UserError(f"train_mt: {name} must be positive, got {value}")
    if not 0.0 <= batch_share <= 1.0:
        raise UserError(f"train_mt: batch_share must be in [0, 1], got {batch_share}")
    if lora_rank < 0:
        raise UserError(f"train_mt: lora_rank must be >= 0, got {lora_rank}")
    if not (Path(model_dir) / "config.json").is_file():
        raise UserError(f"train_mt: {model_dir}: no model here (expected config.json)")

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    llm = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).to(device)
    if lora_rank > 0:
        llm = _add_lora(llm, lora_rank, lora_alpha, lora_targets)
    model = wrap_model(llm, tokenizer, prompt=prompt, phi=phi)
    data = _tokenize_pairs(model, pairs)
    params = [p for p in model.glm.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))
    warmup = max(1, steps // 10) if warmup_steps is None else warmup_steps
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(optimizer, warmup, steps, min_lr_rate=0.1)
    rng = random.Random(seed)

    model.glm.train()
    losses: list[float] = []
    bar = tqdm(range(steps), desc="train MT", unit="step", disable=not progress)
    for _ in bar:
        chosen = [data[rng.randrange(len(data))] for _ in range(batch_size)]
        sources, targets = [], []
        for src, words in chosen:
            lag = None if rng.random() < batch_share else rng.choice(lags)
            sources.append(src)
            targets.append(wait_k_target(src, words, lag, bos_id=model.framing.bos_id,
                                         eos_id=model.framing.eos_id))
        loss, _ = mt_loss(model, collate_targets(sources, targets, device))
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.glm.eval()

    model.info["train"] = {"base": str(model_dir), "k": lags, "batch_share": batch_share, "steps": steps,
                           "batch_size": batch_size, "lr": lr, "lora_rank": lora_rank, "num_pairs": len(data),
                           "final_loss": round(losses[-1], 4)}
    save_mt_model(model, out_dir)
    return losses


def read_parallel_data(data_dir: str | Path, lang: str = "fr") -> dict[str, tuple[str, str]]:
    """``{key: (source, translation)}`` of a data dir: the source from ``text``, the translation from
    ``manifest.jsonl``'s ``"translation"[lang]`` (the layout ``speech-llm score --task mt`` reads)."""
    from data_prep.manifest import read_manifest
    from speech_llm.commands.score import read_text

    data_dir = Path(data_dir)
    texts = read_text(data_dir / "text", allow_empty=False)
    records = {r["key"]: r for r in read_manifest(data_dir / "manifest.jsonl")}
    out, lacking = {}, []
    for key, text in texts.items():
        tr = (records.get(key, {}).get("translation") or {}).get(lang)
        if tr is None:
            lacking.append(key)
        else:
            out[key] = (text, tr)
    if lacking:
        raise UserError(f"{data_dir / 'manifest.jsonl'}: no 'translation' {lang!r} for {len(lacking)} "
                        f"utterances, e.g. {lacking[0]}")
    return out
