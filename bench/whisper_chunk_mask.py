"""How far a frozen Whisper encoder moves under chunk attention masks: frame cosine similarity to its
full-attention output, and what Whisper's own decoder then transcribes.

Usage:
    python bench/whisper_chunk_mask.py                              # packaged tiny.en, espeak-ng sentences
    python bench/whisper_chunk_mask.py --model exp/whisper-tiny.en --chunk-ms 640 --left-chunks -1 2 8

For each espeak-ng sentence (several voices) the features are our log-mel (fixed ceiling) of the audio
zero-padded to 30 s, as Whisper is fed. The reference is full attention over those 3000 frames (Whisper's
own setting: its decoder reads that); ``unpadded`` is full attention over the utterance alone. Each chunk
mask (``--chunk-ms``, each ``--left-chunks``) is compared on the utterance's real frames: mean and 5th
percentile of the per-frame cosine similarity, and the relative L2 distance. Whisper's greedy decoder
(HF ``generate`` on the given encoder output: all 1500 frames, the padding frames computed under the same
mask, Whisper's own setting) then gives a word error rate against the sentences, so the numbers say whether
the frozen encoder is usable under that mask or needs adapting (LoRA / fine-tuning). (Whisper's decoder
reading only the real frames of a short utterance loops until its length cap even under full attention:
it relies on the 30 s window, so that is no measure of the encoder.)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import torch

from encoders.constants import SAMPLE_RATE
from encoders.whisper import WhisperStreamingEncoder
from encoders.whisper_frontend import compute_log_mel
from speech_common.hf import quiet_transformers

SENTENCES = [
    "good morning, how are you today",
    "please call me tomorrow morning",
    "the weather will be cold and windy on the coast this weekend",
    "she opened the window and looked at the garden for a long time",
    "we need three more chairs for the meeting in the small room",
    "turn left at the next corner and walk two hundred meters",
]
VOICES = ["en-us", "en", "en-us+f3"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", help="transformers Whisper dir (default: convert the packaged tiny.en)")
    p.add_argument("--chunk-ms", type=float, nargs="+", default=[640.0])
    p.add_argument("--left-chunks", type=int, nargs="+", default=[-1, 2])
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def espeak(text: str, voice: str, tmp: Path) -> torch.Tensor:
    import soundfile as sf
    import torchaudio

    path = tmp / "s.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    samples, rate = sf.read(str(path), dtype="float32")
    return torchaudio.functional.resample(torch.from_numpy(samples), rate, SAMPLE_RATE)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_errors(ref: str, hyp: str) -> int:
    import jiwer

    r, h = " ".join(words(ref)), " ".join(words(hyp))
    return jiwer.process_words(r, h).wer * len(words(ref)) if h else len(words(ref))


def decode(whisper, tok, encoder_outputs) -> str:
    """Whisper's greedy decoder (English, no timestamps) on given encoder outputs."""
    with quiet_transformers():
        ids = whisper.generate(encoder_outputs=encoder_outputs, do_sample=False, num_beams=1, return_timestamps=False)
    return tok.batch_decode(ids, skip_special_tokens=True)[0].strip()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from transformers import WhisperForConditionalGeneration, WhisperProcessor
    from transformers.modeling_outputs import BaseModelOutput

    model_dir = args.model
    if model_dir is None:
        from encoders.whisper_convert import convert_ct2_whisper

        model_dir = tempfile.mkdtemp(prefix="whisper_tiny_en_")
        convert_ct2_whisper(None, model_dir)
    with quiet_transformers():
        whisper = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()
        tok = WhisperProcessor.from_pretrained(model_dir).tokenizer
    enc = WhisperStreamingEncoder.from_pretrained(model_dir).eval()
    frames_30s = 2 * enc.max_positions
    settings = [("full (30 s padded)", 0, -1, True), ("full (unpadded)", 0, -1, False)]
    for ms in args.chunk_ms:
        chunk = round(ms / (enc.frame_shift_s * 1000))
        for left in args.left_chunks:
            settings.append((f"{ms:.0f} ms, left {'all' if left < 0 else left}", chunk, left, True))
    stats = {name: {"cos": [], "rel": [], "errors": 0} for name, *_ in settings}
    ref_words = 0
    examples: dict[str, str] = {}
    with torch.inference_mode(), tempfile.TemporaryDirectory() as tmp:
        for voice in VOICES:
            for sentence in SENTENCES:
                wave = espeak(sentence, voice, Path(tmp))
                padded = torch.cat([wave, wave.new_zeros(30 * SAMPLE_RATE - wave.numel())])
                feats = compute_log_mel(padded)[None]  # (1, 3000, 80)
                real = int(enc.output_lengths(wave.numel() // 160))
                ref, _ = enc(feats, torch.tensor([frames_30s]))
                ref_words += len(words(sentence))
                for name, chunk, left, pad in settings:
                    if pad:
                        out, _ = enc(feats, torch.tensor([frames_30s]), chunk, left)
                    else:
                        out, _ = enc(feats[:, :wave.numel() // 160], torch.tensor([wave.numel() // 160]), chunk, left)
                    a, b = out[0, :real], ref[0, :real]
                    stats[name]["cos"].append(torch.nn.functional.cosine_similarity(a, b, dim=-1))
                    stats[name]["rel"].append(float((a - b).norm() / b.norm()))
                    memory = out if pad else torch.cat([out, ref[:, out.size(1):]], dim=1)
                    hyp = decode(whisper, tok, BaseModelOutput(last_hidden_state=memory))
                    stats[name]["errors"] += word_errors(sentence, hyp)
                    if voice == VOICES[0] and sentence == SENTENCES[3]:
                        examples[name] = hyp
    print(f"Whisper encoder from {model_dir}: {len(VOICES)} espeak-ng voices x {len(SENTENCES)} sentences, "
          f"{ref_words} words; reference = full attention over the 30 s padded input")
    header = f"{'setting':<22} {'cos mean':>8} {'cos p5':>7} {'rel L2':>7} {'WER %':>6}   e.g. {SENTENCES[3]!r}"
    print(header)
    print("-" * len(header))
    for name, *_ in settings:
        cos = torch.cat(stats[name]["cos"])
        rel = sum(stats[name]["rel"]) / len(stats[name]["rel"])
        wer = 100.0 * stats[name]["errors"] / ref_words
        print(f"{name:<22} {float(cos.mean()):8.4f} {float(cos.quantile(0.05)):7.4f} {rel:7.3f} {wer:6.1f}   "
              f"{examples.get(name, '')[:90]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
