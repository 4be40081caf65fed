"""Decode a Kaldi data dir with a Recognizer: hypotheses, emission times and a summary.

Output directory::

    text             hypotheses, Kaldi format ("<utt> <words...>")
    emissions.jsonl  per-utterance word emission times (format: speech_llm.metrics.emissions)
    summary.json     task, mode, chunk, options, utterances, audio and compute seconds, RTF
                     (:class:`speech_llm.metrics.decode_dir.DecodeSummary`)
    partial.jsonl    results so far; an interrupted run resumes from it (removed when complete)

Each file is read and fed in blocks of one chunk with a decode after each block, as a live stream would
be processed (the result does not depend on the block size: see speech_llm.decoding.recognizer); in batch mode
the recognizer decodes each segment once its input is complete. Files of any length (read block by
block, so memory does not grow with them): the recognizer cuts each into segments
(endpointing), so a lecture gets the same treatment as a short utterance; ``text`` holds the segments'
text joined and ``emissions.jsonl`` the words with stream times. With ``batch_size = N`` up to N
utterances are live at once: each step feeds every live stream its next block and advances them all with one
``Recognizer.decode_streams`` call; a finished utterance is written out and replaced by the next one.
Every utterance's result is the one it gets decoded alone; ``compute_s`` is its share of the batch time.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from data_prep.audio import audio_blocks
from data_prep.fileutil import atomic_write_text
from data_prep.kaldi_dir import read_data_dir
from encoders.constants import SAMPLE_RATE
from speech_common.streaming import run_stream
from speech_llm.decoding.recognizer import Recognizer, Result, Stream
from speech_llm.metrics.decode_dir import DecodeSummary, write_decode_dir
from speech_llm.metrics.emissions import UttEmissions, WordEmission, parse_record


def decode_samples(rec: Recognizer, samples, block_s: float | None = None,
                   sample_rate: int = SAMPLE_RATE) -> tuple[Result, UttEmissions]:
    """Decode one input given as samples, fed in blocks of ``block_s`` seconds (default: one chunk) with
    a decode after each block, as a live stream would be."""
    return decode_blocks(rec, _blocks(samples, sample_rate, block_s or rec.chunk_s))


def decode_file(rec: Recognizer, path: str | os.PathLike, block_s: float | None = None,
                key: str = "") -> tuple[Result, UttEmissions]:
    """Decode an audio file of any length, read block by block (:func:`data_prep.audio.audio_blocks`)."""
    return decode_blocks(rec, audio_blocks(path, block_s or rec.chunk_s), key)


def decode_blocks(rec: Recognizer, blocks, key: str = "") -> tuple[Result, UttEmissions]:
    """Decode ``(samples, rate)`` blocks as one stream (:func:`run_stream`)."""
    return _result(rec, run_stream(rec, blocks), key)


def _blocks(samples, rate: int, block_s: float):
    block = max(1, int(round(block_s * rate)))
    for start in range(0, len(samples), block):
        yield samples[start:start + block], rate


def _result(rec: Recognizer, s: Stream, key: str) -> tuple[Result, UttEmissions]:
    res = rec.get_result(s)
    emis = UttEmissions(key=key, words=[WordEmission(w.word, w.audio_s, w.wall_s) for w in res.words],
                        wall_time=s.wall_s(), duration=s.num_samples / SAMPLE_RATE,
                        input_end_wall_s=s.input_end_wall, compute_s=s.compute_s, realtime=False)
    return res, emis


@dataclass
class _Live:
    """An utterance being decoded in a batch: its stream and the rest of its blocks."""

    key: str
    stream: Stream
    blocks: object


def decode_batched(rec: Recognizer, keys: list[str], open_blocks, batch_size: int):
    """Decode utterances ``keys`` (``open_blocks(key)`` gives each one's ``(samples, rate)`` blocks) with up
    to ``batch_size`` streams live at once, one ``decode_streams`` call per block. Yields
    ``(key, Result, UttEmissions)`` as each ends."""
    queue = iter(keys)
    live: list[_Live] = []
    while True:
        while len(live) < batch_size and (key := next(queue, None)) is not None:
            live.append(_Live(key, rec.create_stream(), iter(open_blocks(key))))
        if not live:
            return
        for u in live:
            block = next(u.blocks, None)
            if block is None:
                u.stream.input_finished()
            else:
                u.stream.accept_waveform(block[1], block[0])
        rec.decode_streams([u.stream for u in live])
        for u in [u for u in live if u.stream.finished]:
            live.remove(u)
            yield (u.key, *_result(rec, u.stream, u.key))


def decode_data_dir(rec: Recognizer, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                    progress: bool = True, batch_size: int = 1, info: dict | None = None) -> dict:
    """Decode every utterance of ``data_dir`` into ``out_dir`` (see the module docstring), ``batch_size``
    utterances at a time. ``info`` (e.g. the task and checkpoint) is copied into the summary. Returns the
    summary."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    utts = read_data_dir(data_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    partial_path = out / "partial.jsonl"
    done = _load_partial(partial_path)
    if done:  # rewrite without any line cut by the interruption, so appends start on a clean line
        atomic_write_text(partial_path, "".join(json.dumps({"key": k, **v}) + "\n" for k, v in done.items()))
    streaming = rec.config.mode == "streaming"
    todo = [k for k in utts if k not in done]
    with open(partial_path, "a", encoding="utf-8") as partial, \
            tqdm(total=len(todo), desc=f"decode ({rec.config.mode})", disable=not progress, unit="utt") as bar:
        if batch_size == 1:
            results = ((key, *decode_file(rec, utts[key].wav)) for key in todo)
        else:
            results = decode_batched(rec, todo, lambda k: audio_blocks(utts[k].wav, rec.chunk_s), batch_size)
        for key, res, emis in results:
            emis.key = key
            done[key] = {"text": res.text, "emissions": emis.to_json()}
            partial.write(json.dumps({"key": key, **done[key]}) + "\n")
            partial.flush()
            bar.update()

    keys = sorted(done)
    emissions = [parse_record(done[k]["emissions"], f"{partial_path}:{k}") for k in keys]
    audio_s = sum(e.duration or 0.0 for e in emissions)
    compute_s = sum(e.compute_s or 0.0 for e in emissions)
    info = dict(info or {})
    summary = write_decode_dir(out, ((k, done[k]["text"]) for k in keys), DecodeSummary(
        task=info.pop("task", "asr"), mode=rec.config.mode, num_utts=len(keys), compute_s=round(compute_s, 3),
        options=asdict(rec.config), chunk_ms=round(rec.chunk_s * 1000, 3) if streaming else None,
        audio_s=round(audio_s, 3), info=info), emissions)
    partial_path.unlink()
    return summary


def _load_partial(path: Path) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if not path.exists():
        return done
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
                done[rec["key"]] = {"text": rec["text"], "emissions": rec["emissions"]}
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by the interruption: that utterance is decoded again
    return done
