"""Per-session decode options: which :class:`~speech_llm.config.DecodeConfig` fields a client may set in its
"start" message, within which limits, and the recognizers that serve them.

A :class:`~speech_llm.decoding.recognizer.Recognizer` holds one DecodeConfig for all of its streams, so a session that
asks for other options gets a recognizer of its own config over the SAME model (no copy of any weight):
:class:`RecognizerPool` keeps one per distinct set of options in use, and drops it when its last session
ends. Sessions of the same options are batched together; those of different options are decoded in the same
loop step, one ``decode_streams`` call per config.
"""

from __future__ import annotations

import dataclasses

from speech_common.errors import UserError
from speech_llm.config import DecodeConfig
from speech_llm.decoding.recognizer import Recognizer
from speech_llm.server.protocol import OptionLimit, ProtocolError
from speech_llm.typed_config import apply_overrides


def client_option_limits(config: DecodeConfig) -> dict[str, OptionLimit]:
    """What a client may override, given the server's own decode config. Model-wide choices (chunk, dtype,
    quantization) and turning endpointing off (unbounded segments) stay the server's; caps may only be
    lowered."""
    ep = config.endpoint
    return {
        "mode": OptionLimit(str, choices=("streaming", "batch")),
        "read_ahead_chunks": OptionLimit(int, 0, 4),
        "context_words": OptionLimit(int, 0, 64),
        "max_tokens_per_read": OptionLimit(int, 1, config.max_tokens_per_read),
        "max_tokens_per_segment": OptionLimit(int, 1, config.max_tokens_per_segment),
        "endpoint.mode": OptionLimit(str, choices=("decoder", "energy")),
        "endpoint.rule1_silence_s": OptionLimit(float, 0.1, 10.0),
        "endpoint.rule2_silence_s": OptionLimit(float, 0.1, 10.0),
        "endpoint.silence_s": OptionLimit(float, 0.1, 10.0),
        "endpoint.max_segment_s": OptionLimit(float, 1.0, ep.max_segment_s),
        "endpoint.threshold_db": OptionLimit(float, -100.0, 0.0),
    }


def config_summary(config: DecodeConfig) -> dict:
    """The effective decode settings a session runs with (sent in "ready")."""
    d = dataclasses.asdict(config)
    return {k: d[k] for k in ("mode", "chunk_ms", "read_ahead_chunks", "max_tokens_per_read",
                              "max_tokens_per_segment", "context_words")} | {
        "endpoint": {k: d["endpoint"][k] for k in ("enabled", "mode", "rule1_silence_s", "rule2_silence_s",
                                                        "max_segment_s", "silence_s", "threshold_db")}}


class RecognizerPool:
    """Recognizers over one model, one per distinct set of client options in use (see the module docstring).

    Used from the event-loop thread only (the decode thread only uses the recognizers it is handed).
    """

    def __init__(self, base: Recognizer, max_configs: int = 8):
        self.base = base
        self.max_configs = max_configs
        self.limits = client_option_limits(base.config)
        self._recs: dict[tuple[str, ...], list] = {}       # overrides -> [recognizer, sessions using it]

    def acquire(self, overrides: list[str]) -> Recognizer:
        """The recognizer for these ``key=value`` overrides (already checked against :attr:`limits`)."""
        key = tuple(overrides)
        if not key:
            return self.base
        entry = self._recs.get(key)
        if entry is None:
            if len(self._recs) >= self.max_configs:
                raise ProtocolError("bad_option", f"this server decodes at most {self.max_configs} distinct "
                                                  "option sets at once; use the defaults or try later")
            try:
                config = apply_overrides(self.base.config, key, source="the start message's options")
            except (UserError, ValueError) as e:
                raise ProtocolError("bad_option", str(e)) from None
            rec = self.base.with_config(config)
            entry = self._recs[key] = [rec, 0]
        entry[1] += 1
        return entry[0]

    def release(self, rec: Recognizer) -> None:
        for key, entry in list(self._recs.items()):
            if entry[0] is rec:
                entry[1] -= 1
                if entry[1] <= 0:
                    del self._recs[key]
                return

    @property
    def num_configs(self) -> int:
        """Recognizers held besides the base one."""
        return len(self._recs)
