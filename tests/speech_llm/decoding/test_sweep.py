"""speech-llm sweep and plot-emissions on the toy experiment: the table, the JSON and the pictures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from speech_llm.cli import main
from speech_llm.decoding.sweep import read_sweep

pytestmark = pytest.mark.usefixtures("one_thread")


def _png_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size, np.asarray(im.convert("L"))


def test_sweep_decodes_every_setting_scores_it_and_plots(llm_run, toy_root, tmp_path, capsys):
    exp, _ = llm_run
    data = toy_root / "data" / "test"
    out = tmp_path / "sweep"
    args = ["sweep", "--exp-dir", str(exp), "--label", "toy", "--data", str(data), "--out", str(out),
            "--chunks", "160,320", "--read-ahead", "0,1", "--max-tokens-per-segment", "30", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    curves = read_sweep(out / "sweep.json")
    points = curves["toy"]
    assert [(p.mode, p.chunk_ms, p.read_ahead) for p in points] == [
        ("streaming", 160, 0), ("streaming", 160, 1), ("streaming", 320, 0), ("streaming", 320, 1), ("batch", None, 0)]
    for p in points:   # every point is a real, scored decode dir at the setting it names
        res = json.loads((out / "toy" / p.decode_dir.split("/")[-1] / "results.json").read_text())
        assert res["wer"]["percent"] == pytest.approx(100 * p.wer, abs=1e-3)
        summary = res["decode_summary"]
        assert summary["mode"] == p.mode and summary["options"]["max_tokens_per_segment"] == 30
        if p.mode == "streaming":
            assert summary["chunk_ms"] == p.chunk_ms and summary["options"]["read_ahead_chunks"] == p.read_ahead
    assert all(p.delay_ideal_s is not None and p.delay_ca_s >= p.delay_ideal_s - 1e-9 for p in points)
    assert "| toy | streaming | 320 | 1 |" in printed and (out / "sweep.md").is_file()
    size, pixels = _png_size(out / "sweep.png")
    assert size[0] > 800 and pixels.std() > 10                     # a real figure, not a blank canvas
    stamp = (out / "toy" / "decode_160ms_ra0" / "results.json").stat().st_mtime_ns
    assert main(args) == 0                                         # a rerun reuses the scored points
    assert (out / "toy" / "decode_160ms_ra0" / "results.json").stat().st_mtime_ns == stamp


def test_plot_emissions_draws_one_utterance(llm_run, toy_root, tmp_path, capsys):
    exp, _ = llm_run
    out = tmp_path / "utt.png"
    assert main(["plot-emissions", "--exp-dir", str(exp), "--data", str(toy_root / "data" / "test"),
                 "--chunks", "160,320", "--out", str(out), "--max-tokens-per-segment", "30"]) == 0
    printed = capsys.readouterr().out
    assert "streaming 160 ms:" in printed and "batch:" in printed
    size, pixels = _png_size(out)
    assert size[1] > 300 and pixels.std() > 10


def test_words_committed_at_the_same_moment_share_one_label():
    from speech_llm.metrics.plots import _same_time_groups

    words = [("CALL", 0.64), ("ALICE", 1.28), ("ON", 1.28), ("MONDAY", 3.8), ("PLEASE", 3.8)]
    assert _same_time_groups(words) == [("call", 0.64), ("alice on", 1.28), ("monday please", 3.8)]
    assert _same_time_groups([]) == []
