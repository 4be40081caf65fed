"""Serve streaming recognition over WebSocket, with a browser page on the same port.

Usage:
    speech-llm serve --exp-dir exp/mini                          # http://127.0.0.1:8000/ and ws://127.0.0.1:8000/ws
    speech-llm serve --exp-dir exp/mini --host 0.0.0.0 --port 9000 --max-batch-size 32 --max-wait-ms 20
    SPEECH_LLM_SERVER_TOKEN=secret speech-llm serve --exp-dir exp/mini --max-active 64 --idle-timeout 60
    speech-llm serve --exp-dir exp/mini/onnx --threads 2          # an export dir (speech-llm export): onnxruntime

One decode thread advances every active session together (continuous batching: ``--max-batch-size``
streams per step, waiting up to ``--max-wait-ms`` for more streams with new audio). Decoding options are the
checkpoint's decode section plus the options below; a client may lower some of them per session (see
docs/SERVER_PROTOCOL.md). A handshake beyond ``--max-active`` sessions gets HTTP 503. Browsers allow the
microphone on http://127.0.0.1 and http://localhost only; serve other hosts behind a TLS proxy.
One log line per session (stderr); Ctrl-C or SIGTERM stops cleanly (clients get close code 1001).
"""

from __future__ import annotations

import os
import sys

NAME = "serve"
HELP = "WebSocket recognition server with a browser page (continuous batching)"
ORDER = 47
TOKEN_ENV = "SPEECH_LLM_SERVER_TOKEN"


def add_arguments(p) -> None:
    from speech_llm.commands._decode_options import add_decode_arguments

    p.add_argument("--exp-dir", required=True, help="experiment dir, checkpoint file or export dir (speech-llm export: "
                   "onnxruntime)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 = any free port)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads: torch's, or onnxruntime's per model for an export dir (default: theirs)")
    p.add_argument("--max-batch-size", type=int, default=16, help="streams per decode step (default: 16)")
    p.add_argument("--max-wait-ms", type=float, default=10.0,
                   help="wait this long for more streams with new audio before a step (default: 10)")
    p.add_argument("--max-active", type=int, default=32, help="sessions at once; more get HTTP 503 (default: 32)")
    p.add_argument("--max-message-bytes", type=int, default=1 << 20,
                   help="largest WebSocket message; larger ones close the session with 1009 (default: 1 MiB)")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="seconds without a client message before the session is closed (default: 30)")
    p.add_argument("--token", default=None,
                   help=f"shared token the start message must carry (default: ${TOKEN_ENV}, else none)")
    add_decode_arguments(p)


def run(args) -> int:
    from speech_common.errors import UserError
    from speech_common.export_dir import is_export_dir

    for name in ("max_batch_size", "max_active", "max_message_bytes"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.max_wait_ms < 0 or args.idle_timeout <= 0:
        raise UserError("--max-wait-ms must be >= 0 and --idle-timeout > 0")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in [0, 65535], got {args.port}")
    if args.no_endpoint:
        raise UserError("--no-endpoint: the server needs endpointing (without it a session is one segment whose "
                        "state grows as long as the client sends audio)")
    try:
        from speech_llm.server.app import ServerConfig, run_server
    except ImportError as e:
        raise UserError(f"the server needs the websockets package (pip install websockets): {e}") from e
    from speech_llm.commands._decode_options import (
        check_decode_options,
        default_device,
        load_recognizer_from_args,
    )

    check_decode_options(args)
    config = ServerConfig(host=args.host, port=args.port, max_batch_size=args.max_batch_size,
                          max_wait_ms=args.max_wait_ms, max_active=args.max_active,
                          max_message_bytes=args.max_message_bytes, idle_timeout_s=args.idle_timeout,
                          token=args.token or os.environ.get(TOKEN_ENV) or None)
    if is_export_dir(args.exp_dir):
        device = "onnxruntime (cpu)"
        rec = load_recognizer_from_args(args, threads=args.threads)
    else:
        if args.threads is not None:
            import torch

            torch.set_num_threads(max(1, args.threads))
        device = default_device(args.device)
        rec = load_recognizer_from_args(args, device)
    _log_to_stderr()
    if not rec.config.endpoint.enabled:
        print("warning: the checkpoint's decode section disables endpointing: each session is one segment whose "
              "state grows with its audio", file=sys.stderr)

    def ready(server) -> None:
        print(f"serving {server.url} (WebSocket {server.ws_url}) on {device}, max batch {config.max_batch_size}, "
              f"max active {config.max_active}{', token required' if config.token else ''}", flush=True)

    try:
        run_server(rec, config, on_ready=ready)
    except OSError as e:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from e
    print("stopped", file=sys.stderr)
    return 0


def _log_to_stderr() -> None:
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("speech_llm.server")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logging.getLogger("speech_llm.server.websockets").setLevel(logging.WARNING)
