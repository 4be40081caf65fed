"""Where a streaming decode's word errors come from: insertions split by when the word was written (before or
after the input ended), by whether it repeats the word before it, and by how many words the hypothesis has per
reference word; the deletions and substitutions beside them.

Usage:
    python bench/decode_errors.py --ref data/asterisk --decode exp/asr/decode_asterisk_640ms [--worst 10]

Reads ``<decode>/emissions.jsonl`` (``speech-llm decode``: each hypothesis word with the audio time at which it
was written) and the reference data dir's ``text``. Prints one markdown table and the worst utterances.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def word_ops(ref: list[str], hyp: list[str]) -> list[tuple[str, int | None, int | None]]:
    """The alignment of ``hyp`` to ``ref`` as ``(op, ref_index, hyp_index)``, op in equal/substitute/delete/insert."""
    import jiwer

    out = jiwer.process_words(" ".join(ref) or "<empty>", " ".join(hyp) or "<empty>")
    ops = []
    for chunk in out.alignments[0]:
        for k in range(max(chunk.ref_end_idx - chunk.ref_start_idx, chunk.hyp_end_idx - chunk.hyp_start_idx)):
            r = chunk.ref_start_idx + k if chunk.type != "insert" else None
            h = chunk.hyp_start_idx + k if chunk.type != "delete" else None
            ops.append((chunk.type, r, h))
    return ops


def analyse(refs: dict[str, str], emissions: list[dict]) -> dict:
    """Counts over every utterance of ``emissions`` (see the module docstring)."""
    c: Counter = Counter()
    per_utt = []
    for e in emissions:
        ref = refs[e["key"]].lower().split()
        words = [w for w in e["words"] if w["word"].strip()]
        hyp = [w["word"].lower() for w in words]
        ops = word_ops(ref, hyp) if (ref or hyp) else []
        if not hyp:
            ops = [("delete", i, None) for i in range(len(ref))]
        ins = 0
        for op, _, h in ops:
            c[op] += 1
            if op != "insert":
                continue
            ins += 1
            after_end = float(words[h]["audio_s"]) >= float(e["duration"]) - 1e-6
            repeat = h > 0 and hyp[h] == hyp[h - 1]
            c["insert_after_end" if after_end else "insert_during"] += 1
            c["insert_repeat"] += repeat
        c["ref_words"] += len(ref)
        c["hyp_words"] += len(hyp)
        c["hyp_after_end"] += sum(float(w["audio_s"]) >= float(e["duration"]) - 1e-6 for w in words)
        ratio = len(hyp) / max(len(ref), 1)
        c["utts"] += 1
        c["utts_hyp_over_2x_ref"] += ratio > 2.0
        c["ins_in_utts_over_2x"] += ins if ratio > 2.0 else 0
        per_utt.append((ins, e["key"], " ".join(ref), " ".join(hyp)))
    per_utt.sort(reverse=True)
    return {"counts": dict(c), "worst": per_utt}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True, help="the reference data dir (its text)")
    p.add_argument("--decode", required=True, help="a decode dir with emissions.jsonl")
    p.add_argument("--worst", type=int, default=10, help="utterances with the most insertions to print")
    args = p.parse_args(argv)

    from data_prep.kaldi_dir import read_data_dir

    refs = {k: u.text for k, u in read_data_dir(args.ref).items()}
    emissions = [json.loads(line) for line in open(Path(args.decode) / "emissions.jsonl", encoding="utf-8")]
    out = analyse(refs, emissions)
    c = out["counts"]
    n = c.get("ref_words", 0)
    ins = c.get("insert", 0)
    print(f"| {args.decode} | count | % of ref words |")
    print("|---|---:|---:|")
    rows = [("reference words", n), ("hypothesis words", c.get("hyp_words", 0)),
            ("substitutions", c.get("substitute", 0)), ("deletions", c.get("delete", 0)), ("insertions", ins),
            ("- written after the input ended", c.get("insert_after_end", 0)),
            ("- written during the speech", c.get("insert_during", 0)),
            ("- repeating the previous word", c.get("insert_repeat", 0)),
            ("- in utterances with > 2x the reference's words", c.get("ins_in_utts_over_2x", 0)),
            ("hypothesis words written after the input ended", c.get("hyp_after_end", 0))]
    for name, v in rows:
        print(f"| {name} | {v} | {100 * v / max(n, 1):.1f} |")
    print(f"\nutterances: {c.get('utts', 0)}, with > 2x the reference's words: {c.get('utts_hyp_over_2x_ref', 0)}")
    for ins_u, key, ref, hyp in out["worst"][: args.worst]:
        print(f"  {key} ({ins_u} ins)\n    ref: {ref}\n    hyp: {hyp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
