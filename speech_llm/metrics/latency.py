"""Streaming ASR latency from word emission times and reference word alignments. Pure functions.

Inputs per utterance: the hypothesis words as written, each with ``audio_s`` (seconds of audio consumed
when it was written) and ``wall_s`` (wall-clock seconds since the stream started); the reference words
with ``(start, end)`` in seconds (a forced alignment); the audio duration; the processing time.

Two clocks
----------
Every emission gets two times on the audio timeline (seconds from the start of the audio):

- **ideal**: ``audio_s`` — the system is infinitely fast, a word appears the moment the audio it was
  written after has arrived.
- **computation-aware** (:func:`computation_aware_time`):

  - stream fed in real time (``realtime=True``: audio given no faster than it plays, live use):
    ``wall_s`` itself, since stream start and audio start coincide and audio arrives at playback pace;
  - stream fed as fast as the decoder took it (``realtime=False``, test-set decoding): ``audio_s +
    wall_s``, SimulEval's "elapsed": the ideal time plus all computation spent since the stream
    started. This is what a real-time run would see if computation never overlapped waiting for audio:
    a pessimistic bound (it counts work done on early chunks as delay for every later word).

Metrics
-------
- **first-token latency**: time of the first hypothesis word minus the start of the first reference word
  (speech onset). Needs an alignment; ``None`` when there is no hypothesis or no reference word.
- **word emission delay**: for each hypothesis word matched to a reference word, its time minus the end
  of that reference word (negative when a word is written before its end). Matching follows jiwer's
  minimum-edit alignment of the normalised word sequences, by position: hits *and* substitutions are
  matched (a substituted word is still the system's output for that reference word); insertions (no
  reference word) and deletions (no hypothesis word) have no delay and are only counted. A word that
  normalises to several tokens (``twenty-one``) gives each token its times. Mean and p90 (numpy's
  linear-interpolation percentile) are taken over all matched words of the corpus.
- **finalization latency**: wall-clock seconds from ``input_finished()`` to the final result,
  ``wall_time - input_end_wall_s`` (whichever way the stream was fed, only the computation done after
  the input ended counts). For a real-time stream without ``input_end_wall_s`` the input ends at
  ``duration``. On the ideal clock the final result coincides with input end by construction, so only
  the computation-aware value exists.
- **real-time factor**: processing seconds over audio seconds (``compute_s`` when given, else
  ``wall_time`` for a stream fed as fast as possible; undefined for a real-time stream without
  ``compute_s``). Corpus RTF = total processing / total audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from speech_llm.metrics.wer import Normalizer, align_words


class RefWord(NamedTuple):
    """A reference word and its time span in seconds."""

    word: str
    start: float
    end: float


def computation_aware_time(audio_s: float, wall_s: float, realtime: bool) -> float:
    """Time of an emission on the audio timeline counting computation (module docstring, "Two clocks")."""
    return wall_s if realtime else audio_s + wall_s


@dataclass(frozen=True)
class UttLatency:
    """Latency of one utterance (seconds); ``delays_*`` hold one value per matched word, hypothesis order."""

    duration: float
    processing_s: float | None
    first_token_ideal: float | None
    first_token_ca: float | None
    delays_ideal: tuple[float, ...]
    delays_ca: tuple[float, ...]
    finalization_ca: float | None
    matched: int
    unmatched_hyp: int
    unmatched_ref: int

    @property
    def rtf(self) -> float | None:
        if self.processing_s is None or self.duration <= 0:
            return None
        return self.processing_s / self.duration


def _expand(words: Sequence[tuple], norm: Normalizer) -> tuple[list[str], list[int]]:
    """Normalised tokens of a word list and, for each token, the index of the word it came from."""
    tokens, origin = [], []
    for i, w in enumerate(words):
        for t in norm(w[0]).split():
            tokens.append(t)
            origin.append(i)
    return tokens, origin


def utterance_latency(emissions: Sequence[tuple[str, float, float]], ref_words: Sequence[tuple] | None,
                      duration: float, wall_time: float, *, input_end_wall_s: float | None = None,
                      compute_s: float | None = None, realtime: bool = False,
                      normalizer: Normalizer | None = None) -> UttLatency:
    """Latency of one utterance.

    Args:
        emissions: ``(word, audio_s, wall_s)`` per written word, in writing order
            (:class:`~speech_llm.metrics.emissions.WordEmission` fits).
        ref_words: ``(word, start_s, end_s)`` per reference word (:class:`RefWord` fits), or ``None``
            when there is no alignment (then only finalization and RTF are computed).
        duration: audio seconds.
        wall_time: wall-clock seconds from stream start to the final result.
        input_end_wall_s: wall clock at ``input_finished()``.
        compute_s: seconds of computation for this stream (for the RTF).
        realtime: whether the audio was fed at playback pace (see :func:`computation_aware_time`).
        normalizer: applied to hypothesis and reference words before matching (default: the WER default).
    """
    norm = normalizer or Normalizer()
    ideal = [float(e[1]) for e in emissions]
    ca = [computation_aware_time(float(e[1]), float(e[2]), realtime) for e in emissions]

    if input_end_wall_s is None and realtime:
        input_end_wall_s = duration
    finalization = None if input_end_wall_s is None else wall_time - input_end_wall_s
    processing = compute_s if compute_s is not None else (None if realtime else wall_time)

    hyp_tok, hyp_of = _expand(emissions, norm)
    first_ideal = first_ca = None
    delays_ideal: list[float] = []
    delays_ca: list[float] = []
    matched, unmatched_hyp, unmatched_ref = 0, len(hyp_tok), 0
    if ref_words is not None:
        ref_tok, ref_of = _expand(ref_words, norm)
        if hyp_tok and ref_tok:
            onset = float(ref_words[ref_of[0]][1])
            first_ideal = ideal[hyp_of[0]] - onset
            first_ca = ca[hyp_of[0]] - onset
        for ri, hj in align_words(ref_tok, hyp_tok):
            if ri is None or hj is None:
                continue
            end = float(ref_words[ref_of[ri]][2])
            delays_ideal.append(ideal[hyp_of[hj]] - end)
            delays_ca.append(ca[hyp_of[hj]] - end)
        matched = len(delays_ideal)
        unmatched_hyp = len(hyp_tok) - matched
        unmatched_ref = len(ref_tok) - matched
    return UttLatency(duration=float(duration), processing_s=processing, first_token_ideal=first_ideal,
                      first_token_ca=first_ca, delays_ideal=tuple(delays_ideal), delays_ca=tuple(delays_ca),
                      finalization_ca=finalization, matched=matched, unmatched_hyp=unmatched_hyp,
                      unmatched_ref=unmatched_ref)


@dataclass(frozen=True)
class LatencySummary:
    """Corpus latency (seconds): means over utterances for first token and finalization, mean and p90
    over all matched words for the emission delay, total processing over total audio for the RTF.
    A field is ``None`` when no utterance defines it."""

    num_utts: int
    first_token_ideal: float | None
    first_token_ca: float | None
    delay_mean_ideal: float | None
    delay_mean_ca: float | None
    delay_p90_ideal: float | None
    delay_p90_ca: float | None
    finalization_ca: float | None
    rtf: float | None
    matched_words: int
    unmatched_hyp_words: int
    unmatched_ref_words: int

    def as_dict(self) -> dict:
        def both(ideal, ca):
            return {"ideal": _round(ideal), "computation_aware": _round(ca)}
        return {
            "num_utts": self.num_utts,
            "first_token_s": both(self.first_token_ideal, self.first_token_ca),
            "word_delay_mean_s": both(self.delay_mean_ideal, self.delay_mean_ca),
            "word_delay_p90_s": both(self.delay_p90_ideal, self.delay_p90_ca),
            "finalization_s": both(None, self.finalization_ca),
            "rtf": _round(self.rtf),
            "matched_words": self.matched_words,
            "unmatched_hyp_words": self.unmatched_hyp_words,
            "unmatched_ref_words": self.unmatched_ref_words,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return float(np.mean(vals)) if vals else None


def _p90(xs: Sequence[float]) -> float | None:
    return float(np.percentile(xs, 90)) if len(xs) else None


def summarize_latency(utts: Sequence[UttLatency]) -> LatencySummary:
    """Aggregate per-utterance latencies (see :class:`LatencySummary`)."""
    all_ideal = [d for u in utts for d in u.delays_ideal]
    all_ca = [d for u in utts for d in u.delays_ca]
    timed = [u for u in utts if u.processing_s is not None]
    audio = sum(u.duration for u in timed)
    rtf = sum(u.processing_s for u in timed) / audio if timed and audio > 0 else None
    return LatencySummary(
        num_utts=len(utts),
        first_token_ideal=_mean([u.first_token_ideal for u in utts]),
        first_token_ca=_mean([u.first_token_ca for u in utts]),
        delay_mean_ideal=_mean(all_ideal), delay_mean_ca=_mean(all_ca),
        delay_p90_ideal=_p90(all_ideal), delay_p90_ca=_p90(all_ca),
        finalization_ca=_mean([u.finalization_ca for u in utts]),
        rtf=rtf,
        matched_words=sum(u.matched for u in utts),
        unmatched_hyp_words=sum(u.unmatched_hyp for u in utts),
        unmatched_ref_words=sum(u.unmatched_ref for u in utts),
    )
