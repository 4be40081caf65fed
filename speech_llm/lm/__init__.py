"""The group-streaming LM core, shared by the speech LLM and text translation (:mod:`speech_llm.mt`).

* :mod:`~speech_llm.lm.positions` / :mod:`~speech_llm.lm.masks` — group position IDs and attention masks;
* :mod:`~speech_llm.lm.kv_cache` — the append-only KV cache and mask buffers;
* :mod:`~speech_llm.lm.group_lm` — :class:`GroupStreamingLM` around any Hugging Face decoder-only LLM, and
  :class:`GroupStreamingSession` (read a source group, write until ``<wait>``);
* :mod:`~speech_llm.lm.framing` — source framing (prompt, units, end marker), special tokens, words;
* :mod:`~speech_llm.lm.targets` — the streaming and batch-mode training targets.

Imports nothing of the toolkit but :mod:`speech_common`: no model, encoder or training code.
"""
