"""Decode a data dir with Whisper's own offline greedy decoder: the accuracy anchor the toolkit's Whisper
encoder + LLM is compared against (same audio, same scoring).

Usage:
    speech-llm whisper-decode --model exp/whisper-tiny.en --data data/asterisk --out exp/whisper_anchor/asterisk
    speech-llm score --ref data/asterisk --hyp exp/whisper_anchor/asterisk
    speech-llm whisper-decode --model exp/asr/distill/best/whisper --encoder-chunk-ms 640 \
        --pad-from exp/whisper-tiny.en --data data/asterisk --out exp/asr/whisper_stream640/asterisk

--model is a transformers Whisper dir or hub name (``speech-llm convert-whisper`` makes one offline).
Writes a decode dir (``text``, ``summary.json``; mode batch: Whisper reads each whole utterance; one longer
than its 30 s window is cut at quiet points and the pieces' texts joined).

``--encoder-chunk-ms`` measures a streaming encoder with Whisper's own decoder: the frames of the audio are
the encoder's output under that chunk mask (as it streams), the frames after the audio up to 1500 those of
``--pad-from``'s encoder (default the model's own) with full attention over the 30 s window
(``encoders.whisper_convert.streamed_transcribe``).
"""

from __future__ import annotations

import argparse

NAME = "whisper-decode"
HELP = "decode a data dir with Whisper's own offline greedy decoder (the anchor for the Whisper encoder)"
ORDER = 44


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="transformers Whisper dir or hub name")
    p.add_argument("--data", required=True, help="Kaldi data dir")
    p.add_argument("--out", required=True, help="decode dir to write")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--encoder-chunk-ms", type=int, default=None, metavar="MS",
                   help="read the encoder's frames under this chunk mask (streaming) instead of full attention")
    p.add_argument("--left-chunks", type=int, default=-1, help="with --encoder-chunk-ms: left context in chunks")
    p.add_argument("--pad-from", default=None, metavar="DIR",
                   help="with --encoder-chunk-ms: the Whisper dir whose encoder gives the frames after the audio")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch
    from tqdm import tqdm
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from data_prep.audio import read_audio
    from data_prep.kaldi_dir import read_data_dir
    from encoders.constants import SAMPLE_RATE
    from encoders.whisper import WhisperStreamingEncoder
    from encoders.whisper_convert import greedy_transcribe, streamed_transcribe
    from speech_llm.metrics.decode_dir import DecodeSummary, write_decode_dir

    processor = WhisperProcessor.from_pretrained(str(args.model))
    model = WhisperForConditionalGeneration.from_pretrained(str(args.model)).eval()
    encoder = pad_encoder = chunk = None
    if args.encoder_chunk_ms is not None:
        encoder = WhisperStreamingEncoder.from_pretrained(str(args.model)).eval()
        pad_encoder = WhisperStreamingEncoder.from_pretrained(str(args.pad_from)).eval() if args.pad_from else None
        chunk = round(args.encoder_chunk_ms / (encoder.frame_shift_s * 1000))
    utts = read_data_dir(args.data)
    keys = list(utts)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    texts, start, audio_s = [], time.perf_counter(), 0.0
    for i in tqdm(range(0, len(keys), args.batch_size), desc="whisper", unit="batch", disable=args.no_progress):
        waves = [torch.from_numpy(read_audio(utts[k].wav)) for k in keys[i:i + args.batch_size]]
        audio_s += sum(w.numel() for w in waves) / SAMPLE_RATE
        if encoder is None:
            texts += greedy_transcribe(args.model, waves, batch_size=args.batch_size, model=model,
                                       processor=processor)
        else:
            texts += streamed_transcribe(model, processor, encoder, waves, chunk, args.left_chunks, pad_encoder,
                                         batch_size=args.batch_size)
    compute = time.perf_counter() - start
    write_decode_dir(out, zip(keys, texts), DecodeSummary(
        task="asr", mode="batch", num_utts=len(keys), compute_s=round(compute, 3), audio_s=round(audio_s, 3),
        options={"decoder": "whisper greedy", "encoder_chunk_ms": args.encoder_chunk_ms,
                 "left_chunks": args.left_chunks, "pad_from": args.pad_from},
        info={"model": str(args.model)}))
    print(f"whisper-decode: {len(keys)} utterances -> {out}/text ({compute:.1f} s for {audio_s:.1f} s of audio)")
    return 0
