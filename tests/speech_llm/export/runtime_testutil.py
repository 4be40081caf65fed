"""Helpers of the export tests: test audio, feeding streams block by block, comparing two recognisers."""

from __future__ import annotations

import numpy as np
import torch
from tiny_speech_llm import WAIT

import speech_runtime
from speech_llm.config import DecodeConfig, EndpointConfig
from speech_runtime.frontend import SAMPLE_RATE


def audio(seconds: float, seed: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    g = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 150 + 100 * seed
    return (0.3 * np.sin(2 * np.pi * (f0 + 300 * t) * t) + 0.05 * g.standard_normal(n)).astype(np.float32)


WHISPER_POSITIONS = 64
"""Encoder frames of the tiny test Whisper's position table (1.28 s): the test audio runs past it (clamped)."""

UTTERANCES = [(2.3, 0), (1.1, 1), (0.5, 3), (0.01, 4)]


def feed(rec, streams_audio, rate=SAMPLE_RATE, seed=0, fixed=None):
    """Feed every stream random blocks (or ``fixed``-sized ones) round by round, decoding them together."""
    g = np.random.default_rng(seed)
    streams = [rec.create_stream() for _ in streams_audio]
    pos = [0] * len(streams)
    as_tensor = not isinstance(rec, speech_runtime.Recognizer)
    while any(p < len(x) for p, x in zip(pos, streams_audio)):
        for i, (s, x) in enumerate(zip(streams, streams_audio)):
            if pos[i] < len(x):
                n = fixed or int(g.integers(1, rate // 3))
                block = x[pos[i]:pos[i] + n]
                s.accept_waveform(rate, torch.from_numpy(block) if as_tensor else block)
                pos[i] += n
                if pos[i] >= len(x):
                    s.input_finished()
        rec.decode_streams(streams)
    rec.decode_streams(streams)
    return streams, [rec.get_result(s) for s in streams]


def same(a_streams, a_results, b_streams, b_results):
    for sa, ra, sb, rb in zip(a_streams, a_results, b_streams, b_results):
        assert list(sa.trace) == list(sb.trace)           # every token, <wait>/eos included, and what it saw
        assert ra.text == rb.text and ra.committed == rb.committed and rb.finished
        assert [(w.word, round(w.audio_s, 6)) for w in ra.words] == [(w.word, round(w.audio_s, 6)) for w in rb.words]


def with_pauses(layout=((0.6, 1.9, 0), (1.4, 1.2, 1), (0.9, 2.6, 2), (1.0, 0.0, 0))) -> np.ndarray:
    """(pause s, speech s, seed) pieces: :func:`audio` after -70 dBFS noise, so that the energy gate opens several
    segments and the decoder rules and energy mode have pauses to end them at."""
    g = np.random.default_rng(9)
    parts = []
    for pause, speech, seed in layout:
        parts += [3e-4 * g.standard_normal(round(pause * SAMPLE_RATE)).astype(np.float32), audio(speech, seed)]
    return np.concatenate(parts)


def bounds(result) -> list[tuple[float, float, str, str]]:
    """The finished segments of a result: (start_s, end_s, reason, text)."""
    return [(round(g.start_s, 6), round(g.end_s, 6), g.reason, g.text) for g in result.segments]


SHORT_RULES = {"rule1_silence_s": 0.32, "rule2_silence_s": 0.32, "max_segment_s": 1.6}
"""Decoder rules short enough that the tiny random model's pauses in writing end segments within seconds."""


def endpointed(torch_rec, decode_mode="streaming", context_words=0, **endpoint):
    """A torch Recognizer over ``torch_rec``'s model with endpointing on (``endpoint``: EndpointConfig fields), and
    the same settings as runtime overrides of an export of ``torch_rec`` (whose decode config has it off)."""
    from dataclasses import replace

    from speech_llm.config import EndpointConfig
    from speech_llm.decoding.recognizer import Recognizer

    config = replace(torch_rec.config, mode=decode_mode, context_words=context_words,
                     endpoint=EndpointConfig(**endpoint))
    overrides = {"mode": decode_mode, "context_words": context_words, "endpoint.enabled": True}
    return Recognizer(torch_rec.model, torch_rec.tokenizer, config), \
        overrides | {f"endpoint.{k}": v for k, v in endpoint.items()}


def decode_config(**kw) -> DecodeConfig:
    return DecodeConfig(max_tokens_per_read=3, max_tokens_per_segment=60, endpoint=EndpointConfig(enabled=False),
                        **kw)


def whisper_config(llm_dir, whisper_dir, *extra: str, chunk_frames: int = 8, stack: int = 4):
    """The tiny Whisper encoder (20 ms frames), a VocabProjector over the tiny LLM's vocabulary (a low
    temperature, so that its mixes are close to single tokens and the text follows the audio); ``extra``:
    more config overrides."""
    from speech_llm.config import load_config

    return load_config(None, [
        "encoder.name=whisper", f"encoder.path_or_name={whisper_dir}", "encoder.subsampling=2",
        "encoder.dropout=0.0", f"projector.stack={stack}",
        "projector.kind=vocab", "projector.temperature=0.0025", f"streaming.chunk_ms={chunk_frames * 20}",
        f"decode.chunk_ms={chunk_frames * 20}", f"llm.path_or_name={llm_dir}", f"llm.wait_token={WAIT}",
        "llm.prompt.asr=transcribe:", *extra])
