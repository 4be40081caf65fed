"""Transcribe audio files with an export dir, without torch.

Usage:
    python -m speech_runtime EXPORT_DIR a.wav [b.flac ...] [--int8] [--threads N] [--set chunk_ms=320]

Each file is read block by block (soundfile), streamed through the recogniser and its text printed as
``path<TAB>text``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    import speech_runtime

    p = argparse.ArgumentParser(prog="python -m speech_runtime", description=__doc__.splitlines()[0])
    p.add_argument("export_dir", help="a dir written by speech-llm export")
    p.add_argument("files", nargs="+", help="audio files (any rate, any channels)")
    p.add_argument("--int8", action="store_true", help="use the int8 models of the export")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads per model (0: its default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="decode option (repeatable)")
    args = p.parse_args(argv)
    rec = speech_runtime.load_recognizer(args.export_dir, int8=args.int8, overrides=args.set, threads=args.threads)
    for path in args.files:
        stream = speech_runtime.stream_file(rec, path)
        print(f"{path}\t{rec.get_result(stream).text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
