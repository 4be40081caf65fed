"""Streaming speech recognition and translation with a group-streaming LLM.

The LLM side of the toolkit: group position IDs and attention masks (:mod:`speech_llm.positions`,
:mod:`speech_llm.masks`), the group-streaming wrapper around any Hugging Face decoder-only LLM
(:mod:`speech_llm.group_lm`), and the console script (:mod:`speech_llm.cli`).
"""

__version__ = "0.1.0"
