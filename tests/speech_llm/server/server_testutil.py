"""Helpers of the server tests: espeak-ng utterances, in-process references, protocol messages."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tiny_speech_llm import decode_in_chunks

from speech_llm.decoding.recognizer import Recognizer, Result
from speech_llm.server.client import Audio

SENTENCES = ["the quick brown fox jumps over the lazy dog", "turn on the light in the kitchen please",
             "one two three four five six seven eight nine ten", "alice and bob meet at noon",
             "please call me back tomorrow morning", "the train to boston leaves at six",
             "my favourite colour is green", "we will need more coffee for the meeting"]


@dataclass
class Utterance:
    path: Path
    samples: np.ndarray        # int16 (N,)
    rate: int

    def audio(self) -> Audio:
        return Audio(self.path.name, self.samples, self.rate)


def espeak(text: str, path: Path, voice: str = "en") -> Utterance:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    samples, rate = sf.read(path, dtype="int16")
    return Utterance(path, samples, rate)


def reference(rec: Recognizer, samples: np.ndarray, rate: int) -> Result:
    """The in-process result the server must give: one stream alone, fed in chunk-sized blocks."""
    return decode_in_chunks(rec, samples, rate)


def start_message(rate: int, fmt: str = "s16le", **extra) -> dict:
    return {"type": "start", "version": 1, "sample_rate": rate, "format": fmt, "channels": 1, **extra}
