"""The wire protocol, version 1: message parsing, checks and builders (the protocol itself is described once,
in docs/SERVER_PROTOCOL.md).

Everything here is pure (no I/O, no model): the server and the client both use it, and the tests check
it message by message.

    start = parse_start(json.loads(text), limits)       # StartRequest, or raises ProtocolError
    samples = decode_audio(frame, start)                # (N,) or (N, C) numpy, or raises ProtocolError
    error_message(ProtocolError("bad_frame", "..."))    # {"type": "error", "code": ..., "message": ...}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
SAMPLE_FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000
MAX_CHANNELS = 8
MAX_FLOAT_SAMPLE = 16.0
"""f32le samples are nominally in [-1, 1]; beyond +-16 (24 dB over full scale) a frame is garbage."""

# WebSocket close codes (RFC 6455 section 7.4.1) used by the server.
CLOSE_NORMAL = 1000          # after "done"
CLOSE_GOING_AWAY = 1001      # the server shuts down
CLOSE_UNSUPPORTED = 1003     # a sample format / rate / channel count the server does not take
CLOSE_POLICY = 1008          # protocol violations, authentication, idle timeout
CLOSE_TOO_BIG = 1009         # a message over the size limit (closed by the websockets library itself)
CLOSE_INTERNAL = 1011        # decoding failed on the server
CLOSE_TRY_LATER = 1013       # the server is full (when a handshake slipped past the HTTP 503 check)

ERRORS: dict[str, int] = {
    # code: close code
    "bad_json": CLOSE_POLICY,             # a text message that is not a JSON object
    "bad_message": CLOSE_POLICY,          # unknown "type", a missing or wrongly typed field
    "not_started": CLOSE_POLICY,          # audio or another message before "start"
    "already_started": CLOSE_POLICY,      # a second "start"
    "after_end": CLOSE_POLICY,            # anything after "end"
    "unauthorized": CLOSE_POLICY,         # missing or wrong token
    "idle_timeout": CLOSE_POLICY,         # no message for the idle timeout
    "unsupported_version": CLOSE_UNSUPPORTED,
    "unsupported_format": CLOSE_UNSUPPORTED,
    "bad_sample_rate": CLOSE_UNSUPPORTED,
    "bad_channels": CLOSE_UNSUPPORTED,
    "bad_option": CLOSE_POLICY,           # a decode option the server does not allow, or out of its limits
    "bad_frame": CLOSE_POLICY,            # a binary frame that is not a whole number of samples
    "bad_audio": CLOSE_POLICY,            # NaN, infinite or far out-of-range float samples
    "server_full": CLOSE_TRY_LATER,
    "shutting_down": CLOSE_GOING_AWAY,
    "internal": CLOSE_INTERNAL,
}


class ProtocolError(Exception):
    """A client error with its protocol ``code`` (a key of :data:`ERRORS`) and a message for humans."""

    def __init__(self, code: str, message: str):
        if code not in ERRORS:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def close_code(self) -> int:
        return ERRORS[self.code]


@dataclass(frozen=True)
class OptionLimit:
    """A decode option a client may set in "start": its type and the range the server allows."""

    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()


@dataclass
class StartRequest:
    """A checked "start" message."""

    sample_rate: int
    format: str
    channels: int = 1
    token: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Decode overrides, ``{DecodeConfig dotted key: value}``, already checked against the limits."""
    label: str | None = None

    @property
    def dtype(self) -> np.dtype:
        return SAMPLE_FORMATS[self.format]

    @property
    def frame_bytes(self) -> int:
        """Bytes of one sample of every channel."""
        return self.dtype.itemsize * self.channels

    def overrides(self) -> list[str]:
        """The options as ``key=value`` strings for :func:`speech_llm.typed_config.apply_overrides`."""
        return [f"{k}={_yaml_scalar(v)}" for k, v in sorted(self.options.items())]


def parse_message(text: str | bytes) -> dict:
    """A text message as a dict with a string "type" (raises ProtocolError bad_json / bad_message)."""
    try:
        msg = json.loads(text, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError("bad_json", f"a text message must be a JSON object: {e}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("bad_json", "a text message must be a JSON object")
    if not isinstance(msg.get("type"), str):
        raise ProtocolError("bad_message", 'a message needs a string "type"')
    return msg


def parse_start(msg: dict, option_limits: dict[str, OptionLimit]) -> StartRequest:
    """Check a "start" message (see the package docstring) -> :class:`StartRequest`."""
    version = msg.get("version")
    if version != PROTOCOL_VERSION:
        raise ProtocolError("unsupported_version",
                            f"protocol version {version!r} is not supported; this server speaks {PROTOCOL_VERSION}")
    rate = msg.get("sample_rate")
    if not _is_int(rate) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ProtocolError("bad_sample_rate", f"sample_rate must be an integer in [{MIN_SAMPLE_RATE}, "
                                               f"{MAX_SAMPLE_RATE}] Hz, got {rate!r}")
    fmt = msg.get("format")
    if fmt not in SAMPLE_FORMATS:
        raise ProtocolError("unsupported_format",
                            f"format must be one of {', '.join(SAMPLE_FORMATS)}, got {fmt!r}")
    channels = msg.get("channels", 1)
    if not _is_int(channels) or not 1 <= channels <= MAX_CHANNELS:
        raise ProtocolError("bad_channels", f"channels must be an integer in [1, {MAX_CHANNELS}], got {channels!r}")
    token = msg.get("token")
    if token is not None and not isinstance(token, str):
        raise ProtocolError("bad_message", '"token" must be a string')
    label = msg.get("label")
    if label is not None and (not isinstance(label, str) or len(label) > 100):
        raise ProtocolError("bad_message", '"label" must be a string of at most 100 characters')
    options = msg.get("options", {})
    if not isinstance(options, dict):
        raise ProtocolError("bad_message", '"options" must be an object')
    checked = {key: check_option(key, value, option_limits) for key, value in options.items()}
    return StartRequest(sample_rate=rate, format=fmt, channels=channels, token=token, options=checked, label=label)


def check_option(key: str, value: Any, option_limits: dict[str, OptionLimit]) -> Any:
    """One client decode option checked against the server's limits (raises ProtocolError bad_option)."""
    limit = option_limits.get(key)
    if limit is None:
        allowed = ", ".join(sorted(option_limits)) or "none"
        raise ProtocolError("bad_option", f"option {key!r} cannot be set by a client (allowed: {allowed})")
    if limit.choices:
        if value not in limit.choices:
            raise ProtocolError("bad_option", f"option {key}: must be one of {', '.join(limit.choices)}, "
                                              f"got {value!r}")
        return value
    ok_type = _is_int(value) if limit.kind is int else _is_number(value)
    if not ok_type:
        raise ProtocolError("bad_option", f"option {key}: must be {'an integer' if limit.kind is int else 'a number'}"
                                          f", got {value!r}")
    if (limit.low is not None and value < limit.low) or (limit.high is not None and value > limit.high):
        raise ProtocolError("bad_option", f"option {key}: must be in [{limit.low}, {limit.high}] on this server, "
                                          f"got {value!r}")
    return limit.kind(value)


def decode_audio(frame: bytes, start: StartRequest) -> np.ndarray:
    """A binary frame as samples: (N,) for mono, (N, C) interleaved channels; raises ProtocolError."""
    if len(frame) == 0 or len(frame) % start.frame_bytes:
        raise ProtocolError("bad_frame", f"a binary frame must hold whole {start.format} samples of "
                                         f"{start.channels} channel(s) ({start.frame_bytes} bytes each), "
                                         f"got {len(frame)} bytes")
    samples = np.frombuffer(frame, dtype=start.dtype)
    if start.dtype.kind == "f":
        if not np.isfinite(samples).all():
            raise ProtocolError("bad_audio", "the frame holds NaN or infinite samples")
        if np.abs(samples).max() > MAX_FLOAT_SAMPLE:
            raise ProtocolError("bad_audio", f"f32le samples must be in [-1, 1] (at most +-{MAX_FLOAT_SAMPLE:g} "
                                             "is accepted); the frame holds far larger values")
    return samples.reshape(-1, start.channels) if start.channels > 1 else samples


# ----------------------------------------------------------------------------------------- server messages
def words_json(words) -> list[dict]:
    """Words as ``[{"word", "time_s"}]``: ``time_s`` = stream audio read when the word was written."""
    return [{"word": w.word, "time_s": round(w.audio_s, 3)} for w in words]


def ready_message(session_id: str, chunk_s: float, config: dict) -> dict:
    return {"type": "ready", "version": PROTOCOL_VERSION, "session": session_id, "chunk_s": round(chunk_s, 4),
            "config": config}


def partial_message(segment: int, start_s: float, committed: str, partial: str, words, audio_s: float) -> dict:
    return {"type": "partial", "segment": segment, "start_s": round(start_s, 3), "committed": committed,
            "partial": partial, "words": words_json(words), "audio_s": round(audio_s, 3)}


def final_message(seg) -> dict:
    """A finished :class:`~speech_llm.decoding.recognizer.SegmentResult`."""
    return {"type": "final", "segment": seg.index, "start_s": round(seg.start_s, 3), "end_s": round(seg.end_s, 3),
            "text": seg.text, "words": words_json(seg.words), "reason": seg.reason, "truncated": seg.truncated}


def marker_message(marker_id: Any) -> dict:
    return {"type": "marker", "id": marker_id}


def done_message(segments: int, text: str, audio_s: float, compute_s: float, truncated: bool) -> dict:
    return {"type": "done", "segments": segments, "text": text, "audio_s": round(audio_s, 3),
            "compute_s": round(compute_s, 4), "rtf": round(compute_s / audio_s, 4) if audio_s > 0 else 0.0,
            "truncated": truncated}


def error_message(err: ProtocolError) -> dict:
    return {"type": "error", "code": err.code, "message": err.message}


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return (_is_int(x) or isinstance(x, float)) and math.isfinite(x)


def _yaml_scalar(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)
