"""What marks an export dir (``speech-llm export``): one home for the manifest's name, so the exporter
(:mod:`speech_llm.export`), the torch-free runtime (:mod:`speech_runtime`) and the commands that accept either an
exp dir or an export dir agree on it without importing each other (standard library only)."""

from __future__ import annotations

import os
from pathlib import Path

MANIFEST = "speech_llm_onnx.json"
"""The manifest of an export dir; its presence marks a directory as one."""


def is_export_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory written by ``speech-llm export`` (it holds :data:`MANIFEST`)."""
    return (Path(path) / MANIFEST).is_file()

INT8_SCOPES = ("body", "all")
"""What ``speech-llm export --int8-scope`` quantizes (recorded as the manifest's ``int8.scope``): ``body`` keeps the
vocabulary-wide products (LM head, vocabulary projector's class table) in float32, ``all`` quantizes them too
(:mod:`speech_llm.export.quantize`). The first is the default."""

INT8_PARTS = ("encoder", "projector", "llm")
"""The models ``speech-llm export --int8-parts`` may quantize; a part left out runs in float32 under ``int8=True``
too (the manifest's ``int8`` entry names its float file)."""

INT8_DEFAULT_PARTS = ("llm",)
"""What ``--int8`` quantizes by default: the LLM step only. Measured on the real-speech checkpoint (bench/RESULTS.md,
2026-12-08, 1 thread, quiet): LLM only 0.149-0.155 RTF and +1.8 WER points on Asterisk, against 0.178-0.192 and
+6.5 for all three models; the int8 encoder and projector are slower than their float32 (0.269 vs 0.229 with the
LLM in float): their matrices per chunk are too small for MatMulNBits to pay."""

