"""Transcribe audio files by streaming them through a trained speech LLM, showing the text as it grows.

Usage:
    speech-llm transcribe --exp-dir exp/mini a.flac b.wav
    speech-llm transcribe --exp-dir exp/mini --chunk-ms 320 --realtime a.flac

Each file is fed chunk by chunk (``--realtime`` paces it at playback speed); the committed text and the
current partial word (in brackets) are shown as they change, then the final text.
"""

from __future__ import annotations

import time

NAME = "transcribe"
HELP = "stream audio files through the recognizer and show partial and final text"
ORDER = 45


def add_arguments(p) -> None:
    p.add_argument("files", nargs="+", help="audio files (any format libsndfile reads, any sample rate)")
    p.add_argument("--exp-dir", required=True, help="experiment dir or checkpoint file")
    p.add_argument("--chunk-ms", type=float, default=None, help="streaming chunk (default: as trained)")
    p.add_argument("--realtime", action="store_true", help="feed audio at playback speed")
    p.add_argument("--device", default="cpu")


def run(args) -> int:
    import soundfile as sf

    from data_prep.audio import AudioError
    from speech_common.errors import UserError
    from speech_llm.display import TranscriptLine
    from speech_llm.recognizer import DecodeOptions, load_recognizer

    try:
        rec = load_recognizer(args.exp_dir, DecodeOptions(chunk_ms=args.chunk_ms), device=args.device)
    except ValueError as e:
        raise UserError(str(e)) from e
    for path in args.files:
        try:
            samples, rate = sf.read(path, dtype="float32", always_2d=False)
        except (OSError, RuntimeError, sf.LibsndfileError) as e:
            raise AudioError(f"{path}: cannot read audio: {e}") from e
        line = TranscriptLine(prefix=f"{path}: " if len(args.files) > 1 else "")
        stream = rec.create_stream()
        block = max(1, int(rate * rec.chunk_s))
        start = time.monotonic()
        for i in range(0, len(samples), block):
            if args.realtime:
                time.sleep(max(0.0, i / rate - (time.monotonic() - start)))
            stream.accept_waveform(rate, samples[i:i + block])
            rec.decode(stream)
            r = rec.get_result(stream)
            line.update(r.committed, r.partial)
        stream.input_finished()
        rec.decode(stream)
        line.final(rec.get_result(stream).text)
    return 0
