"""Streaming decoding with the speech LLM: what ``speech-llm decode/transcribe/live/sweep`` and the server drive.

* :mod:`~speech_llm.decoding.recognizer` — :class:`Recognizer` (the shared model) and :class:`Stream` (one
  utterance's state), as in sherpa-onnx; :func:`load_recognizer`;
* :mod:`~speech_llm.decoding.resample` — streaming resampling to 16 kHz;
* :mod:`~speech_common.endpoint` (shared with speech_runtime) — the energy gate and the decoder rules that end segments;
* :mod:`~speech_llm.decoding.decode` — decode dirs (the feed-decode-finish loop of one stream is
  :func:`speech_common.streaming.run_stream`, shared with speech_runtime);
* :mod:`~speech_llm.decoding.live` / :mod:`~speech_llm.decoding.display` — the microphone and the terminal;
* :mod:`~speech_llm.decoding.sweep` — one checkpoint decoded and scored over a grid of chunk sizes.

The torch-free equivalent on onnxruntime is the separate package :mod:`speech_runtime`.
"""
