"""Hugging Face transformers, quiet: the one switch for its progress bars and log lines (every package
loads models through it: ``encoders`` for Whisper, ``speech_llm`` for the LLMs)."""

from __future__ import annotations

import contextlib
import functools


@contextlib.contextmanager
def quiet_transformers(errors_only: bool = True, gguf: bool = False):
    """transformers without progress bars while loading, saving or generating (our commands print their own
    status), everything restored afterwards.

    * always: the "Loading weights" bar (transformers' logging switch);
    * ``errors_only``: also its log lines below error (e.g. the load report of Whisper's skipped decoder
      weights, which is expected);
    * ``gguf``: also the GGUF reader's "Converting and de-quantizing GGUF tensors" bar, a plain tqdm that the
      switch does not reach (it is given ``disable=True`` here; its module takes seconds to import, so only
      GGUF loads touch it).
    """
    from transformers.utils import logging as hf_logging

    bar, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    if errors_only:
        hf_logging.set_verbosity_error()
    gguf_utils = gguf_tqdm = None
    if gguf:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils

        gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    if gguf_tqdm is not None:
        gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)
    try:
        yield
    finally:
        if gguf_tqdm is not None:
            gguf_utils.tqdm = gguf_tqdm
        if errors_only:
            hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()
