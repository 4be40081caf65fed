"""Simultaneous text translation on the group-streaming LLM, as in the paper: word-level wait-k.

* :mod:`~speech_llm.mt.framing` — source word groups, target words, the word-start rule;
* :mod:`~speech_llm.mt.targets` — wait-k training targets (input ids, labels, per-row source visibility);
* :mod:`~speech_llm.mt.model` — :class:`MTModel`, its assembly and loading from an ``mt`` checkpoint;
* :mod:`~speech_llm.mt.decode` — the incremental wait-k decoder, emissions, :func:`decode_mt_data`;
* :mod:`~speech_llm.mt.train` — the ``mt`` training stage on the shared trainer (LoRA or full fine-tuning).

The command line: ``speech-llm train --stage mt``, ``speech-llm translate --model EXP --k 3``,
``speech-llm decode --task mt``.
"""

from speech_llm.lm.framing import split_words, word_start_table
from speech_llm.mt.decode import MTResult, decode_mt_data, translate
from speech_llm.mt.framing import DEFAULT_PROMPT, SourceGroups, make_framing, source_groups, target_word_tokens
from speech_llm.mt.model import MTModel, build_mt_model, load_mt_model, wrap_model
from speech_llm.mt.targets import check_k, collate_targets, wait_k_target, words_read
from speech_llm.mt.train import MTStage, mt_loss, read_parallel_data, run_mt_stage

__all__ = [
    "DEFAULT_PROMPT", "MTModel", "MTResult", "MTStage", "SourceGroups", "build_mt_model", "check_k",
    "collate_targets", "decode_mt_data", "load_mt_model", "make_framing", "mt_loss", "read_parallel_data",
    "run_mt_stage", "source_groups", "split_words", "target_word_tokens", "translate", "wait_k_target",
    "word_start_table", "words_read", "wrap_model",
]
