"""Endpointing under background noise (issue #26 §1): segments per utterance and segment lengths, decoder rules
vs energy rules, on long-form files with continuous noise mixed in.

Usage:
    speech-llm prepare longform --data data/test --out data/longform_pauses --minutes 3 --pause 0.5,2.5
    python bench/endpoint_noise.py --exp-dir exp/mini --long data/longform_pauses/long_3min
    python bench/endpoint_noise.py --exp-dir exp/mini --long data/longform_pauses/long_3min \
        --levels=-45,-35,-25 --modes decoder,energy --decode endpoint.rule2_silence_s=1.0 --threads 2

Needs a trained checkpoint (the decoder rules read what the model writes: a random-weight model writes
words after every chunk and never ends a segment by rules 1-2). Numbers: bench/RESULTS.md.

Method. Each long file of ``--long`` (``segments.jsonl`` from ``speech-llm prepare longform``: its
utterances with their offsets) is read at 16 kHz and mixed with continuous white Gaussian noise whose RMS is
each level of ``--levels`` in dBFS ("clean": none), clipped to [-1, 1]. Each mix is streamed through one
Recognizer per endpoint mode (``--modes``; the checkpoint's ``decode`` section plus ``--decode`` overrides
plus ``endpoint.mode=<mode>``), in blocks of one chunk with a ``decode`` after each, as ``transcribe`` does.
The energy gate's threshold is ``endpoint.threshold_db`` (-40 dBFS by default): noise at -45 stays under it,
-35 and -25 are above it, where the energy rules can only end a segment at ``max_segment_s``.

One by one: every utterance of the file, cut out of the same mix (its ``start``..``end`` from
``segments.jsonl``, so with the same noise), decoded alone by the recognizer of the checkpoint's own decode
config (``--decode`` overrides included): the reference WER of each level.

Columns: utts (utterances in the file), segs (segments the recognizer cut), with text (segments that have
text), max len (s, the longest segment), mean len (s), split utts (utterances with a segment boundary more
than 0.1 s inside them: a sentence cut in two), then the segments per end reason (``silence`` = rule 2 or
energy silence, ``no_text`` = rule 1, ``max_length``, ``end``), "capped over pause" (``max_length`` segments
that contain a whole pause of at least ``rule2_silence_s`` + one chunk: a pause long enough that rule 2 should
have ended the segment on any chunk grid; of the file's "long pauses" of that length), WER of the whole
file's text against the joined transcript, WER of the utterances one by one, their ratio (goal <= 1.1x), and
RTF (seconds in ``decode`` / audio s). Goal: segs with text close to utts, max len well under
``max_segment_s`` at every level, split utts near 0, no segment capped over a pause. Use pauses longer than
rule 2 in the long files (``--pause 0.5,2.5``; the default 0.5-1.0 s pauses are all shorter than rule 2, so
in decoder mode segments run on to the cap by design). "clean unchanged": on the clean file the decoder
rules give the same text as the energy rules (the endpointer before issue #26).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:          # run as a script from anywhere
    sys.path.insert(0, str(REPO))

REASONS = ("silence", "no_text", "max_length", "end")


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def mix(x: np.ndarray, level_db: float | None, seed: int) -> np.ndarray:
    """``x`` plus white noise at ``level_db`` dBFS RMS (None: ``x`` unchanged), clipped to [-1, 1]."""
    if level_db is None:
        return x
    noise = 10 ** (level_db / 20) * np.random.default_rng(seed).standard_normal(len(x))
    return np.clip(x + noise, -1.0, 1.0).astype(np.float32)


def stream_segments(rec, x: np.ndarray, rate: int) -> tuple[list, float, str]:
    """Segments of ``x`` streamed in chunk-sized blocks (a decode after each), the seconds in decode, the text."""
    s, spent = stream_timed(rec, x, rate)
    r = rec.get_result(s)
    return r.segments, spent, r.text


def stream_timed(rec, x: np.ndarray, rate: int):
    """``x`` streamed in chunk-sized blocks (a decode after each): the finished stream, the seconds in decode."""
    s = rec.create_stream()
    block = max(1, int(rate * rec.chunk_s))
    spent = 0.0
    for i in range(0, len(x), block):
        s.accept_waveform(rate, x[i:i + block])
        t = time.perf_counter()
        rec.decode(s)
        spent += time.perf_counter() - t
    s.input_finished()
    t = time.perf_counter()
    rec.decode(s)
    spent += time.perf_counter() - t
    return s, spent


def split_utterances(utts: list[dict], segments: list, margin: float = 0.1) -> int:
    """Utterances with a segment boundary more than ``margin`` seconds inside them."""
    cuts = [g.end_s for g in segments[:-1]]
    return sum(any(u["start"] + margin < c < u["end"] - margin for c in cuts) for u in utts)


def long_pauses(utts: list[dict], duration: float, min_s: float) -> list[tuple[float, float]]:
    """The pauses (between utterances, and before the first / after the last) of at least ``min_s``."""
    edges = [0.0, *(t for u in utts for t in (u["start"], u["end"])), duration]
    return [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_s]


def capped_over_pause(segments: list, pauses: list[tuple[float, float]]) -> int:
    """``max_length`` segments that contain a whole pause of ``pauses``."""
    return sum(any(g.start_s <= a and b <= g.end_s for a, b in pauses) for g in segments if g.reason == "max_length")


def alone(rec, x: np.ndarray, rate: int, utts: list[dict]) -> dict[str, str]:
    """The text of every utterance cut out of ``x`` (its start..end) and decoded alone."""
    cut = [x[round(u["start"] * rate):round(u["end"] * rate)] for u in utts]
    return {f"{i:05d}": rec.get_result(stream_timed(rec, c, rate)[0]).text for i, c in enumerate(cut)}


def row(level: str, mode: str, utts: list[dict], segments: list, spent: float, duration: float, text: str,
        one_by_one: dict[str, str], pauses: list[tuple[float, float]]) -> dict:
    from speech_llm.metrics import compute_wer

    lengths = [g.end_s - g.start_s for g in segments] or [0.0]
    reasons = Counter(g.reason for g in segments)
    ref = " ".join(u["text"] for u in utts)
    wer_long = compute_wer({"long": ref}, {"long": text}).wer
    wer_alone = compute_wer({f"{i:05d}": u["text"] for i, u in enumerate(utts)}, one_by_one).wer
    return {"level": level, "mode": mode, "utts": len(utts), "segs": len(segments),
            "with text": sum(bool(g.text) for g in segments), "max len": round(max(lengths), 2),
            "mean len": round(float(np.mean(lengths)), 2), "split utts": split_utterances(utts, segments),
            **{r: reasons.get(r, 0) for r in REASONS},
            "capped over pause": f"{capped_over_pause(segments, pauses)} of {len(pauses)}",
            "WER long %": round(100 * wer_long, 2), "WER alone %": round(100 * wer_alone, 2),
            "ratio": round(wer_long / wer_alone, 3) if wer_alone else float("nan"), "RTF": round(spent / duration, 3)}


def print_table(rows: list[dict]) -> None:
    cols = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print(" | ".join(c.ljust(w) for c, w in zip(cols, widths)))
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", required=True, help="trained experiment dir (or a checkpoint)")
    p.add_argument("--long", nargs="+", required=True, help="long-form data dirs (with segments.jsonl)")
    p.add_argument("--levels", default="clean,-45,-35,-25", help="noise levels in dBFS, comma list ('clean': none)")
    p.add_argument("--modes", default="decoder,energy", help="endpoint modes to compare, comma list")
    p.add_argument("--decode", action="append", default=[], help="DecodeConfig override, e.g. chunk_ms=640")
    p.add_argument("--max-files", type=int, default=1, help="long files per data dir (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)

    import soundfile as sf
    import torch

    from speech_llm.decoding.recognizer import Recognizer, load_recognizer
    from speech_llm.typed_config import apply_overrides

    torch.set_num_threads(args.threads)
    base = load_recognizer(args.exp_dir, overrides=args.decode)
    recs = {m: Recognizer(base.model, base.tokenizer, apply_overrides(base.config, [f"endpoint.mode={m}"]))
            for m in args.modes.split(",")}
    ep = base.config.endpoint
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {_uptime()}")
    print(f"# {args.exp_dir}: chunk {base.chunk_s * 1000:.0f} ms, gate {ep.threshold_db} dBFS, rules "
          f"{ep.rule1_silence_s}/{ep.rule2_silence_s}/{ep.max_segment_s} s, energy silence {ep.silence_s} s")
    rows, texts = [], {}
    for d in args.long:
        records = [json.loads(line) for line in Path(d, "segments.jsonl").read_text().splitlines() if line]
        for rec_i, record in enumerate(records[:args.max_files]):
            x, rate = sf.read(record["audio"], dtype="float32")
            print(f"\n## {record['key']}: {len(x) / rate:.1f} s, {len(record['utterances'])} utterances")
            utts = record["utterances"]
            pauses = long_pauses(utts, len(x) / rate, ep.rule2_silence_s + base.chunk_s)
            for level in args.levels.split(","):
                noisy = mix(x, None if level == "clean" else float(level), args.seed + rec_i)
                one_by_one = alone(base, noisy, rate, utts)
                for mode, rec in recs.items():
                    segments, spent, text = stream_segments(rec, noisy, rate)
                    texts[(record["key"], level, mode)] = text
                    rows.append(row(level, mode, utts, segments, spent, len(x) / rate, text, one_by_one, pauses))
                    print(", ".join(f"{k} {v}" for k, v in rows[-1].items()), flush=True)
    print()
    print_table(rows)
    for (key, level, mode), text in texts.items():
        if level == "clean" and mode != "energy" and (key, level, "energy") in texts:
            same = text == texts[(key, level, "energy")]
            print(f"clean unchanged ({key}, {mode} vs energy rules): {'same text' if same else 'text differs'}")
    print(f"# end: {_uptime()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
