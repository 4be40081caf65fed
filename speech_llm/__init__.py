"""Streaming speech recognition and translation with a group-streaming LLM.

The LLM side of the toolkit, one package per unit (docs/ARCHITECTURE.md): :mod:`speech_llm.lm` (the
group-streaming LM core: positions, masks, KV cache, session, framing, targets), :mod:`speech_llm.model` (the
speech LLM, its assembly and checkpoints), :mod:`speech_llm.decoding` (Recognizer/Stream, endpointing, decode
dirs, live), :mod:`speech_llm.train`, :mod:`speech_llm.mt`, :mod:`speech_llm.metrics`, :mod:`speech_llm.export`,
:mod:`speech_llm.server`, and the console script (:mod:`speech_llm.cli`).

    import speech_llm
    rec = speech_llm.load_recognizer("exp/mini")      # rebuilt from the checkpoint dir alone
    s = rec.create_stream()
    s.accept_waveform(16000, samples); s.input_finished(); rec.decode(s)
    print(rec.get_result(s).text)

``load_recognizer``, ``Recognizer``, ``Stream`` and ``DecodeConfig`` are imported on first use, so
``import speech_llm`` (and ``speech-llm --help``) stays fast.
"""

__version__ = "0.1.0"

_LAZY = {
    "load_recognizer": "speech_llm.decoding.recognizer",
    "Recognizer": "speech_llm.decoding.recognizer",
    "Stream": "speech_llm.decoding.recognizer",
    "DecodeConfig": "speech_llm.config",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'speech_llm' has no attribute {name!r}")
