"""Scoring: WER/CER (jiwer), streaming ASR latency, simultaneous-translation latency (SimulEval's
definitions), BLEU/chrF (sacrebleu), and the emission-times file the decoder writes.

The ``speech-llm score`` command (:mod:`speech_llm.commands.score`) puts them together.

The names below (:data:`__all__`) can be imported from the package (``from speech_llm.metrics import
compute_wer``); each is loaded from its module on first use, so importing one module (e.g.
``speech_llm.metrics.wer``) does not import the others (sacrebleu with ``bleu``).
"""

import importlib

_EXPORTS = {
    "bleu": ("TranslationScores", "translation_scores"),
    "emissions": ("UttEmissions", "WordEmission", "read_emissions", "write_emissions"),
    "latency": ("LatencySummary", "RefWord", "UttLatency", "computation_aware_time", "summarize_latency",
                "utterance_latency"),
    "simul": ("SimulScores", "average_lagging", "average_proportion", "corpus_scores",
              "differentiable_average_lagging", "end_offset", "length_adaptive_average_lagging", "sentence_scores",
              "start_offset"),
    "wer": ("Normalizer", "WerResult", "align_words", "compute_wer", "format_details"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name in _EXPORTS:  # a submodule, as after an eager import
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_EXPORTS))
