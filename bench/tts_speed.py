"""Synthesis speed of the sentence corpus's engines on one core: x real time per engine and voice.

Usage:
    python bench/tts_speed.py                    # 20 WordNet sentences per voice (~1 minute on one core)
    python bench/tts_speed.py --sentences 5 --engines piper

Each voice of :data:`data_prep.tts.SENTENCE_VOICES` speaks the same sentences through
:func:`data_prep.sentence_corpus.render_sentence` (synthesis, resampling to 16 kHz, pauses, loudness), one
process, one thread (onnxruntime for piper too); the first call of an engine (library or model loading) is
timed apart. "x RT" = audio seconds / compute seconds; "times" = share of utterances with engine word times.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from data_prep.sentence_corpus import PlannedSentence, render_sentence  # noqa: E402
from data_prep.text_corpus import select_sentences  # noqa: E402
from data_prep.tts import SENTENCE_VOICES, parse_engines  # noqa: E402
from encoders.constants import SAMPLE_RATE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--engines", default="espeak,flite,piper")
    args = parser.parse_args()
    engines = parse_engines(args.engines)
    sentences = select_sentences(args.sentences + 1, seed=0)
    print(f"{'speaker':8} {'engine':10} {'voice':14} {'rate':>5} {'pitch':>5} {'audio s':>8} {'x RT':>7} "
          f"{'times':>6} {'load s':>7}")
    totals: dict[str, list[float]] = {}
    warmed: set[str] = set()
    for voice in (v for v in SENTENCE_VOICES if v.engine in engines):
        load = 0.0
        if voice.engine not in warmed:
            t = time.perf_counter()
            render_sentence(PlannedSentence("0-0-0", "train", voice, sentences[-1]), seed=0)
            load = time.perf_counter() - t
            warmed.add(voice.engine)
        audio_s = compute_s = timed = 0.0
        for i, sentence in enumerate(sentences[:-1]):
            t = time.perf_counter()
            x, words = render_sentence(PlannedSentence(f"{voice.speaker}-100-{i:04d}", "train", voice, sentence), 0)
            compute_s += time.perf_counter() - t
            audio_s += len(x) / SAMPLE_RATE
            timed += words is not None
        tot = totals.setdefault(voice.engine, [0.0, 0.0])
        tot[0] += audio_s
        tot[1] += compute_s
        print(f"{voice.speaker:8} {voice.engine:10} {voice.name:14} {voice.rate:5} {voice.pitch:5} {audio_s:8.1f} "
              f"{audio_s / compute_s:7.1f} {timed / len(sentences[:-1]):6.0%} {load:7.2f}")
    for engine, (a, c) in totals.items():
        print(f"{engine}: {a / c:.1f} x real time on one core ({a:.0f} s of audio in {c:.1f} s)")


if __name__ == "__main__":
    main()
