"""Scoring: WER/CER (jiwer), streaming ASR latency, simultaneous-translation latency (SimulEval's
definitions), BLEU/chrF (sacrebleu), and the emission-times file the decoder writes.

The ``speech-llm score`` command (:mod:`speech_llm.commands.score`) puts them together.
"""

from speech_llm.metrics.bleu import TranslationScores, translation_scores
from speech_llm.metrics.emissions import UttEmissions, WordEmission, read_emissions, write_emissions
from speech_llm.metrics.latency import (
    LatencySummary,
    RefWord,
    UttLatency,
    computation_aware_time,
    summarize_latency,
    utterance_latency,
)
from speech_llm.metrics.simul import (
    SimulScores,
    average_lagging,
    average_proportion,
    corpus_scores,
    differentiable_average_lagging,
    end_offset,
    length_adaptive_average_lagging,
    sentence_scores,
    start_offset,
)
from speech_llm.metrics.wer import Normalizer, WerResult, align_words, compute_wer, format_details

__all__ = [
    "LatencySummary", "Normalizer", "RefWord", "SimulScores", "TranslationScores", "UttEmissions",
    "UttLatency", "WerResult", "WordEmission", "align_words", "average_lagging", "average_proportion",
    "computation_aware_time", "compute_wer", "corpus_scores", "differentiable_average_lagging",
    "end_offset", "format_details", "length_adaptive_average_lagging", "read_emissions",
    "sentence_scores", "start_offset", "summarize_latency", "translation_scores", "utterance_latency",
    "write_emissions",
]
