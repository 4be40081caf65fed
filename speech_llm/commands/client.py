"""Stream audio files to a `speech-llm serve` server and print the transcripts.

Usage:
    speech-llm client a.wav b.flac --url ws://127.0.0.1:8000/ws
    speech-llm client a.wav --realtime --segments
    speech-llm client *.wav --realtime --concurrency 16 --json > latencies.json
    speech-llm client a.wav --option endpoint.silence_s=0.5 --token secret

Files are sent as fast as possible (``--realtime``: at playback speed) in frames of ``--frame-ms``, all at
once up to ``--concurrency``. Prints ``FILE: text`` per file (``--segments``: each segment with its times);
``--json`` prints one JSON object instead: per file the text, segments, per-word latency (p50/p90/max:
from when a word's audio had been sent to when the word arrived), the time from "end" to "done", and the
server's RTF. Exit status 1 when a session ended with an error.
"""

from __future__ import annotations

import json
import sys

NAME = "client"
HELP = "stream audio files to a recognition server (real time or as fast as possible), print the text"
ORDER = 48


def add_arguments(p) -> None:
    p.add_argument("files", nargs="+", help="audio files (anything libsndfile reads)")
    p.add_argument("--url", default="ws://127.0.0.1:8000/ws", help="server endpoint (default: %(default)s)")
    p.add_argument("--realtime", action="store_true", help="send at playback speed")
    p.add_argument("--frame-ms", type=float, default=100.0, help="audio per frame (default: 100)")
    p.add_argument("--format", choices=("s16le", "f32le"), default="s16le", help="sample format (default: s16le)")
    p.add_argument("--concurrency", type=int, default=None, help="sessions at once (default: all files)")
    p.add_argument("--token", default=None, help="the server's shared token (default: $SPEECH_LLM_SERVER_TOKEN)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a decode option for the session, e.g. endpoint.silence_s=0.5 (repeatable)")
    p.add_argument("--segments", action="store_true", help="print each segment with its start and end time")
    p.add_argument("--json", action="store_true", help="print results and latencies as JSON")


def run(args) -> int:
    import os

    from speech_common.errors import UserError
    from speech_llm.decoding.display import format_time
    from speech_llm.server.client import Audio, run_clients

    if args.frame_ms <= 0:
        raise UserError(f"--frame-ms must be > 0, got {args.frame_ms:g}")
    if args.concurrency is not None and args.concurrency < 1:
        raise UserError(f"--concurrency must be >= 1, got {args.concurrency}")
    options = dict(_parse_option(o) for o in args.option)
    audios = [Audio.from_file(f, args.format) for f in args.files]
    results = run_clients(args.url, audios, realtime=args.realtime, frame_s=args.frame_ms / 1000, fmt=args.format,
                          token=args.token or os.environ.get("SPEECH_LLM_SERVER_TOKEN"), options=options,
                          concurrency=args.concurrency)
    if args.json:
        json.dump({"results": [r.summary() | {"finals": r.finals} for r in results]}, sys.stdout, indent=2)
        print()
    for r in results:
        prefix = f"{r.name}: " if len(results) > 1 or args.segments else ""
        if r.error is not None:
            print(f"{r.name}: error {r.error['code']}: {r.error['message']}", file=sys.stderr)
        elif r.done is None:
            print(f"{r.name}: the connection closed before the result (code {r.close_code})", file=sys.stderr)
        if args.json:
            continue
        if args.segments:
            for f in r.finals:
                print(f"{prefix}[{format_time(f['start_s'])} - {format_time(f['end_s'])}] {f['text']}"
                      + (" [truncated]" if f["truncated"] else ""))
        elif r.done is not None:
            print(f"{prefix}{r.text}")
    return 0 if all(r.done is not None for r in results) else 1


def _parse_option(text: str):
    """``key=value`` with a JSON value where it parses (numbers), else the string."""
    from speech_common.errors import UserError

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"--option {text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value
