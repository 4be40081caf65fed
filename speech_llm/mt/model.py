"""A text-translation model: a causal LM run as a :class:`~speech_llm.group_lm.GroupStreamingLM`, its
tokenizer and framing, saved as a plain Hugging Face model dir plus ``mt.json``.

A model dir holds what ``save_pretrained`` writes for the model and the tokenizer (LoRA adapters are merged
before saving, so any tool loads it with ``AutoModelForCausalLM.from_pretrained``) and ``mt.json``::

    {"format": 1, "prompt": "Translate the English text into French:\\n", "phi": 0,
     "train": {...}}                     # how it was trained (informative)

Usage:
    from speech_llm.mt import load_mt_model, translate
    model = load_mt_model("exp/mt")
    translate(model, "TURN ON THE LIGHT", k=3).text
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from speech_llm.errors import UserError
from speech_llm.group_lm import GroupStreamingLM
from speech_llm.mt.framing import DEFAULT_PROMPT, MTFraming, make_framing, word_start_table

MT_JSON = "mt.json"
FORMAT = 1


@dataclass
class MTModel:
    """What translation needs: the group-streaming LM, the tokenizer, the framing and the word-start table."""

    glm: GroupStreamingLM
    tokenizer: object
    framing: MTFraming
    starts_word: torch.Tensor          # (V,) bool, see speech_llm.mt.framing.word_start_table
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


def save_mt_model(model: MTModel, out_dir: str | Path) -> Path:
    """Save the LM (a peft model has its adapters merged first), the tokenizer and ``mt.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lm = model.glm.lm
    from peft import PeftModel

    if isinstance(lm, PeftModel):   # save the merged weights: a plain HF model dir
        lm = lm.merge_and_unload()
        model.glm.lm = lm
    lm.save_pretrained(out_dir)
    model.tokenizer.save_pretrained(out_dir)
    prompt = model.info.get("prompt", DEFAULT_PROMPT)
    meta = {"format": FORMAT, "prompt": prompt, "phi": model.glm.phi, "train": model.info.get("train", {})}
    (out_dir / MT_JSON).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out_dir


def load_mt_model(model_dir: str | Path, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32) -> MTModel:
    """Load a model dir written by :func:`save_mt_model` (or by :func:`speech_llm.mt.train.train_mt`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    meta_path = model_dir / MT_JSON
    if not meta_path.is_file():
        raise UserError(f"{model_dir}: not a text-translation model dir (no {MT_JSON}; train one with "
                        f"speech_llm.mt.train_mt)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{meta_path}: invalid JSON ({e.msg}, line {e.lineno})") from None
    if meta.get("format") != FORMAT or not isinstance(meta.get("prompt"), str):
        raise UserError(f"{meta_path}: want format {FORMAT} with a 'prompt' string, got {meta!r}")
    phi = meta.get("phi", 0)
    if isinstance(phi, bool) or not isinstance(phi, int) or phi < 0:
        raise UserError(f"{meta_path}: 'phi' must be an integer >= 0, got {phi!r}")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    llm = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype).to(device).eval()
    return wrap_model(llm, tokenizer, prompt=meta["prompt"], phi=phi,
                      info={"train": meta.get("train", {}), "path": str(model_dir)})
