"""Run the real `speech-llm serve` command (options, logging, signals) on the tiny test model.

Usage:
    python tests/speech_llm/server/serve_tiny.py LLM_DIR --port 0 [more serve options]

The checkpoint loader is replaced by one that builds the tiny random-weight recognizer (conftest's
``server_rec``) with the command's decoding overrides applied, so no trained checkpoint is needed.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))        # tests/speech_llm: tiny_speech_llm

import torch  # noqa: E402
from tiny_speech_llm import make_speech_llm  # noqa: E402

import speech_llm.decoding.recognizer  # noqa: E402
from speech_llm.cli import main  # noqa: E402
from speech_llm.config import DecodeConfig, EndpointConfig  # noqa: E402
from speech_llm.typed_config import apply_overrides  # noqa: E402

BASE = DecodeConfig(max_tokens_per_read=3, max_tokens_per_segment=40, endpoint=EndpointConfig(mode="energy"))


def tiny_recognizer(llm_dir, overrides=()):
    model, tok = make_speech_llm(llm_dir)
    return speech_llm.decoding.recognizer.Recognizer(model, tok, apply_overrides(BASE, overrides))


if __name__ == "__main__":
    torch.set_num_threads(1)
    llm_dir = sys.argv[1]
    speech_llm.decoding.recognizer.load_recognizer = lambda path, config=None, device="cpu", overrides=(): \
        tiny_recognizer(llm_dir, overrides)
    sys.exit(main(["serve", "--exp-dir", "unused", *sys.argv[2:]]))
