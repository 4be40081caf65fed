"""Integration test: a shortened recipes/mini run end to end, interrupted during training and resumed.

This is the CI version of the README's main job: the same run.sh with fewer utterances and steps. It checks
that the pipeline completes, that the WER is below a real bound for this budget (a model that did not
learn would be far above it), that a second run after an interruption resumes training instead of
starting over and skips the finished stages, and that the options parser rejects unknown options.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "recipes" / "mini" / "run.sh"

# The CI budget: about 4 minutes of training on 2 cores.
CI_OPTIONS = [
    "--num-utts", "800", "--llm-pretrain-steps", "300", "--progress", "false",
    "--ctc-overrides", "train.epochs=6 train.save_every=40",
    "--llm-overrides", "train.epochs=4",
]
WER_BOUND = 0.35
"""Streaming WER (640 ms) the shortened run must reach; an untrained model is at ~100 %."""


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def _run(work: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(RUN), "--work-dir", str(work), *CI_OPTIONS, *extra], env=_env(),
                          capture_output=True, text=True, timeout=3600)
    if check and proc.returncode != 0:
        raise AssertionError(f"run.sh failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def _interrupt_during_ctc(work: Path) -> str:
    """Start the recipe, wait until the CTC stage saved a checkpoint, then kill the whole process group."""
    log = work.parent / "interrupted.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", str(RUN), "--work-dir", str(work), *CI_OPTIONS, "--stop-stage", "7"],
                                env=_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        last = work / "exp" / "mini" / "ctc" / "last"
        deadline = time.monotonic() + 1800
        try:
            while not (last / "training_state.pt").exists():
                if proc.poll() is not None:
                    raise AssertionError(f"run.sh ended before the interruption:\n{log.read_text()[-4000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError("no CTC checkpoint within 30 minutes")
                time.sleep(1.0)
            time.sleep(2.0)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    return log.read_text()


@pytest.mark.integration
@pytest.mark.timeout(3000)
def test_mini_recipe_end_to_end_with_interrupt_and_resume(tmp_path):
    work = tmp_path / "mini"
    first = _interrupt_during_ctc(work)
    assert "Stage 3: CTC encoder" in first and "Stage 4" not in first
    assert not (work / "exp" / "mini" / ".done.ctc").exists()

    second = _run(work, "--stop-stage", "7").stdout
    # finished stages are skipped, training resumes from its checkpoint
    for name in ("synth", "prepare", "build"):
        assert f"({name}): done before, skipped" in second
    assert "[ctc] resumed from" in second
    for stage in range(3, 8):
        assert f"Stage {stage}" in second

    rows = {r["name"]: r for r in json.loads((work / "exp" / "mini" / "results.json").read_text())["rows"]}
    assert set(rows) == {"decode_test_640ms", "decode_test_320ms", "decode_test_batch"}
    stream, batch = rows["decode_test_640ms"], rows["decode_test_batch"]
    assert stream["num_utts"] == batch["num_utts"] == 80
    assert stream["wer"] < WER_BOUND, f"streaming WER {stream['wer']:.3f}"
    assert stream["mode"] == "streaming" and stream["chunk_ms"] == 640 and batch["mode"] == "batch"
    assert 0.0 < stream["delay_mean_s"] < 2.0 and stream["rtf"] < 1.0
    assert "| decode_test_640ms | streaming | 640 |" in (work / "exp" / "mini" / "results.md").read_text()

    third = _run(work, "--stage", "3", "--stop-stage", "5").stdout   # everything done: nothing retrains
    assert "Stage 3 (ctc): done before" in third and "Stage 5 (llm): done before" in third


def test_unknown_option_and_help(tmp_path):
    bad = subprocess.run(["bash", str(RUN), "--work-dir", str(tmp_path), "--chunk-size", "3"],
                         capture_output=True, text=True, env=_env())
    assert bad.returncode == 1 and "unknown option --chunk-size" in bad.stderr
    assert not (tmp_path / "data").exists()
    helped = subprocess.run(["bash", str(RUN), "--help"], capture_output=True, text=True, env=_env())
    assert helped.returncode == 0 and "--chunk-ms" in helped.stdout and "--num-utts" in helped.stdout
