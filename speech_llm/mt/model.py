"""A text-translation model: a causal LM run as a :class:`~speech_llm.lm.group_lm.GroupStreamingLM`, with its
tokenizer, framing and word-start table; built from an experiment config and saved as a checkpoint of
stage ``mt`` in the toolkit's one checkpoint format (:mod:`speech_llm.model.checkpoint`).

A checkpoint of stage ``mt`` (``exp/mt/mt/{best,last}``) holds ``config.yaml`` (``llm.*`` says which base
LLM, LoRA and prompt ``llm.prompt.mt``), ``tokenizer/``, ``meta.json`` with the ``base_llm`` reference, and
``model.pt`` with what was trained: the LoRA weights, or every LLM weight when ``llm.lora_rank`` is 0
(full fine-tuning, the usual choice for a tiny LLM).

Usage:
    from speech_llm.mt import load_mt_model, translate
    model = load_mt_model("exp/mt")                 # exp dir -> mt/best (else mt/last)
    translate(model, "TURN ON THE LIGHT", k=3).text
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from speech_common.errors import UserError
from speech_llm.config import ExperimentConfig
from speech_llm.lm.framing import SpecialTokens, word_start_table
from speech_llm.lm.group_lm import GroupStreamingLM
from speech_llm.mt.framing import DEFAULT_PROMPT, make_framing


@dataclass
class MTModel:
    """What translation needs: the group-streaming LM, the tokenizer, the framing and the word-start table."""

    glm: GroupStreamingLM
    tokenizer: object
    framing: SpecialTokens
    starts_word: torch.Tensor          # (V,) bool, see speech_llm.lm.framing.word_start_table
    info: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.glm.parameters()).device


def wrap_model(llm: nn.Module, tokenizer, prompt: str = DEFAULT_PROMPT, phi: int = 0,
               info: dict | None = None) -> MTModel:
    """An :class:`MTModel` around a loaded causal LM (or a :class:`GroupStreamingLM`) and its tokenizer."""
    glm = llm if isinstance(llm, GroupStreamingLM) else GroupStreamingLM(llm, phi=phi)
    vocab = glm.lm.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise UserError(f"the tokenizer has {len(tokenizer)} tokens but the model's embedding only {vocab}")
    info = {**(info or {}), "prompt": prompt}
    starts = word_start_table(tokenizer)
    out_rows = glm.lm.get_output_embeddings().weight.size(0)   # the LM head may have more rows (Qwen2.5)
    if out_rows > starts.numel():
        starts = torch.cat([starts, starts.new_zeros(out_rows - starts.numel())])
    return MTModel(glm=glm, tokenizer=tokenizer, framing=make_framing(tokenizer, prompt), starts_word=starts,
                   info=info)


def build_mt_model(cfg: ExperimentConfig, llm_path: str | Path | None = None, tokenizer=None) -> MTModel:
    """The one assembly of a text-translation model (training and :func:`load_mt_model`): the causal LM of
    ``llm_path`` (default ``cfg.llm.path_or_name``), with a LoRA adapter when ``llm.lora_rank > 0`` (only
    the adapter trains), else every weight trainable; prompt ``llm.prompt.mt``, target start ``llm.phi``."""
    from speech_llm.model.build import load_causal_lm, load_tokenizer, lora_config, wrap_peft

    path = llm_path or cfg.llm.path_or_name
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(path, cfg.llm.gguf_file)
    llm = load_causal_lm(path, cfg.llm)
    if cfg.llm.lora_rank > 0:
        llm = wrap_peft(llm, lora_config(cfg.llm, bias="none"), cfg.llm)
    return wrap_model(llm, tokenizer, prompt=cfg.llm.prompt.mt, phi=cfg.llm.phi, info={"path": str(path)})


def load_mt_model(exp_dir_or_checkpoint: str | Path, device: str | torch.device = "cpu") -> MTModel:
    """Rebuild the model of an ``mt`` checkpoint (or the best one of an exp dir) for decoding."""
    from speech_llm.model.build import load_tokenizer
    from speech_llm.model.checkpoint import (
        MODEL,
        TOKENIZER_DIR,
        base_llm_path,
        expect_stage,
        find_checkpoint,
        load_trained_state,
        read_checkpoint,
    )

    ckpt = read_checkpoint(find_checkpoint(exp_dir_or_checkpoint, "mt"))
    expect_stage(ckpt, "mt")
    model = build_mt_model(ckpt.config, base_llm_path(ckpt), load_tokenizer(ckpt.path / TOKENIZER_DIR))
    load_trained_state(model.glm, ckpt.state(), ckpt.path / MODEL)
    for p in model.glm.parameters():
        p.requires_grad_(False)
    model.glm.to(device).eval()
    model.info.update(path=str(ckpt.path), step=ckpt.meta.get("step"))
    return model
