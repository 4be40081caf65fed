"""The one LoRA wrapping and the one merge (speech_llm.model.build: lora_config, wrap_peft, merge_lora)."""

import warnings

import pytest
from torch import nn

from speech_common.errors import UserError
from speech_llm.config import LLMConfig
from speech_llm.model.build import lora_config, merge_lora, wrap_peft


class _Adapted(nn.Module):
    def __init__(self):
        super().__init__()
        self.merged = nn.Linear(2, 2)

    def merge_and_unload(self):
        warnings.warn("tied adapters cannot be re-tied", UserWarning, stacklevel=2)
        return self.merged


def test_merge_lora_merges_quietly_and_leaves_a_plain_module_alone():
    plain = nn.Linear(2, 2)
    assert merge_lora(plain) is plain
    m = _Adapted()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert merge_lora(m) is m.merged


def test_lora_config_from_the_llm_section_and_a_bad_target_is_a_user_error():
    cfg = LLMConfig(lora_rank=4, lora_alpha=8, lora_dropout=0.0, lora_target_modules=["nope_proj"])
    peft_cfg = lora_config(cfg, bias="none")
    assert (peft_cfg.r, peft_cfg.lora_alpha, set(peft_cfg.target_modules), peft_cfg.bias) == (4, 8, {"nope_proj"},
                                                                                              "none")
    with pytest.raises(UserError, match=r"llm.lora_target_modules \['nope_proj'\]"):
        wrap_peft(nn.Sequential(nn.Linear(2, 2)), peft_cfg, cfg)
