"""Picture one utterance: its waveform with the reference word spans, and the time each word was committed
when decoded streaming (at one or more chunk sizes) and in batch mode, by the same checkpoint.

Usage:
    speech-llm plot-emissions --exp-dir exp/mini --data data/test --utt 1089-134686-0001 --out utt.png
    speech-llm plot-emissions --exp-dir exp/mini --data data/test --chunks 320,640,1280 --out utt.png

--utt defaults to the data dir's first utterance. Reference word times come from the data dir's
``manifest.jsonl`` ("words" with start/end), as ``speech-llm score`` reads them.
"""

from __future__ import annotations

import argparse

NAME = "plot-emissions"
HELP = "plot one utterance: reference word spans and when each word was committed (streaming vs batch)"
ORDER = 43


def add_arguments(p: argparse.ArgumentParser) -> None:
    from speech_llm.commands._decode_options import add_decode_arguments

    p.add_argument("--exp-dir", required=True)
    p.add_argument("--data", required=True, help="Kaldi data dir holding the utterance (and manifest.jsonl)")
    p.add_argument("--utt", default=None, help="utterance key (default: the first one)")
    p.add_argument("--chunks", default="640", help="streaming chunk sizes in ms (default: %(default)s)")
    p.add_argument("--no-batch", action="store_true", help="leave out the batch-mode row")
    p.add_argument("--out", required=True, help="PNG file")
    p.add_argument("--device", default=None)
    add_decode_arguments(p, skip=("--mode", "--chunk-ms"))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from data_prep.audio import read_audio
    from data_prep.kaldi_dir import read_data_dir
    from data_prep.manifest import read_manifest
    from encoders.constants import SAMPLE_RATE
    from speech_common.errors import UserError
    from speech_llm.commands._decode_options import check_decode_options, decode_overrides, default_device
    from speech_llm.commands.sweep import _ints
    from speech_llm.decoding.decode import decode_samples
    from speech_llm.decoding.recognizer import Recognizer
    from speech_llm.metrics.plots import plot_emissions
    from speech_llm.model.checkpoint import load_model
    from speech_llm.typed_config import apply_overrides

    check_decode_options(args)
    utts = read_data_dir(args.data)
    key = args.utt or next(iter(utts))
    if key not in utts:
        raise UserError(f"--utt {key}: not in {args.data}")
    manifest = Path(args.data) / "manifest.jsonl"
    words = []
    if manifest.is_file():
        rec = {r["key"]: r for r in read_manifest(manifest)}.get(key) or {}
        words = [(w["word"], float(w["start"]), float(w["end"])) for w in rec.get("words") or []]
    samples = read_audio(utts[key].wav)
    model, tokenizer, cfg = load_model(args.exp_dir, device=default_device(args.device))
    settings = [(f"streaming {c} ms", ["mode=streaming", f"chunk_ms={c}"]) for c in _ints(args.chunks, "--chunks")]
    if not args.no_batch:
        settings.append(("batch", ["mode=batch"]))
    decodes = {}
    for label, over in settings:
        r = Recognizer(model, tokenizer, apply_overrides(cfg.decode, [*decode_overrides(args), *over], "plot"))
        result, _ = decode_samples(r, samples)
        decodes[label] = [(w.word, w.audio_s) for w in result.words]
        print(f"{label}: {result.text}")
    ref = utts[key].text
    out = plot_emissions(samples, SAMPLE_RATE, words, decodes, args.out, title=f"{key}: {ref}")
    print(f"plot-emissions: wrote {out}")
    return 0
