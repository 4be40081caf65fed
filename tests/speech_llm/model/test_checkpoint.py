"""Checkpoints: the dir alone rebuilds the trained model (same logits), merging, references, atomic saves."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from speech_llm.config import ConfigError
from speech_llm.model.checkpoint import (
    CheckpointError,
    find_checkpoint,
    load_model,
    merge_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from speech_llm.train.ctc import run_ctc_stage
from speech_llm.train.data import collate
from speech_llm.train.llm import LLMStage
from speech_llm.train.toy import make_toy_experiment
from speech_llm.train.trainer import Trainer, seed_everything

STEPS = ["train.llm.max_steps=4", "train.llm.lr=1e-2", "data.valid_manifest=null"]


def _train(root, exp, arch="qwen2"):
    """A few CTC and LLM steps; returns the LLM stage (holding the trained model)."""
    cfg = make_toy_experiment(root, arch=arch, overrides=STEPS)
    run_ctc_stage(make_toy_experiment(root, overrides=["train.ctc.max_steps=2", "data.valid_manifest=null"]), exp,
                  resume=False, cpu=True, progress_bar=False)
    seed_everything(cfg.train.llm.seed)
    stage = LLMStage(cfg, exp / "ctc")
    Trainer(stage, cfg, exp / "llm", cpu=True, progress_bar=False).fit(resume=False)
    stage.model.eval()
    return stage


pytestmark = pytest.mark.usefixtures("one_thread", "fbank_once")  # tests/speech_llm/conftest.py


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "toy_experiment"
    exp = tmp_path_factory.mktemp("ckpt") / "exp"
    return exp, _train(root, exp)


@torch.no_grad()
def _logits(model, stage):
    batch = collate([stage.train_set[0], stage.train_set[1]])
    t = stage.targets(batch, stage.train_set, [False, True])  # one streaming, one batch-mode target
    return model(batch["feats"], batch["feat_lens"], t["input_ids"], t["labels"], t["target_lens"],
                 t["source_visible"]).logits


def test_the_checkpoint_dir_alone_rebuilds_the_model(trained):
    exp, stage = trained
    model, tokenizer, cfg = load_model(exp)  # no llm/best without validation: falls back to llm/last
    assert cfg == stage.cfg
    assert model.tokens == stage.model.tokens
    assert tokenizer.convert_tokens_to_ids(cfg.llm.wait_token) == stage.model.tokens.wait_id
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    expected = _logits(stage.model, stage)
    assert torch.allclose(_logits(model, stage), expected, atol=1e-6, rtol=0)


def test_package_level_load_recognizer_decodes_with_the_checkpoint(trained):
    """``speech_llm.load_recognizer(exp)`` (the documented entry point) decodes with the trained model."""
    import speech_llm
    from data_prep.audio import read_audio
    from encoders.constants import SAMPLE_RATE
    from speech_llm.config import DecodeConfig
    from speech_llm.decoding.recognizer import Recognizer

    exp, stage = trained
    rec = speech_llm.load_recognizer(exp, speech_llm.DecodeConfig(mode="batch"))
    assert isinstance(rec, speech_llm.Recognizer) and rec.config.mode == "batch"
    samples = read_audio(stage.train_set.records[0]["audio"])
    model, tok, _ = load_model(exp)
    results = []
    for r in (rec, Recognizer(model, tok, DecodeConfig(mode="batch"))):
        s = r.create_stream()
        s.accept_waveform(SAMPLE_RATE, samples)
        s.input_finished()
        r.decode(s)
        results.append(s.trace)
    assert results[0] == results[1] and results[0]
    with pytest.raises(AttributeError, match="no attribute"):
        speech_llm.no_such_thing  # noqa: B018


def test_a_moved_experiment_still_loads(trained, tmp_path):
    exp, stage = trained
    moved = tmp_path / "moved" / "exp"
    shutil.copytree(exp, moved)
    shutil.move(exp / "ctc", tmp_path / "ctc_aside")  # the absolute encoder path is gone: relpath is used
    try:
        model, _, _ = load_model(moved / "llm" / "last")
        assert torch.allclose(_logits(model, stage), _logits(stage.model, stage), atol=1e-6, rtol=0)
    finally:
        shutil.move(tmp_path / "ctc_aside", exp / "ctc")


def test_a_changed_encoder_or_missing_base_llm_is_reported(trained, tmp_path):
    exp, _ = trained
    copy = tmp_path / "exp"
    shutil.copytree(exp, copy)
    meta_path = copy / "llm" / "last" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["encoder_checkpoint"] = {"path": str(copy / "ctc" / "last"), "relpath": "../../ctc/last",
                                  "sha256": meta["encoder_checkpoint"]["sha256"]}
    meta_path.write_text(json.dumps(meta))
    state = torch.load(copy / "ctc" / "last" / "model.pt", weights_only=True)
    state["ctc.proj.bias"] += 1.0
    torch.save(state, copy / "ctc" / "last" / "model.pt")
    with pytest.raises(CheckpointError, match="has changed since this model was trained"):
        load_model(copy)
    meta["base_llm"] = {"name": "gone", "path": str(tmp_path / "gone"), "relpath": "../../../gone"}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="base LLM dir it was trained on is gone"):
        load_model(copy)


def test_merged_dir_is_standalone_and_gives_the_same_logits(trained, tmp_path):
    from transformers import AutoModelForCausalLM

    exp, stage = trained
    out = merge_checkpoint(exp, tmp_path / "merged")
    assert read_checkpoint(out).meta["merged"] is True
    assert AutoModelForCausalLM.from_pretrained(out / "llm").get_input_embeddings().num_embeddings > \
        stage.model.tokens.wait_id
    model, tokenizer, _ = load_model(out)
    assert tokenizer.convert_tokens_to_ids("<|wait|>") == stage.model.tokens.wait_id
    assert torch.allclose(_logits(model, stage), _logits(stage.model, stage), atol=1e-5, rtol=0)
    with pytest.raises(CheckpointError, match="already a merged"):
        merge_checkpoint(out, tmp_path / "again")


def test_untied_llama_trains_both_wait_rows_and_rebuilds(tmp_path_factory, tmp_path):
    root = tmp_path_factory.getbasetemp() / "toy_experiment"
    stage = _train(root, tmp_path / "exp", arch="llama")
    keys = [k for k in read_checkpoint(tmp_path / "exp" / "llm" / "last").state() if "trainable_tokens" in k]
    assert any("embed_tokens" in k for k in keys) and any("lm_head" in k for k in keys)
    model, _, _ = load_model(tmp_path / "exp")
    expected = _logits(stage.model, stage)
    assert torch.allclose(_logits(model, stage), expected, atol=1e-6, rtol=0)
    merged, _, _ = load_model(merge_checkpoint(tmp_path / "exp", tmp_path / "merged"))
    assert torch.allclose(_logits(merged, stage), expected, atol=1e-5, rtol=0)


def test_an_interrupted_save_keeps_the_previous_checkpoint(trained, tmp_path):
    exp, stage = trained
    cfg = stage.cfg
    save_checkpoint(tmp_path / "last", stage="llm", config=cfg, model_state={"x": torch.ones(2)},
                    meta={"step": 1})

    def crash(path):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last", stage="llm", config=cfg, model_state={"x": torch.zeros(2)},
                        meta={"step": 2}, writers={"tokenizer": crash})
    ckpt = read_checkpoint(tmp_path / "last")
    assert ckpt.meta["step"] == 1 and torch.equal(ckpt.state()["x"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_bad_checkpoints_are_clear_errors(trained, tmp_path):
    exp, _ = trained
    with pytest.raises(CheckpointError, match=r"no llm checkpoint in .*looked for"):
        find_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="is a 'ctc' checkpoint"):
        load_model(exp / "ctc" / "last")
    copy = tmp_path / "ckpt"
    shutil.copytree(exp / "llm" / "last", copy)
    (copy / "config.yaml").write_text((copy / "config.yaml").read_text().replace("  lr:", "  lrr:"))
    with pytest.raises(ConfigError, match=r"config.yaml: config key 'train.ctc.lrr': unknown key"):
        load_model(copy)


def test_transcribe_prints_no_library_noise(trained):
    """A normal `speech-llm transcribe` prints its transcript and nothing else: no transformers notices
    (the new-token resize is not redone at load), no weight-loading bar, no FutureWarning /
    DeprecationWarning from any layer."""
    import os
    import subprocess
    import sys

    exp, stage = trained
    wav = stage.train_set.records[0]["audio"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "default"}
    proc = subprocess.run([sys.executable, "-m", "speech_llm.cli", "transcribe", "--exp-dir", str(exp), wav],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for noise in ("Warning", "deprecated", "multivariate normal", "initialized", "Loading weights"):
        assert noise not in proc.stderr and noise not in proc.stdout, proc.stderr
    assert proc.stdout.strip(), "the final transcript line is printed"


def test_a_checkpoint_saved_with_the_old_chunk_size_reads(tmp_path, caplog):
    """A checkpoint written before the chunk had one unit (``encoder.chunk_size`` in its config.yaml) reads: the
    old key dropped with a warning when it equals ``streaming.chunk_ms``, refused with the file named if not."""
    import yaml

    from speech_llm.config import ExperimentConfig, config_to_dict
    from speech_llm.model.checkpoint import FORMAT

    old = config_to_dict(ExperimentConfig())
    old["encoder"]["chunk_size"] = 16  # 16 x 40 ms = the default 640 ms
    (tmp_path / "meta.json").write_text(json.dumps({"format": FORMAT, "stage": "ctc"}))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    with caplog.at_level("WARNING", logger="speech_llm.config"):
        assert read_checkpoint(tmp_path).config == ExperimentConfig()
    assert "encoder.chunk_size=16" in caplog.text
    old["encoder"]["chunk_size"] = 4
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    with pytest.raises(ConfigError, match=r"config.yaml: config key 'encoder.chunk_size': .* disagrees"):
        read_checkpoint(tmp_path)
