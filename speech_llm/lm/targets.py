"""Training targets of the speech LLM: where the words go relative to the audio chunks (DESIGN.md §2).

The source of an utterance is ``[prompt][chunk 1 audio tokens]...[chunk N audio tokens][end marker]``.
The streaming target interleaves the words with the boundary token ``<wait>``::

    w(chunk 1) <wait> w(chunk 2) <wait> ... w(chunk N) <wait> w(after end) <eos>

where the words placed after chunk ``i`` are those whose end time falls inside chunks ``1 .. i - L``
(``L`` = look-ahead chunks). A word is "written after chunk i" so every token of it may see the prompt and
chunks ``1..i``; the ``<wait>`` closing chunk ``i`` is also written after chunk ``i``; words after the end
see everything, end marker included.

Rows and visibility (shift by one): the LLM input is ``[bos] + tokens[:-1]`` and row ``j`` predicts
``tokens[j]``, so row ``j`` sees the source available when ``tokens[j]`` was written. At inference this is
exactly "read chunk i, then write until ``<wait>``; feed that ``<wait>`` after chunk i+1 is read".

Batch mode (the same checkpoint, no waits): ``words <eos>``, every row sees the whole source.

Speech translation (``llm.task=st``): the words are those of the translation, which have no times of
their own. :func:`target_word_ends` gives each one the end time of a source word by proportional
position, a monotonic rule: target word ``j`` (0-based) of ``m`` takes the end time of source word
``ceil((j + 1) * n / m) - 1`` of ``n``. So the target advances through the source at the same relative
pace, never runs ahead of the source words it is proportionally due to, and the last target word waits
for the last source word. Example, n = 4 source words ending at ``[.5, 1, 1.5, 2]``::

    m = 2:  source words 1, 3        -> [1.0, 2.0]
    m = 6:  source words 0,1,1,2,3,3 -> [.5, 1, 1, 1.5, 2, 2]
    m = 1:  source word 3            -> [2.0]

Then the chunk assignment is the same as for transcripts, with ``streaming.delay_chunks`` as the
latency knob (a translation reorders words, so some look-ahead usually helps).

Example: 2 chunks of 4 source tokens after a prompt of 2 (``chunk_source_ends = [6, 10]``, source length
11 with a 1-token end marker), words A (ends in chunk 1) and B (ends in chunk 2), one token each, L = 0::

    tokens         A   <w>   B   <w>  <eos>
    input      <bos>    A   <w>   B   <w>
    visible        6    6   10   10   11
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Target:
    """One utterance's LLM target.

    input_ids: (T,) input tokens ``[bos] + tokens[:-1]``.
    labels: (T,) tokens to predict at each row.
    source_visible: (T,) source tokens each row may attend to.
    """

    input_ids: list[int]
    labels: list[int]
    source_visible: list[int]


def target_word_ends(source_ends: Sequence[float], num_target: int) -> list[float]:
    """End times for ``num_target`` target words from the source word end times (see the module docstring).

    Target word ``j`` of ``m`` gets ``source_ends[ceil((j + 1) * n / m) - 1]``: non-decreasing when the
    source times are, the last target word gets the last source word's time.

    Raises:
        ValueError: target words but no source words, or a negative ``num_target``.
    """
    n, m = len(source_ends), num_target
    if m < 0:
        raise ValueError(f"num_target must be >= 0, got {m}")
    if m and not n:
        raise ValueError("target words need at least one source word time")
    return [float(source_ends[-(-(j + 1) * n // m) - 1]) for j in range(m)]


def assign_words_to_chunks(word_ends: Sequence[float], chunk_s: float, num_chunks: int,
                           lookahead: int = 0) -> list[int]:
    """Chunk after which each word is written: ``1..num_chunks``, or ``num_chunks + 1`` = after the end.

    A word ending at ``e`` seconds lies in chunk ``max(1, ceil(e / chunk_s))``; it is written ``lookahead``
    chunks later. The result is made non-decreasing (words are written in order).
    """
    if chunk_s <= 0:
        raise ValueError(f"chunk_s must be > 0, got {chunk_s}")
    if lookahead < 0:
        raise ValueError(f"lookahead must be >= 0, got {lookahead}")
    out, last = [], 1
    for e in word_ends:
        c = max(1, math.ceil(round(e / chunk_s, 6))) + lookahead
        last = max(last, min(c, num_chunks + 1))
        out.append(last)
    return out


def streaming_target(word_tokens: Sequence[Sequence[int]], word_chunks: Sequence[int],
                     chunk_source_ends: Sequence[int], source_len: int, *, bos_id: int, wait_id: int,
                     eos_id: int) -> Target:
    """Build the streaming target (see the module docstring).

    Args:
        word_tokens: token ids of each word (as tokenized in context, e.g. with a leading space).
        word_chunks: from :func:`assign_words_to_chunks`, one per word.
        chunk_source_ends: for chunk i (1-based, list index i-1), the number of source tokens read once
            chunk i is in: prompt + audio tokens of chunks 1..i. Non-decreasing, <= source_len.
        source_len: all source tokens, end marker included.
    """
    if len(word_tokens) != len(word_chunks):
        raise ValueError("word_tokens and word_chunks differ in length")
    num_chunks = len(chunk_source_ends)
    tokens: list[int] = []
    visible: list[int] = []
    w = 0
    for i in range(1, num_chunks + 2):
        seen = chunk_source_ends[i - 1] if i <= num_chunks else source_len
        while w < len(word_tokens) and word_chunks[w] <= i:
            tokens += list(word_tokens[w])
            visible += [seen] * len(word_tokens[w])
            w += 1
        tokens.append(wait_id if i <= num_chunks else eos_id)
        visible.append(seen)
    return Target(input_ids=[bos_id] + tokens[:-1], labels=tokens, source_visible=visible)


def batch_target(word_tokens: Sequence[Sequence[int]], source_len: int, *, bos_id: int,
                 eos_id: int) -> Target:
    """Batch-mode target ``words <eos>``: every row sees the whole source."""
    tokens = [t for word in word_tokens for t in word] + [eos_id]
    return Target(input_ids=[bos_id] + tokens[:-1], labels=tokens, source_visible=[source_len] * len(tokens))
