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

# The CI budget: about 8 minutes on 2 cores (1200 utterances, 4 CTC epochs, 6 LLM epochs). One torch thread
# per process: CI shares its 2 cores with other jobs, and two spinning OpenMP threads per process beside them
# made this run several times slower (2026-12-07, load ~11: no CTC checkpoint after 30 minutes with 2 threads).
CI_OPTIONS = [
    "--num-utts", "1200", "--llm-pretrain-steps", "400", "--threads", "1", "--progress", "false",
    "--overrides", "train.ctc.save_every=100 train.llm.epochs=6",   # the rest as in conf/mini.yaml
]
WER_BOUND = 0.68
"""Streaming WER (640 ms) the shortened run must stay under. This budget gave 0.586 (batch 0.644) on the
development machine; LLM stages that had not learned to read the audio (writing the tiny LM's favourite
sentences) scored 0.72-1.22 on the mini test set."""
CTC_WER_BOUND = 0.6
"""The CTC encoder's greedy dev WER after 4 epochs (0.45 on the development machine; untrained: 1.0)."""


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
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    return log.read_text()


def _silence_gives_empty_text(exp: Path) -> None:
    """The trained model (train.silence_share) writes nothing for silence or noise, streaming or batch."""
    import numpy as np

    import speech_llm
    from encoders.constants import SAMPLE_RATE

    rng = np.random.RandomState(0)
    for mode in ("streaming", "batch"):
        rec = speech_llm.load_recognizer(exp, speech_llm.DecodeConfig(mode=mode))
        for x in (np.zeros(2 * SAMPLE_RATE, np.float32), (0.003 * rng.randn(3 * SAMPLE_RATE)).astype(np.float32)):
            s = rec.create_stream()
            for i in range(0, len(x), SAMPLE_RATE // 10):
                s.accept_waveform(SAMPLE_RATE, x[i:i + SAMPLE_RATE // 10])
                rec.decode(s)
            s.input_finished()
            rec.decode(s)
            r = rec.get_result(s)
            assert r.finished and r.text == "", (mode, r.text)


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
    assert stream["num_utts"] == batch["num_utts"] == 120
    assert stream["wer"] < WER_BOUND, f"streaming WER {stream['wer']:.3f}"
    assert stream["wer"] <= 1.25 * batch["wer"], "streaming must not be much worse than batch (same checkpoint)"
    ctc_log = [json.loads(line) for line in (work / "exp" / "mini" / "ctc" / "train_log.jsonl").open()]
    assert [r["greedy_wer"] for r in ctc_log if "greedy_wer" in r][-1] < CTC_WER_BOUND
    assert stream["mode"] == "streaming" and stream["chunk_ms"] == 640 and batch["mode"] == "batch"
    assert 0.0 < stream["delay_mean_s"] < 2.0 and stream["rtf"] < 1.0
    assert "| decode_test_640ms | streaming | 640 |" in (work / "exp" / "mini" / "results.md").read_text()

    _silence_gives_empty_text(work / "exp" / "mini")

    third = _run(work, "--stage", "3", "--stop-stage", "5").stdout   # everything done: nothing retrains
    assert "Stage 3 (ctc): done before" in third and "Stage 5 (llm): done before" in third


def test_unknown_option_and_help(tmp_path):
    bad = subprocess.run(["bash", str(RUN), "--work-dir", str(tmp_path), "--chunk-size", "3"],
                         capture_output=True, text=True, env=_env())
    assert bad.returncode == 1 and "unknown option --chunk-size" in bad.stderr
    assert not (tmp_path / "data").exists()
    helped = subprocess.run(["bash", str(RUN), "--help"], capture_output=True, text=True, env=_env())
    assert helped.returncode == 0 and "--chunk-ms" in helped.stdout and "--num-utts" in helped.stdout
