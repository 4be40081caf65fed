"""The decoding options every speech entry point shares (``decode``, ``transcribe``, ``live``, ``serve``).

Each option overrides one field of the checkpoint's ``decode`` section (:class:`speech_llm.config.DecodeConfig`);
an option left out keeps the checkpoint's value. Not a command module (the leading underscore).
"""

from __future__ import annotations

import argparse

# option -> (DecodeConfig key, type, help)
OPTIONS = {
    "--mode": ("mode", str, "streaming or batch"),
    "--chunk-ms": ("chunk_ms", int, "decoding chunk in ms (default: the trained one)"),
    "--read-ahead": ("read_ahead_chunks", int, "streaming: extra chunks read before the first write"),
    "--max-tokens-per-read": ("max_tokens_per_read", int, "cap on tokens written after one chunk"),
    "--max-tokens-per-segment": ("max_tokens_per_segment", int, "cap on tokens of one segment"),
    "--nonblank-cap": ("nonblank_cap", float, "a segment writes at most this many tokens per token of the "
                       "projector's non-blank CTC mass (+ --nonblank-slack); 0 = off"),
    "--nonblank-slack": ("nonblank_slack", int, "tokens allowed beyond the non-blank cap"),
    "--context-words": ("context_words", int, "last N words of earlier segments as prompt context"),
    "--dtype": ("dtype", str, "float32 or bfloat16 (LLM inference dtype)"),
    "--quantize": ("quantize", str, "none or int8 (dynamic int8 LLM linear layers)"),
    "--endpoint-mode": ("endpoint.mode", str, "what ends a segment: decoder (rules on what the model writes, "
                        "streaming) or energy (trailing quiet frames; batch mode always uses energy)"),
    "--endpoint-rule1-silence": ("endpoint.rule1_silence_s", float,
                                 "decoder rule 1: seconds of chunks with no word that end a segment with no text"),
    "--endpoint-rule2-silence": ("endpoint.rule2_silence_s", float,
                                 "decoder rule 2: seconds of chunks with no word that end a segment after text"),
    "--max-segment": ("endpoint.max_segment_s", float, "maximum segment length (s) (rule 3, both modes)"),
    "--endpoint-silence": ("endpoint.silence_s", float,
                           "energy mode / batch: trailing quiet audio (s) that ends a segment"),
    "--silence-threshold-db": ("endpoint.threshold_db", float,
                               "energy gate: a frame at or above this RMS level (dBFS) opens a segment; "
                               "below it, quiet (energy mode: ends one)"),
}


def add_decode_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    g = parser.add_argument_group("decoding (default: the checkpoint's decode section)")
    for opt, (key, tp, text) in OPTIONS.items():
        if opt not in skip:
            g.add_argument(opt, type=tp, default=None, help=f"{text} (decode.{key})")
    g.add_argument("--no-endpoint", action="store_true",
                   help="no endpointing: the whole input is one segment (decode.endpoint.enabled=false)")


def decode_overrides(args: argparse.Namespace) -> list[str]:
    """``key=value`` overrides of the checkpoint's decode section for the options given."""
    out = []
    for opt, (key, _, _) in OPTIONS.items():
        value = getattr(args, opt[2:].replace("-", "_"), None)
        if value is not None:
            out.append(f"{key}={value}")
    if getattr(args, "no_endpoint", False):
        out.append("endpoint.enabled=false")
    return out


def check_decode_options(args: argparse.Namespace) -> None:
    """Check the decoding options now (types and values, as DecodeConfig does), before any device is
    opened or model loaded: a bad value fails in a second, naming the key."""
    from speech_llm.config import DecodeConfig
    from speech_llm.typed_config import apply_overrides

    apply_overrides(DecodeConfig(), decode_overrides(args), source="the decoding options")


def load_recognizer_from_args(args: argparse.Namespace, device: str | None = None, threads: int | None = None):
    """The recognizer of ``args.exp_dir`` with the decoding options of ``args`` (errors as UserError): an export dir
    (``speech-llm export``) gives speech_runtime's, on onnxruntime with ``threads`` intra-op threads (None:
    onnxruntime's default) and no torch imported; an exp dir or checkpoint the torch one on ``device`` (None:
    :func:`default_device`)."""
    from speech_common.errors import UserError
    from speech_common.export_dir import is_export_dir

    try:
        if is_export_dir(args.exp_dir):
            import speech_runtime

            return speech_runtime.load_recognizer(args.exp_dir, overrides=decode_overrides(args), threads=threads or 0)
        from speech_llm.decoding.recognizer import load_recognizer

        return load_recognizer(args.exp_dir, device=default_device(device), overrides=decode_overrides(args))
    except ValueError as e:
        raise UserError(str(e)) from e


def default_device(name: str | None) -> str:
    if name is not None:
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
