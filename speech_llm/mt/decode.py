"""Incremental word-level wait-k decoding of text on a :class:`~speech_llm.lm.group_lm.GroupStreamingSession`.

Policy (one sentence of ``n`` source words, lag ``k``)::

    read the prompt; read words 1..min(k, n)                  (word n brings the end marker)
    write word 1: feed bos, then each written token, until the model writes a token that starts a new
        word (leading space) or eos; that token is *pending* (not fed yet)
    read one more source word (if any), feed the pending token, write until the next word start ... and so on
    once all n words are read, write until eos

eos is suppressed while source words remain (the translation cannot end before the source does). Batch
mode (``k = None``) reads everything first, then writes; any ``k >= n`` does exactly the same. Every token
is forwarded once: the session ends with ``source tokens + fed target tokens`` cache slots. The rows see
exactly the visibility of :func:`speech_llm.mt.targets.wait_k_target` applied to the written words, so the
logits equal those of one training forward (tested).

Emissions: word ``j`` is committed when the token after it is written; it records ``src_words`` (source
words read then: ``min(k + j - 1, n)`` under pure wait-k) and ``wall_s`` (seconds since the first source
word was read; the prompt is read before the clock starts). :func:`decode_mt_data` writes a decode dir
(``text``, ``emissions.jsonl``, ``summary.json``) in the layout ``speech-llm score --task mt`` reads.

Usage:
    from speech_llm.mt import load_mt_model, translate, decode_mt_data
    model = load_mt_model("exp/mt")
    r = translate(model, "TURN ON THE LIGHT", k=3)
    r.text, [(w.word, w.src_words) for w in r.words]
    decode_mt_data("exp/mt", None, {"utt1": "OPEN THE DOOR"}, k=3, out_dir="exp/mt/decode_k3")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from speech_common.errors import UserError
from speech_llm.metrics.decode_dir import DecodeSummary, write_decode_dir
from speech_llm.metrics.emissions import UttEmissions, WordEmission
from speech_llm.mt.framing import source_groups
from speech_llm.mt.model import MTModel, load_mt_model, wrap_model
from speech_llm.mt.targets import check_k


@dataclass
class MTResult:
    """One translated sentence.

    text: the translation (words joined by single spaces).
    words: committed words with ``src_words`` and ``wall_s`` (``audio_s`` is None: text input).
    units: token ids of each written word, in order (what :func:`speech_llm.mt.framing.split_words` cuts).
    unit_src_words: source words read when each unit was written.
    tokens: all written tokens, eos excluded.
    finished: True when the model wrote eos (False: the token budget ran out).
    input_ids: the target tokens fed to the model, bos first.
    source_visible: source tokens each fed row attended to.
    logits: (len(input_ids), V) logits of the fed rows, when asked for.
    num_source_tokens, num_forwarded: source tokens read, and the session's cache length at the end.
    src_len: source words; wall_time: seconds from the first source word to the end.
    """

    text: str
    words: list[WordEmission]
    units: list[list[int]]
    unit_src_words: list[int]
    tokens: list[int]
    finished: bool
    input_ids: list[int]
    source_visible: list[int]
    num_source_tokens: int
    num_forwarded: int
    src_len: int
    wall_time: float
    logits: torch.Tensor | None = field(default=None, repr=False)


def _default_budget(num_source_tokens: int) -> int:
    return 4 * num_source_tokens + 16


@torch.no_grad()
def translate(model: MTModel, text: str, k: int | None, *, max_tokens: int | None = None,
              return_logits: bool = False) -> MTResult:
    """Translate one sentence with word-level wait-k (``k = None``: batch mode). See the module docstring.

    ``max_tokens`` caps the written tokens (eos included); default ``4 x`` the source word tokens + 16.
    The writing is :meth:`~speech_llm.lm.group_lm.GroupStreamingSession.greedy_write` with every word-start
    token as a stop: the token that starts word ``j + 1`` stays pending while one more source word is read.
    """
    check_k(k)
    src = source_groups(model.tokenizer, model.framing, text)
    n, ends = src.num_words, src.ends
    budget = _default_budget(ends[n] - ends[0]) if max_tokens is None else max_tokens
    if budget < 1:
        raise ValueError(f"max_tokens must be >= 1, got {budget}")
    glm, dev = model.glm, model.device
    eos = model.framing.eos_id
    embeds = glm.embed(torch.tensor([src.ids], device=dev))          # (1, S, D)
    sess = glm.start(1)
    read = 0

    def read_to(m: int) -> None:
        nonlocal read
        if m > read:
            sess.read(embeds[:, ends[read]:ends[m]])
            read = m

    sess.read(embeds[:, :ends[0]])                                   # the prompt, before the clock starts
    t0 = time.perf_counter()
    read_to(n if k is None else min(k, n))

    pending, word = model.framing.bos_id, []
    units: list[list[int]] = []
    unit_src: list[int] = []
    unit_wall: list[float] = []
    fed: list[int] = []
    visible: list[int] = []
    rows: list[torch.Tensor] = []
    finished = False
    while len(fed) < budget and not finished:
        first = not word      # the output's first token belongs to word 1, whatever it starts with
        res = sess.greedy_write(torch.tensor([pending], device=dev), [eos], 1 if first else budget - len(fed),
                                suppress_ids=[eos] if read < n else [],
                                stop_table=None if first else model.starts_word, keep_logits=return_logits)
        toks = res.tokens[0]
        fed += [pending, *toks[:-1]]
        visible += [ends[read]] * len(toks)
        rows += [r[0] for r in res.logits or []]
        word += toks[:-1]
        last = toks[-1]
        if last == eos:
            finished = True
        elif bool(res.stopped[0]):                                   # a word start: word complete
            units.append(word)
            unit_src.append(read)
            unit_wall.append(time.perf_counter() - t0)
            word = [last]
            read_to(min(read + 1, n))
        else:                                                        # the token budget (or the first token)
            word.append(last)
        pending = last
    if word:
        units.append(word)
        unit_src.append(read)
        unit_wall.append(time.perf_counter() - t0)

    words = _words(model.tokenizer, units, unit_src, unit_wall)
    tokens = [t for u in units for t in u]
    return MTResult(
        text=" ".join(w.word for w in words), words=words, units=units, unit_src_words=unit_src, tokens=tokens,
        finished=finished, input_ids=fed, source_visible=visible, num_source_tokens=ends[read],
        num_forwarded=sess.num_forwarded, src_len=n, wall_time=time.perf_counter() - t0,
        logits=torch.stack(rows) if return_logits and rows else None)


def _words(tokenizer, units: list[list[int]], src: list[int], wall: list[float]) -> list[WordEmission]:
    """Committed words; a unit whose text is blank is dropped, one with inner spaces gives several words."""
    out = []
    for ids, s, w in zip(units, src, wall):
        for part in tokenizer.decode(ids, skip_special_tokens=True).split():
            out.append(WordEmission(word=part, audio_s=None, wall_s=round(w, 6), src_words=s))
    return out


def _as_model(model: str | Path | MTModel | nn.Module, tokenizer, device: str | torch.device) -> MTModel:
    if isinstance(model, MTModel):
        return model
    if isinstance(model, str | Path):
        return load_mt_model(model, device=device)
    if isinstance(model, nn.Module):
        if tokenizer is None:
            raise UserError("decode_mt_data: a model object needs its tokenizer")
        return wrap_model(model, tokenizer)
    raise UserError(f"decode_mt_data: want a model dir, an MTModel or a causal LM, got {type(model).__name__}")


def decode_mt_data(model: str | Path | MTModel | nn.Module, tokenizer, sources: Mapping[str, str],
                   k: int | None, out_dir: str | Path, batch: bool = False, *, max_tokens: int | None = None,
                   device: str | torch.device = "cpu", progress: bool = False,
                   on_result: Callable[[str, MTResult], None] | None = None) -> dict:
    """Translate ``{key: source sentence}`` and write a decode dir for ``speech-llm score --task mt``.

    Args:
        model: a model dir (:func:`~speech_llm.mt.model.load_mt_model`), an :class:`MTModel`, or a causal LM
            / :class:`~speech_llm.lm.group_lm.GroupStreamingLM` (then ``tokenizer`` is required and the default
            prompt is used).
        tokenizer: the tokenizer of a bare model; ignored otherwise (may be None).
        sources: utterance key -> source text (e.g. a Kaldi ``text`` file of the English side).
        k: wait-k lag (>= 1); ignored when ``batch``.
        out_dir: receives ``text`` (``<key> <translation>``), ``emissions.jsonl`` (``src_words``, ``wall_s``,
            ``src_len`` per utterance; :mod:`speech_llm.metrics.emissions`) and ``summary.json``.
        batch: read each whole sentence first, then write.
        on_result: called with each key and :class:`MTResult` as soon as it is translated.

    Returns:
        The summary written to ``summary.json``.
    """
    mt = _as_model(model, tokenizer, device)
    k = None if batch else check_k(k)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines, emissions = [], []
    compute, written = 0.0, 0
    for key, text in tqdm(sources.items(), desc="translate", unit="utt", disable=not progress):
        if not key or any(c.isspace() for c in key):
            raise UserError(f"utterance key {key!r}: must be non-empty without whitespace")
        start = time.perf_counter()
        r = translate(mt, text, k, max_tokens=max_tokens)
        elapsed = time.perf_counter() - start
        compute += elapsed
        written += len(r.tokens)
        if on_result is not None:
            on_result(key, r)
        lines.append((key, r.text))
        emissions.append(UttEmissions(key=key, words=r.words, wall_time=round(r.wall_time, 6),
                                      compute_s=round(elapsed, 6), src_len=r.src_len))
    return write_decode_dir(out_dir, lines, DecodeSummary(
        task="mt", mode="batch" if k is None else "wait-k", num_utts=len(lines), compute_s=round(compute, 3),
        options={"k": k, "max_tokens": max_tokens}, k=k,
        info={"model": mt.info.get("path"), "tokens_written": written}), emissions)
