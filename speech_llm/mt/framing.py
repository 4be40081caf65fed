"""How a sentence pair becomes LLM tokens for simultaneous text translation: word groups.

The source group unit is a **word** (the paper's text setting). A source sentence of ``n`` words becomes::

    [prompt tokens] [word 1] [ word 2] ... [ word n][end marker]
     group 0         group 1  group 2       group n

``group 0`` is the instruction (``bos`` first when the tokenizer has one); each word is tokenized on its
own, with a leading space except the first; the end marker (``eos``) closes the source and travels with
the last word: reading word ``n`` is reading "the end of the input". :attr:`SourceGroups.ends` holds the
number of source tokens visible once ``i`` words are read (``i = 0..n``).

Targets are words as well: ``translation.split()``, the first without a leading space, the others with
one. A written token *starts a new word* when its text begins with whitespace
(:func:`speech_llm.lm.framing.word_start_table`, the rule of every task), which is how the decoder finds word
boundaries in what it writes; :func:`~speech_llm.lm.framing.split_words` applies that rule, and
:func:`target_word_tokens` checks that it gives back the reference words (so training and decoding
agree on what a word is).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from speech_common.errors import UserError
from speech_llm.config import PromptConfig
from speech_llm.lm.framing import SpecialTokens, make_tokens, source_group_ends, split_words, word_token_ids

DEFAULT_PROMPT = PromptConfig().mt
"""Instruction in front of the source words (group 0): the config's default ``llm.prompt.mt``."""


def make_framing(tokenizer, prompt: str = DEFAULT_PROMPT) -> SpecialTokens:
    """The framing of ``tokenizer`` with instruction ``prompt`` (:func:`speech_llm.lm.framing.make_tokens`;
    text translation has no ``<wait>`` token: a word start is its boundary)."""
    return make_tokens(tokenizer, prompt)


@dataclass
class SourceGroups:
    """A tokenized source sentence.

    ids: all source tokens, ``[prompt][word 1]...[word n][end]``.
    ends: ``n + 1`` counts: ``ends[i]`` source tokens are visible once ``i`` words are read (``ends[0]`` =
        the prompt; ``ends[n] = len(ids)``, end marker included).
    words: the ``n`` source words.
    """

    ids: list[int]
    ends: list[int]
    words: list[str]

    @property
    def num_words(self) -> int:
        return len(self.words)


def source_groups(tokenizer, framing: SpecialTokens, text: str) -> SourceGroups:
    """Tokenize a source sentence into word groups (see the module docstring). ``text`` must have a word."""
    words = text.split()
    if not words:
        raise UserError("empty source sentence: there is nothing to translate")
    word_ids = word_token_ids(tokenizer, words)
    ids = [*framing.prompt_ids, *(t for w in word_ids for t in w), *framing.end_ids]
    ends = source_group_ends(framing.prompt_len, [len(w) for w in word_ids], len(framing.end_ids),
                             end_with_last=True)
    return SourceGroups(ids=ids, ends=ends, words=words)


def target_word_tokens(tokenizer, text: str, starts_word: torch.Tensor) -> list[list[int]]:
    """Token ids of each target word (``text.split()``), checked against the decoder's word rule.

    Raises:
        UserError: when the tokenizer splits a word so that :func:`split_words` would not find it again
            (e.g. a tokenizer that does not attach the leading space to the word).
    """
    words = text.split()
    out = word_token_ids(tokenizer, words)
    flat = [t for w in out for t in w]
    if split_words(flat, starts_word) != out:
        raise UserError(f"target {text!r}: the tokenizer's word pieces do not mark word starts with a leading "
                        f"space, so decoded words cannot be found again (a byte-level BPE such as Qwen's or "
                        f"Llama 3's is needed)")
    return out
