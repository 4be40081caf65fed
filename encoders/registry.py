"""Encoders by name: ``build_encoder("conformer", input_dim=80, d_model=256, ...)``,
``build_encoder("whisper", path_or_name="openai/whisper-tiny.en")``.

A registered builder is a class or function taking keyword config; the built module exposes
``output_dim``, ``subsampling_rate``, ``forward(feats, feat_lens, chunk_size, left_chunks)``,
``init_states(...)`` and ``streaming_forward(...)`` (see :class:`encoders.conformer.ConformerEncoder`), and
``make_frontend()``, the streaming front end its features come from.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from encoders.conformer import ConformerEncoder
from encoders.whisper import build_whisper_encoder
from speech_common.errors import UserError

_ENCODERS: dict[str, Callable[..., nn.Module]] = {}


def register_encoder(name: str, builder: Callable[..., nn.Module]) -> None:
    """Register ``builder`` under ``name`` (an existing name is an error)."""
    if name in _ENCODERS:
        raise ValueError(f"encoder '{name}' is already registered")
    _ENCODERS[name] = builder


def list_encoders() -> list[str]:
    return sorted(_ENCODERS)


def build_encoder(name: str, **config) -> nn.Module:
    """Build the encoder registered as ``name`` from keyword config.

    Raises:
        UserError: unknown name (the known ones are listed), unknown or missing config keys.
    """
    if name not in _ENCODERS:
        raise UserError(f"unknown encoder '{name}'; known encoders: {', '.join(list_encoders())}")
    builder = _ENCODERS[name]
    signature = inspect.signature(builder)
    accepted = [p for p in signature.parameters if p != "self"]
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        raise UserError(f"encoder '{name}': unknown config key(s) {', '.join(unknown)}; "
                        f"accepted: {', '.join(accepted)}")
    try:
        signature.bind(**config)
    except TypeError as e:
        raise UserError(f"encoder '{name}': {e}") from None
    return builder(**config)


register_encoder("conformer", ConformerEncoder)
register_encoder("whisper", build_whisper_encoder)
