"""Transcribe the microphone live: committed text and the current partial word update in place; each
segment ends after a pause (or at a maximum length) and is printed with its start and end time.

Usage:
    speech-llm live --list-devices
    speech-llm live --exp-dir exp/mini
    speech-llm live --exp-dir exp/mini --device "USB" --save-audio talk.wav --save-transcript talk.tsv
    speech-llm live --exp-dir exp/mini --device 3 --endpoint-rule2-silence 1.0 --duration 60
    speech-llm live --exp-dir exp/mini/onnx          # an export dir (speech-llm export): onnxruntime, no torch

Ctrl-C stops: the current segment is finalised and printed. Audio is captured at the device's default
rate (``--samplerate`` to change it) and resampled by the recognizer. The recognizer's endpointing (the
checkpoint's ``decode.endpoint``, or the options below) opens a segment at the first 25 ms frame at or
above ``--silence-threshold-db`` dBFS (RMS, full scale 1.0) and ends it by what the model writes: after
``--endpoint-rule2-silence`` seconds of chunks with no word once it wrote text, ``--endpoint-rule1-silence``
seconds if it wrote nothing, or at ``--max-segment`` seconds (``--endpoint-mode energy``: after
``--endpoint-silence`` seconds of quiet frames instead); every segment is decoded with a fresh LLM context, so
memory stays bounded however long the session runs, and the text is what ``transcribe`` gives.

``--save-transcript`` writes one line per segment: ``start_s<TAB>end_s<TAB>text`` (seconds since the
start of the session). ``--save-audio`` writes everything captured (16-bit, at the capture rate; format
from the file extension, e.g. .wav or .flac). ``--duration S`` stops after S seconds of captured audio.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

NAME = "live"
HELP = "transcribe the microphone live (endpointing, device listing, saving audio and transcript)"
ORDER = 46


def add_arguments(p) -> None:
    from speech_llm.commands._decode_options import add_decode_arguments

    p.add_argument("--exp-dir", help="experiment dir, checkpoint file or export dir (speech-llm export) "
                                     "(required unless --list-devices)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--device", default=None, help="input device: index, name or unique part of a name "
                                                  "(default: the default input device)")
    p.add_argument("--samplerate", type=int, default=None, help="capture rate in Hz (default: the device's)")
    p.add_argument("--block-ms", type=float, default=50.0, help="capture block length (default: 50)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds of captured audio (default: until Ctrl-C)")
    p.add_argument("--save-audio", metavar="FILE", help="save the session audio (e.g. FILE.wav)")
    p.add_argument("--save-transcript", metavar="FILE", help="save the segments with their times")
    p.add_argument("--compute-device", default=None,
                   help="torch device for the model (default: cuda when available, else cpu)")
    add_decode_arguments(p, skip=("--mode",))


def run(args) -> int:
    import soundfile as sf

    from speech_common.errors import UserError
    from speech_llm.decoding import live

    if args.list_devices:
        sys.stdout.write(live.format_devices(live.query_devices(), live.default_input_index()))
        return 0
    if not args.exp_dir:
        raise UserError("--exp-dir is required (or use --list-devices)")
    if args.duration is not None and args.duration <= 0:
        raise UserError(f"--duration must be > 0 seconds, got {args.duration:g}")
    if args.block_ms <= 0:
        raise UserError(f"--block-ms must be > 0, got {args.block_ms:g}")
    from speech_common.export_dir import is_export_dir
    from speech_llm.commands._decode_options import check_decode_options

    if not is_export_dir(args.exp_dir):   # the checks read the torch side's schema; the runtime checks its own
        check_decode_options(args)
    # Device and output files first: a wrong name or path fails before the model is loaded.
    source = live.MicrophoneSource(args.device, args.samplerate, args.block_ms, max_seconds=args.duration)
    with contextlib.ExitStack() as files:
        audio_out = transcript_out = None
        if args.save_audio:
            audio_out = files.enter_context(_open_output("--save-audio", args.save_audio, lambda p: sf.SoundFile(
                p, "w", samplerate=source.samplerate, channels=1, subtype="PCM_16")))
        if args.save_transcript:
            transcript_out = files.enter_context(_open_output("--save-transcript", args.save_transcript,
                                                              lambda p: open(p, "w", encoding="utf-8")))
        rec = _load(args)
        d = source.device
        files.enter_context(source)  # open the device before saying that we listen
        print(f"listening on {d['index']} {d['name']!r} at {source.samplerate} Hz (Ctrl-C to stop)",
              file=sys.stderr, flush=True)
        report = live.run_live(rec, source, live.LiveDisplay(), audio_out, transcript_out)
    lost = f", {report.overflows} input overflows, {report.dropped_s:.1f} s dropped" \
        if report.overflows or report.dropped_s else ""
    print(f"{'stopped' if report.interrupted else 'done'}: {report.audio_s:.1f} s of audio, "
          f"{sum(1 for s in report.segments if s.text)} segments{lost}", file=sys.stderr)
    return 0


def _load(args):
    from speech_llm.commands._decode_options import load_recognizer_from_args

    return load_recognizer_from_args(args, args.compute_device)


def _open_output(option: str, path: str, opener):
    """Open an output file (its parent dir is created); a clear error names the option and the path."""
    import soundfile as sf

    from speech_common.errors import UserError

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return opener(path)
    except (OSError, RuntimeError, TypeError, ValueError, sf.LibsndfileError) as e:
        raise UserError(f"{option} {path}: cannot write: {e}") from e
