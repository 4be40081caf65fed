"""Stage ctc: the loss drops, checkpoints hold what decoding needs, and kill + resume == uninterrupted."""

from __future__ import annotations

import json

import pytest
import torch

from speech_llm.model.build import chunk_frames
from speech_llm.model.checkpoint import load_ctc_model, read_checkpoint
from speech_llm.train.ctc import CTCStage, run_ctc_stage
from speech_llm.train.toy import make_toy_experiment
from speech_llm.train.trainer import WarmupCosine


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
    log_probs, out_lens = model(feats, lens, chunk_frames(cfg))
    assert log_probs.shape[2] == units.vocab_size
    assert out_lens.tolist() == [29, 21]
    again, _, _ = load_ctc_model(exp / "ctc" / "best")
    assert torch.equal(again(feats, lens, chunk_frames(cfg))[0], log_probs)


def test_ctc_stage_masks_use_the_frames_of_streaming_chunk_ms(toy_root, tmp_path, monkeypatch):
    """The chunk has one unit: the ctc stage's attention masks (static-chunk training and validation) take
    ``streaming.chunk_ms`` in encoder frames, 320 ms / (10 ms x subsampling 4) = 8, not a second setting."""
    import encoders.streaming_state as streaming_state

    cfg = make_toy_experiment(toy_root, overrides=["streaming.chunk_ms=320", "encoder.dynamic_chunk=false",
                                                   f"data.units_path={tmp_path / 'units.txt'}"])
    stage = CTCStage(cfg)
    assert stage.chunk_frames == chunk_frames(cfg) == 8
    seen = []
    real = streaming_state.padded_chunk_mask

    def spy(lens, num_frames, chunk_size, left_chunks):
        seen.append(chunk_size)
        return real(lens, num_frames, chunk_size, left_chunks)

    monkeypatch.setattr(streaming_state, "padded_chunk_mask", spy)
    stage.model.train()
    stage.train_loss(stage.model, stage.collate([stage.train_set[0], stage.train_set[1]]))
    stage.model.eval()
    with torch.no_grad():
        stage.valid_loss(stage.model, stage.collate([stage.valid_set[0]]))
    assert seen == [8, 8]


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


def test_resume_with_more_steps_follows_the_longer_schedule(toy_root, tmp_path):
    """A finished run resumed with a larger max_steps decays over the new total (not stuck at the old tail)."""
    def config(steps):
        return make_toy_experiment(toy_root, overrides=[f"train.ctc.max_steps={steps}", "train.ctc.save_every=2",
                                                        "train.ctc.log_every=1", "train.ctc.warmup_steps=1",
                                                        f"data.units_path={tmp_path / 'units.txt'}"])

    run_ctc_stage(config(4), tmp_path, resume=False, cpu=True, progress_bar=False)
    longer = config(10)
    run_ctc_stage(longer, tmp_path, resume=True, cpu=True, progress_bar=False)
    log = [json.loads(ln) for ln in (tmp_path / "ctc" / "train_log.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in log if "lr" in r}
    base, short, long = longer.train.ctc.lr, WarmupCosine(1, 4), WarmupCosine(1, 10)
    assert lrs[4] == pytest.approx(base * short(4))  # the first run ended at its floor
    for step in range(5, 11):
        assert lrs[step] == pytest.approx(base * long(step)), step
    assert lrs[5] > 2 * lrs[4]
