"""Tiny local LLMs that load by path exactly like a hub model (for tests and the CPU recipe).

No model weights can be downloaded here, yet the real loading path (``from_pretrained``) must be
exercised. This module makes a small stand-in for Qwen2.5 or Llama:

1. :func:`train_tokenizer`: a byte-level BPE tokenizer trained with ``tokenizers`` on given text, with
   Qwen's special tokens (``<|endoftext|>`` = eos = pad, ``<|im_start|>``, ``<|im_end|>``) and a ChatML
   chat template, saved with ``save_pretrained``.
2. :func:`build_tiny_llm`: a randomly initialised ``Qwen2ForCausalLM`` / ``LlamaForCausalLM`` built from
   a config sized to that tokenizer, saved together with the tokenizer.
3. :func:`pretrain_lm`: optional causal-LM training on given text so the model knows the language.

Usage:
    from speech_llm.model.tiny_llm import train_tokenizer, build_tiny_llm, pretrain_lm
    train_tokenizer(lines, vocab_size=1000, out_dir="exp/tiny_llm")
    build_tiny_llm("exp/tiny_llm", "exp/tiny_llm", arch="qwen2", hidden_size=64, num_layers=2)
    pretrain_lm("exp/tiny_llm", lines, steps=200)
    model = AutoModelForCausalLM.from_pretrained("exp/tiny_llm")      # works with HF_HUB_OFFLINE=1
    tok = AutoTokenizer.from_pretrained("exp/tiny_llm")

or from the shell: ``speech-llm build-llm --text data/train/text --kaldi-text --out exp/tiny_llm``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from tqdm import tqdm

from speech_common.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
"""End of text; also the padding token (as in Qwen2.5)."""
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")
SPECIAL_TOKENS = (EOS_TOKEN, *CHAT_TOKENS)

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""ChatML, the format of Qwen's instruct models (without Qwen's default system message)."""

Arch = Literal["qwen2", "llama"]
_BYTE_ALPHABET = 256


# ---------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, out_dir: str | Path, model_max_length: int = 2048
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` and save it to ``out_dir`` with ``save_pretrained``.

    Byte-level: every string round-trips exactly (text -> ids -> text), whatever its characters.
    ``vocab_size`` counts the 256 byte symbols and the 3 special tokens; a small corpus may give fewer
    merges than asked for. Returns the ``PreTrainedTokenizerFast``; ``AutoTokenizer.from_pretrained(out_dir)``
    loads the same tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    minimum = _BYTE_ALPHABET + len(SPECIAL_TOKENS) + 1
    if vocab_size < minimum:
        raise UserError(f"vocab_size {vocab_size} is too small for a byte-level BPE: it must be >= {minimum} "
                        f"(256 bytes + {len(SPECIAL_TOKENS)} special tokens + at least one merge)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    counted = _CountingIterator(texts)
    tok.train_from_iterator(counted, trainer=trainer)
    if counted.count == 0:
        raise UserError("cannot train a tokenizer: no text was given")

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        additional_special_tokens=list(CHAT_TOKENS),
        model_max_length=model_max_length,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(out_dir)
    return wrapped


class _CountingIterator:
    """Iterates over texts (skipping empty ones) and counts them."""

    def __init__(self, texts: Iterable[str]):
        self._texts = texts
        self.count = 0

    def __iter__(self):
        for text in self._texts:
            if text:
                self.count += 1
                yield text


# ---------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------


def build_tiny_llm(
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    *,
    arch: Arch = "qwen2",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_position_embeddings: int = 2048,
    tie_word_embeddings: bool | None = None,
    seed: int = 0,
) -> Path:
    """Build a randomly initialised causal LM sized to the tokenizer in ``tokenizer_dir``; save it.

    ``out_dir`` receives the model (``config.json``, ``model.safetensors``, ``generation_config.json``)
    and the tokenizer, so ``AutoModelForCausalLM.from_pretrained(out_dir)`` and
    ``AutoTokenizer.from_pretrained(out_dir)`` load it like a hub model (any ``attn_implementation``).
    ``tie_word_embeddings`` defaults to what the real models do: tied for qwen2 (as Qwen2.5-0.5B), untied
    for llama. The embedding has exactly ``len(tokenizer)`` rows. The global RNG is left untouched.
    Returns ``out_dir``.
    """
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    classes = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}
    if arch not in classes:
        raise UserError(f"unknown arch {arch!r}: choose one of {', '.join(classes)}")
    _check_sizes(hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size, max_position_embeddings)
    tokenizer = _load_tokenizer(tokenizer_dir)
    if tokenizer.eos_token_id is None:
        raise UserError(f"{tokenizer_dir}: the tokenizer has no eos token")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if tie_word_embeddings is None:
        tie_word_embeddings = arch == "qwen2"

    config_cls, model_cls = classes[arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=tokenizer.eos_token_id,  # as Qwen2.5: no separate bos; the tokenizer adds none
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=pad_id
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _check_sizes(hidden: int, layers: int, heads: int, kv_heads: int, inter: int, max_pos: int) -> None:
    for name, value in (("hidden_size", hidden), ("num_layers", layers), ("num_heads", heads),
                        ("num_kv_heads", kv_heads), ("intermediate_size", inter),
                        ("max_position_embeddings", max_pos)):
        if value <= 0:
            raise UserError(f"{name} must be positive, got {value}")
    if hidden % heads:
        raise UserError(f"hidden_size {hidden} is not divisible by num_heads {heads}")
    if (hidden // heads) % 2:
        raise UserError(f"head size hidden_size/num_heads = {hidden // heads} must be even (RoPE)")
    if heads % kv_heads:
        raise UserError(f"num_heads {heads} is not divisible by num_kv_heads {kv_heads}")


def _load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    if not (Path(path) / "tokenizer.json").is_file():
        raise UserError(f"{path}: no tokenizer here (expected tokenizer.json; see train_tokenizer)")
    return AutoTokenizer.from_pretrained(str(path))


def _load_model(path: str | Path, device: str | torch.device = "cpu"):
    from transformers import AutoModelForCausalLM

    if not (Path(path) / "config.json").is_file():
        raise UserError(f"{path}: no model here (expected config.json; see build_tiny_llm)")
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).to(device)


# ---------------------------------------------------------------------------------------------------
# Language-model pre-training
# ---------------------------------------------------------------------------------------------------


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
    eos), AdamW at ``lr`` with linear warm-up (default 10% of the steps) and cosine decay to 10%.
    The tokenizer is saved next to the model when ``out_dir`` differs. Returns the loss of every step.
    """
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    for name, value in (("steps", steps), ("batch_size", batch_size), ("seq_len", seq_len)):
        if value <= 0:
            raise UserError(f"pretrain_lm: {name} must be positive, got {value}")
    tokenizer = _load_tokenizer(model_dir)
    model = _load_model(model_dir, device)
    if seq_len > model.config.max_position_embeddings:
        raise UserError(f"pretrain_lm: seq_len {seq_len} exceeds the model's max_position_embeddings "
                        f"{model.config.max_position_embeddings}")
    stream = _repeat_to(token_stream(tokenizer, texts), seq_len)
    gen = torch.Generator().manual_seed(seed)

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, steps // 10) if warmup_steps is None else warmup_steps
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(optimizer, warmup, steps, min_lr_rate=0.1)
    model.train()
    losses = []
    bar = tqdm(range(steps), desc="pretrain LM", unit="step", disable=not progress)
    for _ in bar:
        starts = torch.randint(0, stream.numel() - seq_len + 1, (batch_size,), generator=gen)
        batch = torch.stack([stream[s:s + seq_len] for s in starts.tolist()]).to(device)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
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
    tokenizer = _load_tokenizer(model_dir)
    model = _load_model(model_dir, device).eval()
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
