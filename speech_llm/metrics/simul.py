"""Simultaneous-translation latency with SimulEval's definitions: AL, LAAL, DAL, AP, StartOffset, EndOffset.

Notation, for one sentence: ``d_i`` (i = 1..|Y|) is the delay of the i-th hypothesis word — the amount of
source read when it was written, in source units (words for text input; milliseconds for speech, as in
SimulEval); ``|X|`` is the source length in the same units; ``|Y|`` is the hypothesis length
(``len(delays)``); ``|Y*|`` is the reference length in words. Pass *ideal* delays (source consumed) or
*computation-aware* delays (SimulEval's "elapsed": source consumed plus computation time, for speech
input — see :mod:`speech_llm.metrics.latency`); the formulas are the same.

- **AL** (average lagging, Ma et al. 2019)::

      gamma = |Y*| / |X|            (|Y| when no reference length is given)
      tau   = min { i : d_i >= |X| } (|Y| when no delay reaches |X|)
      AL    = 1/tau * sum_{i=1..tau} ( d_i - (i-1) / gamma )

  A first delay beyond the source (``d_1 > |X|``, possible with computation-aware delays) gives
  ``AL = d_1`` — the same value the formula gives with ``tau = 1``.
- **LAAL** (length-adaptive AL, Papi et al. 2022): AL with ``gamma = max(|Y|, |Y*|) / |X|``, so an
  over-long hypothesis cannot lower the lag by writing extra words.
- **DAL** (differentiable AL, Arivazhagan et al. 2019), with ``gamma = |Y| / |X|`` (hypothesis length)::

      d'_1 = d_1;   d'_i = max(d_i, d'_{i-1} + 1/gamma)
      DAL  = 1/|Y| * sum_{i=1..|Y|} ( d'_i - (i-1) / gamma )

- **AP** (average proportion, Cho & Esipova 2016): ``sum_i d_i / (|X| * |Y*|)`` (``|Y|`` without a
  reference length — SimulEval's choice; it may exceed 1 for an over-long hypothesis).
- **StartOffset**: ``d_1``. **EndOffset**: ``d_|Y| - |X|``.

An empty hypothesis has no delays: like SimulEval, it is left out of the corpus averages (and counted).
Corpus scores are plain means of sentence scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

METRICS = ("AL", "LAAL", "DAL", "AP", "StartOffset", "EndOffset")


def _check(delays: Sequence[float], source_length: float) -> None:
    if not delays:
        raise ValueError("no delays: the hypothesis is empty")
    if source_length <= 0:
        raise ValueError(f"source length must be positive, got {source_length}")


def _lagging(delays: Sequence[float], source_length: float, target_length: float) -> float:
    """``1/tau * sum_{i<=tau} (d_i - (i-1)/gamma)`` with ``gamma = target_length / source_length``."""
    _check(delays, source_length)
    if delays[0] > source_length:
        return float(delays[0])
    step = source_length / target_length           # 1 / gamma: ideal source per target word
    total, tau = 0.0, 0
    for i, d in enumerate(delays):                 # i = (index - 1)
        total += d - i * step
        tau = i + 1
        if d >= source_length:
            break
    return total / tau


def average_lagging(delays: Sequence[float], source_length: float,
                    reference_length: int | None = None) -> float:
    """AL; ``gamma`` uses the reference length when given, else the hypothesis length."""
    return _lagging(delays, source_length, reference_length or len(delays))


def length_adaptive_average_lagging(delays: Sequence[float], source_length: float,
                                    reference_length: int | None = None) -> float:
    """LAAL: AL with ``gamma = max(|hyp|, |ref|) / |X|``."""
    return _lagging(delays, source_length, max(len(delays), reference_length or 0))


def differentiable_average_lagging(delays: Sequence[float], source_length: float) -> float:
    """DAL with ``gamma = |hyp| / |X|``."""
    _check(delays, source_length)
    step = source_length / len(delays)
    total, prev = 0.0, 0.0
    for i, d in enumerate(delays):
        cur = d if i == 0 else max(d, prev + step)
        total += cur - i * step
        prev = cur
    return total / len(delays)


def average_proportion(delays: Sequence[float], source_length: float,
                       reference_length: int | None = None) -> float:
    """AP = ``sum(d) / (|X| * |Y*|)`` (``|Y|`` without a reference length)."""
    _check(delays, source_length)
    return float(sum(delays)) / (source_length * (reference_length or len(delays)))


def start_offset(delays: Sequence[float]) -> float:
    """Delay of the first word."""
    _check(delays, 1)
    return float(delays[0])


def end_offset(delays: Sequence[float], source_length: float) -> float:
    """Delay of the last word minus the source length."""
    _check(delays, source_length)
    return float(delays[-1]) - source_length


@dataclass(frozen=True)
class SimulScores:
    """The six metrics for one sentence, or their corpus means (same units as the delays; AP unitless)."""

    AL: float
    LAAL: float
    DAL: float
    AP: float
    StartOffset: float
    EndOffset: float

    def as_dict(self, ndigits: int = 4) -> dict[str, float]:
        return {k: round(v, ndigits) for k, v in asdict(self).items()}


def sentence_scores(delays: Sequence[float], source_length: float,
                    reference_length: int | None = None) -> SimulScores | None:
    """All metrics for one sentence; ``None`` for an empty hypothesis."""
    if not delays:
        return None
    return SimulScores(
        AL=average_lagging(delays, source_length, reference_length),
        LAAL=length_adaptive_average_lagging(delays, source_length, reference_length),
        DAL=differentiable_average_lagging(delays, source_length),
        AP=average_proportion(delays, source_length, reference_length),
        StartOffset=start_offset(delays),
        EndOffset=end_offset(delays, source_length),
    )


def corpus_scores(sentences: Sequence[SimulScores | None]) -> tuple[SimulScores | None, int]:
    """Mean of each metric over sentences with a hypothesis, and the number of empty ones left out."""
    scored = [s for s in sentences if s is not None]
    if not scored:
        return None, len(sentences)
    means = {m: sum(getattr(s, m) for s in scored) / len(scored) for m in METRICS}
    return SimulScores(**means), len(sentences) - len(scored)
