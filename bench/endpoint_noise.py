"""Endpointing under background noise (issue #26 §1): segments per utterance and segment lengths, decoder rules
vs energy rules, on long-form files with continuous noise mixed in.

Usage:
    speech-llm prepare longform --data data/test --out data/longform --minutes 5
    python bench/endpoint_noise.py --exp-dir exp/mini --long data/longform/long_5min
    python bench/endpoint_noise.py --exp-dir exp/mini --long data/longform/long_5min \
        --levels=-45,-35,-25 --modes decoder,energy --decode endpoint.rule2_silence_s=1.0 --threads 2

Needs a trained checkpoint (the decoder rules read what the model writes: a random-weight model writes
words after every chunk and never ends a segment by rules 1-2). Numbers: not measured yet (no trained model
was available when this was written); run it and record them in bench/RESULTS.md.

Method. Each long file of ``--long`` (``segments.jsonl`` from ``speech-llm prepare longform``: its
utterances with their offsets) is read at 16 kHz and mixed with continuous white Gaussian noise whose RMS is
each level of ``--levels`` in dBFS ("clean": none), clipped to [-1, 1]. Each mix is streamed through one
Recognizer per endpoint mode (``--modes``; the checkpoint's ``decode`` section plus ``--decode`` overrides
plus ``endpoint.mode=<mode>``), in blocks of one chunk with a ``decode`` after each, as ``transcribe`` does.
The energy gate's threshold is ``endpoint.threshold_db`` (-40 dBFS by default): noise at -45 stays under it,
-35 and -25 are above it, where the energy rules can only end a segment at ``max_segment_s``.

Columns: utts (utterances in the file), segs (segments the recognizer cut), with text (segments that have
text), max len (s, the longest segment), mean len (s), split utts (utterances with a segment boundary more
than 0.1 s inside them: a sentence cut in two), then the segments per end reason (``silence`` = rule 2 or
energy silence, ``no_text`` = rule 1, ``max_length``, ``end``), and RTF (seconds in ``decode`` / audio s).
Goal: segs with text close to utts, max len well under ``max_segment_s`` at every level, split utts near 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:          # run as a script from anywhere
    sys.path.insert(0, str(REPO))

REASONS = ("silence", "no_text", "max_length", "end")


def mix(x: np.ndarray, level_db: float | None, seed: int) -> np.ndarray:
    """``x`` plus white noise at ``level_db`` dBFS RMS (None: ``x`` unchanged), clipped to [-1, 1]."""
    if level_db is None:
        return x
    noise = 10 ** (level_db / 20) * np.random.default_rng(seed).standard_normal(len(x))
    return np.clip(x + noise, -1.0, 1.0).astype(np.float32)


def stream_segments(rec, x: np.ndarray, rate: int) -> tuple[list, float]:
    """Segments of ``x`` streamed in chunk-sized blocks (a decode after each), and the seconds in decode."""
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
    return rec.get_result(s).segments, spent


def split_utterances(utts: list[dict], segments: list, margin: float = 0.1) -> int:
    """Utterances with a segment boundary more than ``margin`` seconds inside them."""
    cuts = [g.end_s for g in segments[:-1]]
    return sum(any(u["start"] + margin < c < u["end"] - margin for c in cuts) for u in utts)


def row(level: str, mode: str, utts: list[dict], segments: list, spent: float, duration: float) -> dict:
    lengths = [g.end_s - g.start_s for g in segments] or [0.0]
    reasons = Counter(g.reason for g in segments)
    return {"level": level, "mode": mode, "utts": len(utts), "segs": len(segments),
            "with text": sum(bool(g.text) for g in segments), "max len": round(max(lengths), 2),
            "mean len": round(float(np.mean(lengths)), 2), "split utts": split_utterances(utts, segments),
            **{r: reasons.get(r, 0) for r in REASONS}, "RTF": round(spent / duration, 3)}


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
    print(f"# {args.exp_dir}: chunk {base.chunk_s * 1000:.0f} ms, gate {ep.threshold_db} dBFS, rules "
          f"{ep.rule1_silence_s}/{ep.rule2_silence_s}/{ep.max_segment_s} s, energy silence {ep.silence_s} s")
    rows = []
    for d in args.long:
        records = [json.loads(line) for line in Path(d, "segments.jsonl").read_text().splitlines() if line]
        for rec_i, record in enumerate(records[:args.max_files]):
            x, rate = sf.read(record["audio"], dtype="float32")
            print(f"\n## {record['key']}: {len(x) / rate:.1f} s, {len(record['utterances'])} utterances")
            for level in args.levels.split(","):
                noisy = mix(x, None if level == "clean" else float(level), args.seed + rec_i)
                for mode, rec in recs.items():
                    segments, spent = stream_segments(rec, noisy, rate)
                    rows.append(row(level, mode, record["utterances"], segments, spent, len(x) / rate))
                    print(", ".join(f"{k} {v}" for k, v in rows[-1].items()), flush=True)
    print()
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
