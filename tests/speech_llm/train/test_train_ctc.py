"""Stage ctc: the loss drops, checkpoints hold what decoding needs, and kill + resume == uninterrupted."""

from __future__ import annotations

import json

import torch

from speech_llm.model.checkpoint import load_ctc_model, read_checkpoint
from speech_llm.train.ctc import run_ctc_stage
from speech_llm.train.toy import make_toy_experiment


def _mean(xs):
    return sum(xs) / len(xs)


def test_ctc_loss_drops_in_thirty_steps(ctc_run):
    _, result = ctc_run
    assert len(result.losses) == 30
    first, last = _mean(result.losses[:5]), _mean(result.losses[-5:])
    assert last < 0.7 * first, (first, last)
    assert result.throughput > 0


def test_ctc_checkpoints_and_log(ctc_run):
    exp, _ = ctc_run
    last, best = read_checkpoint(exp / "ctc" / "last"), read_checkpoint(exp / "ctc" / "best")
    assert last.stage == "ctc" and last.meta["step"] == 30
    assert last.training_state() is not None and best.training_state() is None
    assert (last.path / last.meta["units"]).is_file()
    assert "cmvn.mean" in last.state()  # CMVN stats travel with the model
    log = [json.loads(line) for line in (exp / "ctc" / "train_log.jsonl").read_text().splitlines()]
    valid = [r["valid_loss"] for r in log if "valid_loss" in r]
    assert valid and best.meta["best_valid_loss"] == min(valid)
    assert any("greedy_wer" in r for r in log)


def test_ctc_model_rebuilds_from_the_checkpoint(ctc_run):
    exp, _ = ctc_run
    model, units, cfg = load_ctc_model(exp)
    feats = torch.randn(2, 120, 80)
    lens = torch.tensor([120, 90])
    log_probs, out_lens = model(feats, lens, cfg.encoder.chunk_size)
    assert log_probs.shape[2] == units.vocab_size
    assert out_lens.tolist() == [29, 21]
    again, _, _ = load_ctc_model(exp / "ctc" / "best")
    assert torch.equal(again(feats, lens, cfg.encoder.chunk_size)[0], log_probs)


def _params(path):
    return read_checkpoint(path).state()


def test_ctc_kill_and_resume_matches_an_uninterrupted_run(toy_root, tmp_path):
    cfg = make_toy_experiment(toy_root, overrides=["train.ctc.max_steps=6", "train.ctc.save_every=2",
                                                   "train.ctc.grad_accum=2",
                                                   f"data.units_path={tmp_path / 'units.txt'}"])
    run_ctc_stage(cfg, tmp_path / "a", resume=False, cpu=True, progress_bar=False)
    assert (tmp_path / "units.txt").is_file()  # learned units written where the config says

    killed = run_ctc_stage(cfg, tmp_path / "b", resume=False, cpu=True, progress_bar=False, stop_after=3)
    assert killed.interrupted and killed.progress.step == 3
    assert read_checkpoint(tmp_path / "b" / "ctc" / "last").meta["step"] == 2  # step 3 was lost
    resumed = run_ctc_stage(cfg, tmp_path / "b", resume=True, cpu=True, progress_bar=False)
    assert resumed.progress.step == 6 and len(resumed.losses) == 4

    a, b = _params(tmp_path / "a" / "ctc" / "last"), _params(tmp_path / "b" / "ctc" / "last")
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst <= 1e-6, worst
