"""The ``mt`` stage on the shared trainer (full fine-tuning and LoRA, resume, the checkpoint format),
and ``speech-llm train --stage mt`` / ``translate`` / ``decode --task mt`` / ``score --task mt``."""

import io
import json

import pytest
import torch
from mt_testutil import PAIRS, STEPS, TEST, mt_config

from speech_common.errors import UserError
from speech_llm.cli import main
from speech_llm.metrics.emissions import read_emissions
from speech_llm.model.checkpoint import read_checkpoint
from speech_llm.mt import load_mt_model, read_parallel_data, translate
from speech_llm.mt.train import MTStage, run_mt_stage


def _mean(xs):
    return sum(xs) / len(xs)


def test_full_fine_tuning_clearly_reduces_the_loss(trained_run):
    exp, result = trained_run
    losses = result.losses
    assert len(losses) == STEPS
    assert _mean(losses[-5:]) < 0.75 * _mean(losses[:5])
    ckpt = read_checkpoint(exp / "mt" / "last")                      # the shared checkpoint format
    assert ckpt.stage == "mt" and ckpt.meta["step"] == STEPS and ckpt.meta["train_pairs"] == 50
    assert ckpt.config.train.mt.k == [1, 2, 3] and ckpt.config.llm.lora_rank == 0
    assert (ckpt.path / "tokenizer").is_dir() and ckpt.meta["base_llm"]["name"].endswith("base")
    r = translate(load_mt_model(exp), TEST[0].text, 2)               # the exp dir alone loads and translates
    assert r.tokens and r.unit_src_words[0] == 2


def test_lora_trains_only_the_adapter(mt_root, trained_run):
    """LoRA on the base: only the adapter trains, the checkpoint holds only it, and the rebuilt model
    gives the trained logits."""
    cfg = mt_config(mt_root / "base", "llm.lora_rank=4", "llm.lora_alpha=8", "llm.lora_dropout=0.0",
                    "train.mt.max_steps=20", "train.mt.lr=1e-2", "train.mt.k=[2]")
    stage = MTStage(cfg, PAIRS)
    trained = {n for n, p in stage.model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    result = run_mt_stage(cfg, mt_root / "exp_lora", pairs=PAIRS, resume=False, cpu=True, progress_bar=False)
    assert _mean(result.losses[-5:]) < _mean(result.losses[:5])
    state = read_checkpoint(mt_root / "exp_lora" / "mt" / "last").state()
    assert state and all("lora_" in k for k in state)
    model = load_mt_model(mt_root / "exp_lora")
    assert not any(p.requires_grad for p in model.glm.parameters())
    assert translate(model, TEST[1].text, 2).units


def test_an_interrupted_mt_run_resumes_to_the_same_weights(mt_root):
    cfg = mt_config(mt_root / "base", "train.mt.max_steps=6", "train.mt.save_every=3")
    full = run_mt_stage(cfg, mt_root / "exp_full", pairs=PAIRS, resume=False, cpu=True, progress_bar=False)
    first = run_mt_stage(cfg, mt_root / "exp_cut", pairs=PAIRS, resume=False, cpu=True, progress_bar=False,
                         stop_after=3)
    assert first.interrupted and len(first.losses) == 3
    rest = run_mt_stage(cfg, mt_root / "exp_cut", pairs=PAIRS, cpu=True, progress_bar=False)
    assert first.losses + rest.losses == pytest.approx(full.losses, abs=1e-6)
    a = read_checkpoint(mt_root / "exp_full" / "mt" / "last").state()
    b = read_checkpoint(mt_root / "exp_cut" / "mt" / "last").state()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_mt_stage_rejects_bad_input(mt_root):
    with pytest.raises(UserError, match="train.mt.k"):
        mt_config(mt_root / "base", "train.mt.k=[0]")
    with pytest.raises(UserError, match="empty source or target"):
        MTStage(mt_config(mt_root / "base"), [PAIRS[0], ("A B", " ")])
    with pytest.raises(UserError, match="cannot load"):
        MTStage(mt_config(mt_root / "nowhere"), PAIRS)
    with pytest.raises(UserError, match="set data.train_manifest"):
        MTStage(mt_config(mt_root / "base"))


def _write_ref(d, sentences):
    """A data dir in the layout score --task mt reads: text (English) + manifest.jsonl with translations."""
    d.mkdir()
    (d / "text").write_text("".join(f"utt{i:03d} {s.text}\n" for i, s in enumerate(sentences)))
    with open(d / "manifest.jsonl", "w") as f:
        for i, s in enumerate(sentences):
            rec = {"key": f"utt{i:03d}", "audio": f"utt{i:03d}.flac", "duration": 1.0, "text": s.text,
                   "speaker": "spk", "translation": {"fr": s.translation["fr"]}}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def test_translate_cli_end_to_end_then_score(trained_run, tmp_path, capsys):
    model_dir, _ = trained_run
    _write_ref(tmp_path / "ref", TEST)
    assert read_parallel_data(tmp_path / "ref")["utt000"] == (TEST[0].text, TEST[0].translation["fr"])
    hyp = tmp_path / "hyp"
    rc = main(["translate", "--model", str(model_dir), "--k", "2", "--input", str(tmp_path / "ref" / "text"),
               "--kaldi-text", "--out", str(hyp), "--show-delays"])
    assert rc == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed] == [f"utt{i:03d}" for i in range(len(TEST))]
    assert all("@" in line for line in printed if len(line.split()) > 1)
    assert (hyp / "text").is_file() and (hyp / "emissions.jsonl").is_file()

    assert main(["score", "--ref", str(tmp_path / "ref"), "--hyp", str(hyp), "--task", "mt", "--lang", "fr"]) == 0
    res = json.loads((hyp / "results.json").read_text())
    assert res["task"] == "mt" and 0.0 <= res["bleu"]["bleu"] <= 100.0
    ideal = res["simul"]["ideal"]
    assert res["simul"]["unit"] == "words" and isinstance(ideal["AL"], float)
    ems = read_emissions(hyp / "emissions.jsonl")
    scored = [em for em in ems.values() if em.words]
    assert res["simul"]["num_scored"] == len(scored) > 0
    assert ideal["StartOffset"] == pytest.approx(_mean([min(2, em.src_len) for em in scored]))
    assert res["decode_summary"]["k"] == 2 and res["decode_summary"]["mode"] == "wait-k"


def test_translate_cli_reads_stdin_and_batch_equals_large_k(trained_run, monkeypatch, capsys):
    model_dir, _ = trained_run
    text = "\n".join(s.text for s in TEST[:3]) + "\n\n"
    outs = []
    for mode in (["--batch"], ["--k", "50"]):
        monkeypatch.setattr("sys.stdin", io.StringIO(text))
        assert main(["translate", "--model", str(model_dir), *mode]) == 0
        outs.append(capsys.readouterr().out.splitlines())
    assert outs[0] == outs[1] and len(outs[0]) == 3


def test_translate_cli_errors(mt_root, trained_run, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("HELLO\n")
    assert main(["translate", "--model", str(mt_root / "base"), "--input", str(tmp_path / "in.txt")]) == 2
    assert "no mt checkpoint" in capsys.readouterr().err
    model_dir, _ = trained_run
    assert main(["translate", "--model", str(model_dir), "--input", str(tmp_path / "nope.txt")]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "bad.txt").write_text("onlykey\n")
    assert main(["translate", "--model", str(model_dir), "--input", str(tmp_path / "bad.txt"),
                 "--kaldi-text"]) == 2
    assert "want '<key> <sentence>'" in capsys.readouterr().err


def test_decode_task_mt_equals_translate_and_scores(trained_run, tmp_path, capsys):
    """``speech-llm decode --task mt`` translates a data dir's text exactly as ``translate --out`` does."""
    model_dir, _ = trained_run
    _write_ref(tmp_path / "ref", TEST)
    ref = str(tmp_path / "ref")
    assert main(["decode", "--task", "mt", "--exp-dir", str(model_dir), "--data", ref, "--k", "2",
                 "--out", str(tmp_path / "dec"), "--no-progress"]) == 0
    assert main(["translate", "--model", str(model_dir), "--k", "2", "--input", f"{ref}/text", "--kaldi-text",
                 "--out", str(tmp_path / "tr")]) == 0
    assert (tmp_path / "dec" / "text").read_text() == (tmp_path / "tr" / "text").read_text()
    assert json.loads((tmp_path / "dec" / "summary.json").read_text())["k"] == 2
    assert main(["decode", "--task", "mt", "--exp-dir", str(model_dir), "--data", ref, "--mode", "batch",
                 "--out", str(tmp_path / "batch"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "batch" / "summary.json").read_text())["mode"] == "batch"
    assert main(["score", "--ref", ref, "--hyp", str(tmp_path / "dec"), "--task", "mt"]) == 0
    capsys.readouterr()
    assert main(["decode", "--task", "mt", "--exp-dir", str(model_dir), "--data", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "x")]) == 2
    assert "no 'text' file" in capsys.readouterr().err


def test_train_stage_mt_from_the_command_line(mt_root, tmp_path):
    """``speech-llm train --stage mt`` trains on a manifest's text -> translation pairs; a rerun resumes."""
    _write_ref(tmp_path / "data", TEST)
    exp = tmp_path / "exp"
    args = ["train", "--exp-dir", str(exp), "--stage", "mt", "--no-progress", f"llm.path_or_name={mt_root / 'base'}",
            f"data.train_manifest={tmp_path / 'data' / 'manifest.jsonl'}", "llm.lora_rank=0",
            "train.mt.max_steps=2", "train.mt.precision=fp32"]
    assert main(args) == 0
    assert read_checkpoint(exp / "mt" / "last").meta["step"] == 2
    assert main([*args[:-2], "train.mt.max_steps=3", "train.mt.precision=fp32"]) == 0   # resumes: 1 more step
    assert read_checkpoint(exp / "mt" / "last").meta["step"] == 3
