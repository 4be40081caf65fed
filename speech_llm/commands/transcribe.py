"""Transcribe audio files by streaming them through a trained speech LLM, showing the text as it grows.

Usage:
    speech-llm transcribe --exp-dir exp/mini a.flac b.wav
    speech-llm transcribe --exp-dir exp/mini --chunk-ms 320 --realtime a.flac
    speech-llm transcribe --exp-dir exp/mini --segments lecture.flac
    speech-llm transcribe --exp-dir exp/mini/onnx --realtime a.flac       # an export dir: onnxruntime, no torch

Each file is fed chunk by chunk (``--realtime`` paces it at playback speed); the committed text and the
current partial word (in brackets) are shown as they change, then the final text. Input of any length: the
recognizer cuts it into segments where the model stops writing (``--endpoint-rule1-silence``,
``--endpoint-rule2-silence``, ``--max-segment``; ``--segments``
prints each one with its times), each decoded with a fresh LLM context.
"""

from __future__ import annotations

import sys
import time

from speech_common.export_dir import is_export_dir

NAME = "transcribe"
HELP = "stream audio files through the recognizer and show partial and final text"
ORDER = 45


def add_arguments(p) -> None:
    from speech_llm.commands._decode_options import add_decode_arguments

    p.add_argument("files", nargs="+", help="audio files (any format libsndfile reads, any sample rate)")
    p.add_argument("--exp-dir", required=True, help="experiment dir, checkpoint file or export dir (speech-llm export)")
    p.add_argument("--realtime", action="store_true", help="feed audio at playback speed")
    p.add_argument("--segments", action="store_true",
                   help="print each finished segment on its own line with its start and end time")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    add_decode_arguments(p)


def run(args) -> int:
    from speech_common.streaming import run_stream
    from speech_llm.commands._decode_options import check_decode_options, load_recognizer_from_args
    from speech_llm.decoding.display import TranscriptLine

    export = is_export_dir(args.exp_dir)
    if not export:      # the checks read the torch side's config schema; the runtime checks its own options
        check_decode_options(args)
    rec = load_recognizer_from_args(args, args.device)
    file_blocks = _runtime_blocks if export else _torch_blocks
    for path in args.files:
        line = TranscriptLine(prefix=f"{path}: " if len(args.files) > 1 else "")
        shown = 0

        def show(stream, line=line):
            nonlocal shown
            shown = _show(line, rec.get_result(stream), shown, args.segments)

        blocks = file_blocks(path, rec.chunk_s)                     # block by block: any length
        stream = run_stream(rec, _paced(blocks) if args.realtime else blocks, show)
        r = rec.get_result(stream)
        if args.segments:
            _show(line, r, shown, True)
            line.clear()
        else:
            line.final(r.text)
        if r.truncated:
            print(f"{path}: warning: {sum(s.truncated for s in r.segments)} segment(s) hit the token cap "
                  "(--max-tokens-per-segment); their text may be incomplete", file=sys.stderr)
    return 0


def _torch_blocks(path, block_s: float):
    from data_prep.audio import audio_blocks

    return audio_blocks(path, block_s)


def _runtime_blocks(path, block_s: float):
    """speech_runtime's file reader (no soxr, no torch: the runtime extra alone suffices), errors as UserError."""
    import speech_runtime
    from speech_common.errors import UserError

    try:
        yield from speech_runtime.file_blocks(path, block_s)
    except (FileNotFoundError, RuntimeError) as e:      # soundfile's errors are RuntimeErrors
        raise UserError(str(e)) from e


def _paced(blocks):
    """``(samples, rate)`` blocks, each given no sooner than the audio before it would have played."""
    start, fed = time.monotonic(), 0.0
    for samples, rate in blocks:
        time.sleep(max(0.0, fed - (time.monotonic() - start)))
        fed += len(samples) / rate
        yield samples, rate


def _show(line, r, shown: int, segments: bool) -> int:
    """Update the display with result ``r``; returns how many finished segments have been printed."""
    from speech_llm.decoding.display import segment_line

    if not segments:
        line.update(r.committed, r.partial)
        return shown
    for seg in r.segments[shown:]:
        line.final(segment_line(seg))
    line.update(" ".join(w.word for w in r.open_words), r.partial)
    return len(r.segments)
