"""`speech-llm export` on an llm checkpoint with a LoRA adapter: the export (adapter merged) decodes as
the checkpoint does, through speech_llm.load_recognizer, `python -m speech_runtime` and `speech-llm transcribe`."""

from __future__ import annotations

import soundfile as sf
import torch
from runtime_testutil import audio, feed, same
from tiny_speech_llm import tiny_config

import speech_runtime
from speech_llm.cli import main
from speech_llm.decoding.recognizer import Recognizer
from speech_llm.model.build import build_speech_llm
from speech_llm.model.checkpoint import TOKENIZER_DIR, llm_reference, save_checkpoint, trained_state


@torch.no_grad()
def test_export_command_round_trip(tiny_llm_dir, one_thread, tmp_path, capsys):
    cfg = tiny_config(tiny_llm_dir)
    torch.manual_seed(0)
    model, tok = build_speech_llm(cfg, adapters=True)
    for p in model.parameters():
        if p.requires_grad:
            p.normal_(0, 0.05)                   # as if trained: projector, LoRA, the wait row
    ckpt = tmp_path / "exp" / "llm" / "last"
    meta = {"base_llm": llm_reference(cfg.llm.path_or_name, ckpt), "encoder_in_checkpoint": True}
    save_checkpoint(ckpt, stage="llm", config=cfg, model_state=trained_state(model, prefixes=("encoder.", "cmvn.")),
                    meta=meta, writers={TOKENIZER_DIR: tok.save_pretrained})
    out = tmp_path / "onnx"
    assert main(["export", "--exp-dir", str(ckpt), "--out", str(out), "--set", "max_tokens_per_read=4"]) == 0
    assert "export: wrote" in capsys.readouterr().out
    assert main(["export", "--exp-dir", str(ckpt), "--out", str(out)]) != 0     # OUT not empty: refused

    ref = Recognizer.from_checkpoint(ckpt, overrides=["endpoint.enabled=false", "max_tokens_per_read=4"])
    import speech_llm

    rt = speech_llm.load_recognizer(out)
    assert isinstance(rt, speech_runtime.Recognizer) and rt.config.max_tokens_per_read == 4
    x = audio(1.9, 0)
    a, b = feed(ref, [x], seed=0), feed(rt, [x], seed=1)
    same(*a, *b)

    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    from speech_runtime.__main__ import main as runtime_main

    assert runtime_main([str(out), str(tmp_path / "a.wav"), "--threads", "1"]) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path / 'a.wav'}\t{a[1][0].text}".strip()

    # `transcribe --realtime` with the exp dir's checkpoint and with the export: the same text, each with its own
    # decode config (endpointing on: the checkpoint's default decoder rules, exported with it)
    texts = []
    for exp in (ckpt, out):
        assert main(["transcribe", "--exp-dir", str(exp), "--realtime", "--max-tokens-per-read", "4",
                     str(tmp_path / "a.wav")]) == 0
        texts.append(capsys.readouterr().out.strip().splitlines()[-1])
    assert texts[0] == texts[1] == feed(Recognizer.from_checkpoint(ckpt, overrides=["max_tokens_per_read=4"]),
                                        [x], fixed=1600)[1][0].text
