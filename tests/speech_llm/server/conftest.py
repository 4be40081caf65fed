"""Fixtures of the server tests: the tiny random-weight recognizer (its text is arbitrary but deterministic,
which is all "server == in-process" equivalence needs), espeak-ng utterances, a server in a background
thread, and the in-process references (server_testutil.py)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from server_testutil import SENTENCES, Utterance, espeak, reference
from tiny_speech_llm import make_speech_llm

from speech_llm.config import DecodeConfig, EndpointConfig
from speech_llm.decoding.recognizer import Recognizer, Result
from speech_llm.server.app import ServerConfig, ServerThread


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """The tiny model on one torch thread (tests/speech_llm/conftest.py)."""


@pytest.fixture(scope="session")
def server_rec(tiny_llm_dir) -> Recognizer:
    model, tok = make_speech_llm(tiny_llm_dir)
    # energy endpointing: the segment ends must come from the pauses (a random-weight model's writes would
    # not end a segment by the decoder rules)
    return Recognizer(model, tok, DecodeConfig(max_tokens_per_read=3, max_tokens_per_segment=40,
                                               endpoint=EndpointConfig(mode="energy")))


@pytest.fixture(scope="session")
def utterances(tmp_path_factory) -> list[Utterance]:
    """Eight different sentences; the last two are two sentences with a 1.5 s pause (two segments)."""
    root = tmp_path_factory.mktemp("utts")
    out = [espeak(s, root / f"u{i}.wav") for i, s in enumerate(SENTENCES)]
    for i in (6, 7):
        u, v = out[i], out[(i + 3) % len(out)]
        pcm = np.concatenate([u.samples, np.zeros(int(1.5 * u.rate), np.int16), v.samples])
        path = root / f"u{i}_pause.wav"
        sf.write(path, pcm, u.rate, subtype="PCM_16")
        out[i] = Utterance(path, pcm, u.rate)
    return out


@pytest.fixture(scope="session")
def references(server_rec, utterances) -> list[Result]:
    return [reference(server_rec, u.samples, u.rate) for u in utterances]


@pytest.fixture
def server(server_rec):
    with ServerThread(server_rec, ServerConfig(port=0)) as srv:
        yield srv
