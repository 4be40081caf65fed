"""Helpers of bench/gpu_check.sh: a corpus that needs no synthesizer, and the training summary.

Usage:
    python bench/gpu_check.py data --out /tmp/gpu_check/data --num-utts 256
    python bench/gpu_check.py summary --exp-dir /tmp/gpu_check/exp

``data`` writes train/dev data dirs (Kaldi files + manifest.jsonl with exact word times) of "tone words":
each of 40 words is a fixed chord of three harmonics (its own pitch and formants), 0.25-0.45 s long, between
short pauses, with a little noise. The GPU machine has no espeak-ng or flite; this audio is learnable (the
loss must fall) and exactly aligned, which is all a training check needs.

``summary`` reads ``<exp>/{ctc,llm}/train_log.jsonl`` and prints, per stage, the first and last logged loss,
the mean step time and the peak GPU memory; it exits 1 when a stage's loss did not fall by 10 %.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

RATE = 16000
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu red green blue black white brown "
         "north south east west one two three four").split()


def tone_word(index: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """(N,) float32: word ``index`` as three harmonics of its own pitch under a raised-cosine envelope."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 110.0 + 7.0 * index
    x = sum(a * np.sin(2 * math.pi * f0 * h * t) for a, h in ((0.5, 1 + index % 3), (0.3, 3 + index % 5),
                                                             (0.2, 6 + index % 7)))
    env = 0.5 - 0.5 * np.cos(2 * math.pi * np.minimum(t / seconds, 1.0))
    return (0.3 * env * x + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def make_data(out: Path, num_utts: int, seed: int = 0) -> None:
    import soundfile as sf

    from data_prep.manifest import manifest_to_data_dir, write_manifest

    rng = np.random.default_rng(seed)
    splits = {"train": [], "dev": []}
    for i in range(num_utts):
        split = "dev" if i % 10 == 9 else "train"
        n = int(rng.integers(3, 9))
        words = [int(w) for w in rng.integers(0, len(WORDS), n)]
        pieces, times, pos = [np.zeros(int(0.2 * RATE), np.float32)], [], 0.2
        for w in words:
            dur = float(rng.uniform(0.25, 0.45))
            pieces.append(tone_word(w, dur, rng))
            times.append({"word": WORDS[w].upper(), "start": round(pos, 3), "end": round(pos + dur, 3)})
            gap = float(rng.uniform(0.05, 0.2))
            pieces.append(0.003 * rng.standard_normal(int(gap * RATE)).astype(np.float32))
            pos += dur + gap
        wav = out / "wav" / f"utt{i:05d}.flac"
        wav.parent.mkdir(parents=True, exist_ok=True)
        audio = np.concatenate(pieces)
        sf.write(str(wav), audio, RATE)
        splits[split].append({"key": f"spk{i % 8}-utt{i:05d}", "audio": str(wav.resolve()),
                              "duration": round(audio.size / RATE, 3), "speaker": f"spk{i % 8}",
                              "text": " ".join(t["word"] for t in times), "words": times})
    for split, records in splits.items():
        records.sort(key=lambda r: r["key"])
        write_manifest(out / split / "manifest.jsonl", records)
        manifest_to_data_dir(records, out / split)
        print(f"{out / split}: {len(records)} utterances, {sum(r['duration'] for r in records):.0f} s")


def summarize(exp: Path) -> int:
    print("| stage | steps logged | first loss | last loss | last/first | step s (mean) | peak GPU GB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    failed = []
    for stage in ("ctc", "llm"):
        log = exp / stage / "train_log.jsonl"
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        rows = [r for r in rows if "loss" in r]
        if len(rows) < 2:
            print(f"| {stage} | {len(rows)} | — | — | — | — | — |")
            failed.append(f"{stage}: fewer than 2 logged steps in {log}")
            continue
        first, last = rows[0]["loss"], rows[-1]["loss"]
        step_s = sum(r.get("step_s", 0.0) for r in rows) / len(rows)
        mem = max((r.get("max_memory_gb") or 0.0) for r in rows)
        print(f"| {stage} | {len(rows)} | {first:.3f} | {last:.3f} | {last / first:.3f} | {step_s:.3f} | {mem:.2f} |")
        if not last < 0.9 * first:
            failed.append(f"{stage}: the loss did not fall ({first:.3f} -> {last:.3f})")
    for f in failed:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data", help="write the tone-word corpus")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--num-utts", type=int, default=256)
    d.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("summary", help="the training table of an experiment dir")
    s.add_argument("--exp-dir", type=Path, required=True)
    args = ap.parse_args()
    if args.cmd == "data":
        make_data(args.out, args.num_utts, args.seed)
        return 0
    return summarize(args.exp_dir)


if __name__ == "__main__":
    sys.exit(main())
