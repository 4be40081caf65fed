"""Which part of an ``--int8`` export moves the text: int8 for the audio side only (encoder + projector), or for
the LLM step only, against torch, onnxruntime fp32 and all-int8 (issue #27).

Usage (after ``bench/onnx_wer.py``, whose per-utterance lines ``# key: torch | fp32 | int8`` it reads, so that
torch is not decoded again):

    python bench/onnx_wer.py --exp-dir exp/asr/llm/best --export exp/asr/onnx --data data/asterisk \\
        --max-utts 100 > onnx_wer.log
    python bench/onnx_int8_parts.py --export exp/asr/onnx --data data/asterisk --wer-log onnx_wer.log

Each mixed model is an export dir beside ``--export`` (``<export>_int8_<parts>``: links to its files and a
manifest whose ``int8`` entry names the int8 file only for the chosen parts), decoded by ``speech_runtime`` as
``onnx_wer.py`` decodes (one thread, one-chunk blocks, endpointing off). WER with S/D/I as the toolkit scores it
(``compute_wer``), and the texts equal to torch's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

PARTS = {"audio side only (encoder + projector)": ("encoder", "projector"), "LLM only": ("llm",)}


def mixed_export(export: Path, parts: tuple[str, ...]) -> Path:
    """An export dir of links to ``export``'s files whose int8 models are those of ``parts`` only."""
    out = export.parent / f"{export.name}_int8_{'_'.join(parts)}"
    out.mkdir(exist_ok=True)
    for f in export.iterdir():
        if f.name != "speech_llm_onnx.json" and not (out / f.name).exists():
            os.symlink(f.resolve(), out / f.name)
    manifest = json.loads((export / "speech_llm_onnx.json").read_text())
    for part in ("encoder", "projector", "llm"):
        if part not in parts:
            manifest["int8"][part] = manifest[part]["file"]
    (out / "speech_llm_onnx.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def main() -> None:
    import speech_runtime
    from data_prep.kaldi_dir import read_data_dir
    from speech_common.streaming import run_stream
    from speech_llm.metrics.wer import compute_wer
    from speech_runtime.recognizer import file_blocks

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--export", type=Path, required=True, help="an export dir written with --int8")
    ap.add_argument("--data", type=Path, required=True, help="the data dir onnx_wer.py decoded (wav.scp, text)")
    ap.add_argument("--wer-log", type=Path, required=True, help="onnx_wer.py's output for that data dir")
    args = ap.parse_args()

    runs: dict[str, dict[str, str]] = {"torch fp32": {}, "ort fp32": {}, "ort int8 (all three)": {}}
    for line in args.wer_log.read_text(encoding="utf-8").splitlines():
        m = re.match(r"# (\S+): (.*?) \| (.*?) \| (.*)$", line)
        if m:
            for name, text in zip(runs, m.groups()[1:]):
                runs[name][m.group(1)] = text
    keys = list(runs["torch fp32"])
    if not keys:
        raise SystemExit(f"{args.wer_log}: no '# key: torch | fp32 | int8' lines")
    utts = read_data_dir(args.data)
    refs = {k: utts[k].text for k in keys}
    for name, parts in PARTS.items():
        rec = speech_runtime.load_recognizer(mixed_export(args.export, parts), int8=True, threads=1,
                                             overrides={"endpoint.enabled": False})
        runs[f"ort int8, {name}"] = {k: rec.get_result(run_stream(rec, file_blocks(utts[k].wav, rec.chunk_s))).text
                                     for k in keys}
    print(f"| {args.export}, {len(keys)} utterances of {args.data}, 1 thread | WER % (S/D/I) | same text as torch |")
    print("|---|---:|---:|")
    for name, texts in runs.items():
        w = compute_wer(refs, texts).words
        same = sum(texts[k] == runs["torch fp32"][k] for k in keys)
        print(f"| {name} | {100 * w.rate:.2f} ({w.substitutions}/{w.deletions}/{w.insertions}) | {same}/{len(keys)} |")


if __name__ == "__main__":
    main()
