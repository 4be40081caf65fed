"""How source and target are framed for the LLM: the one home for the framing tokens and the source layout.

Every task (speech recognition, speech translation, text translation) frames its source the same way::

    source   [prompt] [unit 1] [unit 2] ... [unit n] [end]
    target   input starts with bos; the model writes ... eos

* ``prompt`` is the instruction (``bos`` first when the tokenizer has one), read before any input;
* a **unit** is what arrives at once: an audio chunk's tokens (speech) or one word's tokens (text);
* ``end`` is the source end marker (the tokenizer's eos), read once the input is finished. Speech reads it
  as a group of its own after the last chunk; text reads it together with the last word
  (``end_with_last``), so reading word ``n`` is reading "the end of the input".
* The target's first input token is ``bos`` (``eos`` when the tokenizer has no bos, as in Qwen2.5); speech
  adds the read/write boundary token ``<|wait|>`` (``wait_id``).

:func:`make_tokens` builds the ids from a tokenizer and a prompt, for training and decoding alike; a
checkpoint stores the prompt's task, so the model rebuilt from it frames its source as it was trained.
:func:`source_group_ends` is the layout: how many source tokens are visible once each group is read. The
training targets (:mod:`speech_llm.lm.targets`, :mod:`speech_llm.mt.targets`), the batched training source
(:meth:`speech_llm.model.speech_model.SpeechLLM.source_batch`) and the incremental readers
(:mod:`speech_llm.decoding.recognizer`, :mod:`speech_llm.mt.decode`) all follow it.

Words (targets of every task, and what a decoder finds again in what it writes): each word is tokenized on
its own, with a leading space except the first (:func:`word_token_ids`); a written token *starts a new
word* when its text begins with whitespace (:func:`word_start_table`, :func:`split_words`).

Example: a 2-token prompt, units of 4, 4 and 2 tokens, a 1-token end marker::

    source_group_ends(2, [4, 4, 2], 1)                      -> [2, 6, 10, 12, 13]   (speech)
    source_group_ends(2, [4, 4, 2], 1, end_with_last=True)  -> [2, 6, 10, 13]       (text)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from speech_common.errors import UserError


@dataclass(frozen=True)
class SpecialTokens:
    """Token ids framing the source and target (see the module docstring).

    prompt_ids: the instruction at the start of the source (``bos`` first when there is one).
    end_ids: the source end marker.
    bos_id: the first target input token.
    eos_id: the end of the target.
    wait_id: the ``<|wait|>`` boundary token (speech), or None (text translation has no boundary token).
    """

    prompt_ids: tuple[int, ...]
    end_ids: tuple[int, ...]
    bos_id: int
    eos_id: int
    wait_id: int | None = None

    @property
    def prompt_len(self) -> int:
        return len(self.prompt_ids)


def make_tokens(tokenizer, prompt: str, wait_token: str | None = None, add_bos: bool = True) -> SpecialTokens:
    """The framing of ``tokenizer`` with instruction ``prompt`` (and the boundary token ``wait_token``,
    which must already be in the tokenizer's vocabulary). ``add_bos=False``: the prompt text already starts
    with what bos would be (a rendered chat template).

    Raises:
        UserError: the tokenizer has no eos, the prompt and bos are both empty, or ``wait_token`` is unknown.
    """
    name = getattr(tokenizer, "name_or_path", "tokenizer")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise UserError(f"{name}: the tokenizer has no eos token")
    bos = tokenizer.bos_token_id
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    prompt_ids = ([bos] if bos is not None and add_bos else []) + list(ids)
    if not prompt_ids:
        raise UserError("the prompt is empty and the tokenizer has no bos: the source needs a first token")
    wait_id = None
    if wait_token is not None:
        if wait_token not in tokenizer.get_vocab():
            raise UserError(f"{name}: the tokenizer has no {wait_token!r} token")
        wait_id = tokenizer.convert_tokens_to_ids(wait_token)
    return SpecialTokens(prompt_ids=tuple(prompt_ids), end_ids=(eos,), bos_id=bos if bos is not None else eos,
                         eos_id=eos, wait_id=wait_id)


def source_group_ends(prompt_len: int, unit_lens: Sequence[int], end_len: int,
                      end_with_last: bool = False) -> list[int]:
    """Source tokens visible once each group is read: the prompt, each unit, then the end marker (its own
    group, or with the last unit when ``end_with_last``). See the module docstring for an example."""
    ends = [prompt_len]
    for i, n in enumerate(unit_lens):
        last = i == len(unit_lens) - 1
        ends.append(ends[-1] + n + (end_len if end_with_last and last else 0))
    if not end_with_last or not unit_lens:
        ends.append(ends[-1] + end_len)
    return ends


def word_token_ids(tokenizer, words: Sequence[str]) -> list[list[int]]:
    """Token ids of each word as it appears in the running text: tokenized alone, with a leading space
    except the first."""
    return [tokenizer((" " if i else "") + w, add_special_tokens=False)["input_ids"] for i, w in enumerate(words)]


def word_start_table(tokenizer) -> torch.Tensor:
    """(V,) bool over the vocabulary: True for tokens whose text begins with whitespace (a new word)."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], clean_up_tokenization_spaces=False)
    return torch.tensor([bool(t) and t[0].isspace() for t in texts], dtype=torch.bool)


def split_words(ids: Sequence[int], starts_word: torch.Tensor) -> list[list[int]]:
    """Cut written tokens into words: a token starting with whitespace opens a new word, except the first
    token, which always belongs to word 1."""
    words: list[list[int]] = []
    for i, t in enumerate(ids):
        if not words or (i > 0 and bool(starts_word[t])):
            words.append([t])
        else:
            words[-1].append(t)
    return words
