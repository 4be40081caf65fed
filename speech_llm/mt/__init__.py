"""Simultaneous text translation on the group-streaming LLM, as in the paper: word-level wait-k.

* :mod:`~speech_llm.mt.framing` — source word groups, target words, the word-start rule;
* :mod:`~speech_llm.mt.targets` — wait-k training targets (input ids, labels, per-row source visibility);
* :mod:`~speech_llm.mt.model` — :class:`MTModel`, saving and loading a model dir;
* :mod:`~speech_llm.mt.decode` — the incremental wait-k decoder, emissions, :func:`decode_mt_data`;
* :mod:`~speech_llm.mt.train` — :func:`train_mt`, a plain torch loop (LoRA or full fine-tuning).

The command line: ``speech-llm translate --model DIR --k 3``.
"""

from speech_llm.mt.decode import MTResult, decode_mt_data, translate
from speech_llm.mt.framing import (
    DEFAULT_PROMPT,
    MTFraming,
    SourceGroups,
    make_framing,
    source_groups,
    split_words,
    target_word_tokens,
    word_start_table,
)
from speech_llm.mt.model import MTModel, load_mt_model, save_mt_model, wrap_model
from speech_llm.mt.targets import check_k, collate_targets, wait_k_target, words_read
from speech_llm.mt.train import mt_loss, read_parallel_data, train_mt

__all__ = [
    "DEFAULT_PROMPT", "MTFraming", "MTModel", "MTResult", "SourceGroups", "check_k", "collate_targets",
    "decode_mt_data", "load_mt_model", "make_framing", "mt_loss", "read_parallel_data", "save_mt_model",
    "source_groups", "split_words", "target_word_tokens", "train_mt", "translate", "wait_k_target",
    "word_start_table", "words_read", "wrap_model",
]
