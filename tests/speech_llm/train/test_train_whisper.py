"""The Whisper encoder through the whole toolkit, on a tiny random Whisper saved like a hub checkpoint: the
ctc stage with each encoder.adapt option, the llm stage on it, the checkpoint rebuilt alone, and decoding
(the Recognizer with Whisper's own streaming log-mel front end, and `speech-llm transcribe`)."""

from __future__ import annotations

import pytest
import torch

from data_prep.audio import read_audio
from encoders.constants import SAMPLE_RATE
from speech_llm.cli import main
from speech_llm.decoding.recognizer import load_recognizer
from speech_llm.model.checkpoint import load_ctc_model, load_model, read_checkpoint
from speech_llm.train.ctc import run_ctc_stage
from speech_llm.train.data import collate
from speech_llm.train.llm import run_llm_stage
from speech_llm.train.toy import make_toy_experiment


def whisper_cfg(toy_root, whisper_dir, *overrides):
    """The toy experiment on the Whisper encoder: 20 ms frames, 4 stacked per 80 ms LLM token, 160 ms chunks
    (8 encoder frames), no CMVN (Whisper's log-mel is normalised already)."""
    return make_toy_experiment(toy_root, overrides=[
        "encoder.name=whisper", f"encoder.path_or_name={whisper_dir}", "encoder.subsampling=2",
        "encoder.dropout=0.0", "projector.stack=4", "data.cmvn_path=null",
        "train.ctc.max_steps=4", "train.ctc.save_every=2", "train.llm.max_steps=4", "train.llm.lr=1e-2",
        "train.ctc.spec_augment=false", *overrides])


@pytest.fixture(scope="module")
def lora_run(toy_root, whisper_dir, tmp_path_factory):
    exp = tmp_path_factory.mktemp("whisper_exp")
    cfg = whisper_cfg(toy_root, whisper_dir, "encoder.adapt=lora", "encoder.lora_rank=4")
    result = run_ctc_stage(cfg, exp, resume=False, cpu=True, progress_bar=False)
    return exp, cfg, result


def test_lora_inside_the_encoder_trains_only_the_adapter_and_folds_into_plain_weights(lora_run):
    exp, cfg, result = lora_run
    assert len(result.losses) == 4
    state = read_checkpoint(exp / "ctc" / "last").state()
    assert any("lora_A" in k for k in state)                   # the checkpoint keeps the adapter (exact resume)
    model, _, _ = load_ctc_model(exp)
    keys = list(model.state_dict())
    assert not any("lora_" in k for k in keys) and "encoder.layers.0.self_attn.q_proj.weight" in keys
    # the folded encoder computes what the adapted one did
    from speech_llm.model.build import build_ctc_model
    from speech_llm.model.checkpoint import load_trained_state

    adapted = build_ctc_model(cfg, model.ctc.proj.out_features, pretrained=False)
    load_trained_state(adapted, state, "model.pt")
    adapted.eval()
    from speech_llm.train.ctc import load_datasets

    train_set, _, _ = load_datasets(cfg)
    batch = collate([train_set[0], train_set[1]])
    assert batch["feats"].size(2) == 80 and train_set.compute.func.__name__ == "compute_log_mel"
    with torch.no_grad():
        a, _ = adapted(batch["feats"], batch["feat_lens"], 8)
        b, _ = model(batch["feats"], batch["feat_lens"], 8)
    assert torch.allclose(a, b, atol=1e-5)


def test_frozen_encoder_keeps_the_pretrained_weights(toy_root, whisper_dir, tmp_path):
    from encoders.whisper import WhisperStreamingEncoder

    cfg = whisper_cfg(toy_root, whisper_dir, "encoder.adapt=frozen", "train.ctc.max_steps=2")
    run_ctc_stage(cfg, tmp_path, resume=False, cpu=True, progress_bar=False)
    model, _, _ = load_ctc_model(tmp_path)
    original = WhisperStreamingEncoder.from_pretrained(str(whisper_dir))
    for (name, p), (_, q) in zip(model.encoder.state_dict().items(), original.state_dict().items()):
        assert torch.equal(p, q), name


def test_llm_stage_on_the_whisper_encoder_rebuilds_alone_and_transcribes(lora_run, capsys):
    exp, cfg, _ = lora_run
    run_llm_stage(cfg, exp, resume=False, cpu=True, progress_bar=False)
    model, _, saved = load_model(exp)
    assert saved.encoder.name == "whisper" and type(model.encoder).__name__ == "WhisperStreamingEncoder"
    assert model.cmvn is None and not any("lora_" in k for k in model.encoder.state_dict())
    rec = load_recognizer(exp, overrides=["max_tokens_per_segment=12", "endpoint.enabled=false"])
    from data_prep.manifest import read_manifest

    first = read_manifest(cfg.data.valid_manifest)[0]["audio"]
    samples = read_audio(first)
    s = rec.create_stream()
    for i in range(0, len(samples), 1234):                     # odd block sizes: the log-mel streams too
        s.accept_waveform(SAMPLE_RATE, samples[i:i + 1234])
        rec.decode(s)
    s.input_finished()
    rec.decode(s)
    assert s.finished and s.tokens_read > 0
    assert main(["transcribe", "--exp-dir", str(exp), first, "--max-tokens-per-segment", "12", "--no-endpoint"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == rec.get_result(s).text
