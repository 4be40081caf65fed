"""Integration test: the smoke version of recipes/asr_cpu (Whisper tiny.en from its wheel, self-distilled under
chunk masks; the projector pre-aligned with CTC over the real SmolLM2-135M-Instruct's tokens; LoRA on cached
frames; the Asterisk prompts): a few steps per stage and one utterance per test set, every stage end to end,
then a rerun that skips all of them. The full run's figures are in recipes/asr_cpu/RESULTS.md."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "recipes" / "asr_cpu" / "run.sh"

SMOKE = [
    "--num-utts", "30", "--test-utts", "1", "--threads", "1", "--progress", "false",
    "--overrides", "train.distill.max_steps=2 train.distill.warmup_steps=1 train.distill.valid_every=2 "
                   "train.proj.max_steps=3 train.proj.warmup_steps=1 train.proj.valid_every=3 "
                   "train.llm.max_steps=2 train.llm.warmup_steps=1 train.llm.valid_every=2 "
                   "decode.max_tokens_per_segment=8",
]
SETS = ("test", "test_heldout", "asterisk")


def _run(work: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.run(["bash", str(RUN), "--work-dir", str(work), *SMOKE, *extra], env=env,
                          capture_output=True, text=True, timeout=2400)


@pytest.mark.integration
@pytest.mark.timeout(2400)
def test_asr_cpu_recipe_smoke_run_and_rerun(tmp_path):
    work = tmp_path / "work"
    proc = _run(work)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    exp = work / "exp" / "asr"
    # the distilled encoder is a complete Whisper dir; the llm stage read it without a CTC checkpoint
    assert (exp / "distill" / "best" / "whisper" / "config.json").is_file()
    meta = json.loads((exp / "llm" / "best" / "meta.json").read_text())
    assert meta["encoder_pretrained"]["path"].endswith("distill/best/whisper")
    assert "projector.vocab_ids" in __import__("torch").load(exp / "llm" / "best" / "model.pt")
    # frozen outputs were cached: teacher frames and the distilled encoder's streamed frames
    assert len([d for d in (work / "exp" / "cache").iterdir() if d.is_dir()]) == 2
    # the proj and llm stages read the training audio with its augmented copies (2 variants + the originals)
    train_keys = {line.split(" ", 1)[0] for line in (work / "data" / "train" / "text").read_text().splitlines()}
    aug = [json.loads(line) for line in (work / "data" / "train_aug" / "manifest.jsonl").read_text().splitlines()]
    assert len(aug) == 3 * len(train_keys)
    assert {r["key"] for r in aug} >= train_keys and any(r["key"].endswith("-sp1.1+tel") for r in aug)
    assert "train_aug/manifest.jsonl" in (exp / "proj" / "config.yaml").read_text()
    # no test sentence is in the vocabulary text
    vocab = set((work / "data" / "vocab_text.txt").read_text().splitlines())
    for s in ("asterisk", "test", "test_heldout"):
        assert not vocab & {line.split(" ", 1)[1] for line in (work / "data" / s / "text").read_text().splitlines()}
    rows = json.loads((exp / "results.json").read_text())["rows"]
    names = [r["name"] for r in rows]
    for s in SETS:
        assert f"asr/decode_{s}_640ms" in names and f"asr/decode_{s}_batch" in names
    for s in ("test_heldout", "asterisk"):
        assert f"whisper_anchor/decode_{s}_batch" in names and f"whisper_stream/decode_{s}_batch" in names
    for r in rows:
        assert r["num_utts"] == 1 and r["wer"] is not None

    again = _run(work)
    assert again.returncode == 0, again.stderr[-4000:]
    for stage in ("distill", "proj", "llm"):
        assert f"({stage}): done before, skipped" in again.stdout
    assert "Stage 6: decode" not in again.stdout and "whisper-decode:" not in again.stdout

    # other augmentation variants are not taken for done: stage 1 writes the copies again
    other = _run(work, "--augment", "sp0.9", "--stop-stage", "1")
    assert other.returncode == 0, other.stderr[-4000:]
    assert "augmented copies of data/train (sp0.9)" in other.stdout
    aug = [json.loads(line) for line in (work / "data" / "train_aug" / "manifest.jsonl").read_text().splitlines()]
    assert len(aug) == 2 * len(train_keys) and not any(r["key"].endswith("-sp1.1+tel") for r in aug)
