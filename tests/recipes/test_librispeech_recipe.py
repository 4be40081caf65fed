"""Integration test: recipes/librispeech/run.sh end to end on a tiny synthetic corpus in LibriSpeech layout.

The same script that runs LibriSpeech on GPUs runs here on CPU (``--ngpu 0``), from another working dir,
on a corpus whose parts carry LibriSpeech's names (two train parts, so they are combined; two test parts),
read with ``--corpus-dir`` instead of a download, with conf/librispeech_tiny_test.yaml and a tiny local LLM
built as ``speech-llm build-llm`` does (``--llm DIR``). It checks that every stage ran and wrote what the
next one reads, that the results tables hold WER numbers, that a rerun skips the finished stages, and
that asking for one more chunk size only adds those decodes.
The WER itself is meaningless at this size (20 training steps).
The option checks at the end are quick and need no corpus.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest

from speech_llm.metrics.wer import Normalizer

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "recipes" / "librispeech" / "run.sh"

PARTS = {"train-clean-100": 14, "train-clean-360": 10, "dev-clean": 4, "test-clean": 4, "test-other": 4}
"""Utterances per corpus part (the synthetic corpus takes the shares as given)."""
TRAIN_SET = "train_clean_100_clean_360"
TAG = f"tiny_test_{TRAIN_SET}"
TEST_SETS = ("test_clean", "test_other")


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # speech-llm, python
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def _run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(RUN), *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"run.sh failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="module")
def corpus_and_llm(tmp_path_factory) -> tuple[Path, Path]:
    """A synthetic corpus with LibriSpeech part names, and a tiny LLM trained on its train transcripts."""
    from data_prep.synth import generate_corpus
    from speech_llm.train.toy import make_toy_llm

    root = tmp_path_factory.mktemp("librispeech_recipe")
    corpus = generate_corpus(root / "corpus", num_utts=sum(PARTS.values()), seed=0, splits=PARTS,
                             num_workers=1, progress=False)
    texts = [line.split(maxsplit=1)[1] for p in sorted(corpus.glob("train-*/*/*/*.trans.txt"))
             for line in p.read_text().splitlines()]
    assert len(texts) == PARTS["train-clean-100"] + PARTS["train-clean-360"]
    return corpus, make_toy_llm(root / "tiny_llm", texts * 4)  # what `speech-llm build-llm` builds, in-process


def _rows(exp: Path, test_set: str) -> dict[str, dict]:
    report = json.loads((exp / f"results_{test_set}.json").read_text())
    return {r["name"]: r for r in report["rows"]}


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_librispeech_recipe_end_to_end_on_synthetic_corpus(tmp_path, corpus_and_llm):
    corpus, llm = corpus_and_llm
    # Started from tmp_path with paths relative to it; the config is found in the repository root.
    options = ["--work-dir", "work", "--corpus-dir", os.path.relpath(corpus, tmp_path),
               "--train-parts", "train-clean-100,train-clean-360", "--dev-parts", "dev-clean",
               "--test-parts", "test-clean,test-other", "--config", "conf/librispeech_tiny_test.yaml",
               "--llm", str(llm), "--ngpu", "0", "--chunk-ms", "320",
               "--decode-jobs", "2", "--decode-opts", "--max-tokens-per-segment 24 --max-tokens-per-read 4",
               "--progress", "false"]
    first = _run(tmp_path, *options).stdout
    work = tmp_path / "work"
    exp = work / "exp" / TAG
    for n in range(8):
        assert f"Stage {n}:" in first
    assert not (ROOT / "recipes" / "librispeech" / "exp" / TAG).exists()  # --work-dir: nothing in the repository

    # stage 0/1: one data dir per part, the two train parts combined
    for part, count in PARTS.items():
        lines = (work / "data" / part.replace("-", "_") / "text").read_text().splitlines()
        assert len(lines) == count
    train = [json.loads(x) for x in (work / "data" / TRAIN_SET / "manifest.jsonl").read_text().splitlines()]
    assert len(train) == PARTS["train-clean-100"] + PARTS["train-clean-360"]
    assert len({r["key"] for r in train}) == len(train)
    # stage 3/4/5: BPE units, CMVN stats, checkpoints; alignments in the exp dir, data dirs left as they were
    assert (exp / "units.json").is_file() and (exp / "cmvn.json").is_file()
    assert (exp / "ctc" / "last").is_dir() and (exp / "llm" / "last").is_dir()
    aligned = [json.loads(x) for x in (exp / "align" / f"{TRAIN_SET}.jsonl").read_text().splitlines()]
    assert len(aligned) == len(train) and all(r["words"] for r in aligned)
    assert (exp / "align" / "dev_clean.jsonl").is_file()
    assert "--corpus-dir" in (exp / "cmdline.txt").read_text()
    # stage 6/7: streaming and batch decodes of both test sets, scored into one table per test set
    for test_set in TEST_SETS:
        rows = _rows(exp, test_set)
        assert set(rows) == {f"decode_{test_set}_320ms", f"decode_{test_set}_batch"}
        stream, batch = rows[f"decode_{test_set}_320ms"], rows[f"decode_{test_set}_batch"]
        assert (stream["mode"], stream["chunk_ms"], batch["mode"]) == ("streaming", 320, "batch")
        norm = Normalizer.from_spec("default")
        refs = dict(line.split(maxsplit=1) for line in (work / "data" / test_set / "text").read_text().splitlines())
        for name, row in ((f"decode_{test_set}_320ms", stream), (f"decode_{test_set}_batch", batch)):
            assert row["num_utts"] == PARTS[test_set.replace("_", "-")]
            # the table's WER is the WER of the hypotheses the decode wrote (recomputed here with jiwer)
            hyps = {}
            for line in (exp / name / "text").read_text().splitlines():
                key, _, text = line.partition(" ")
                hyps[key] = text
            keys = sorted(refs)
            expected = jiwer.wer([norm(refs[k]) for k in keys], [norm(hyps.get(k, "")) for k in keys])
            assert row["wer"] == pytest.approx(expected, abs=1e-4)
        assert f"| decode_{test_set}_320ms | streaming |" in (exp / f"results_{test_set}.md").read_text()
        assert f"decode_{test_set}_320ms" in first

    # A rerun finds every stage done: nothing is prepared, trained, decoded or scored again.
    kept = [*work.glob("data/.done.*"), *exp.glob(".done.*"), *exp.glob("*/.done.*"), *exp.glob("results_*"),
            *exp.glob("ctc/last/*"), *exp.glob("llm/last/*")]
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    again = _run(tmp_path, *options).stdout
    for name in ("ctc", "align", "llm"):
        assert f"({name}): done before, skipped" in again
    assert "every part prepared before" in again and "every decode done before" in again
    assert "combine_data" not in again and "Stage 5: projector" not in again
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # One more chunk size: only its decodes run, and each table gains its row.
    more = _run(tmp_path, *options, "--stage", "6", "--extra-chunk-ms", "640").stdout
    for test_set in TEST_SETS:
        rows = _rows(exp, test_set)
        assert set(rows) == {f"decode_{test_set}_{ms}" for ms in ("320ms", "640ms", "batch")}
        assert rows[f"decode_{test_set}_640ms"]["chunk_ms"] == 640
        assert f"decode exp/{TAG}/decode_{test_set}_640ms" in more
        assert f"decode exp/{TAG}/decode_{test_set}_320ms" not in more
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if "results_" not in p.name)


def test_unknown_option_fails_and_help_lists_options(tmp_path):
    bad = subprocess.run(["bash", str(RUN), "--work-dir", str(tmp_path / "w"), "--num-gpus", "2"],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert bad.returncode == 1 and "unknown option --num-gpus" in bad.stderr
    assert not (tmp_path / "w").exists()
    helped = subprocess.run(["bash", str(RUN), "--help"], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert helped.returncode == 0
    for option in ("--train-parts", "--dev-parts", "--test-parts", "--llm", "--config", "--chunk-ms", "--ngpu",
                   "--corpus-dir", "--download-dir", "--work-dir", "--overrides", "--tag"):
        assert option in helped.stdout


@pytest.mark.parametrize("args, message", [
    (["stray"], "unexpected argument 'stray'"),
    (["--ngpu", "two"], "--ngpu must be a number"),
    (["--chunk-ms", "0"], "is not a positive number of ms"),
    (["--config", "conf/no_such.yaml"], "--config conf/no_such.yaml: not found"),
    (["--corpus-dir", "no_such_dir"], "--corpus-dir no_such_dir: no such directory"),
    (["--llm", "./no_such_model"], "--llm ./no_such_model: no such model dir"),
])
def test_bad_arguments_fail_before_any_work(tmp_path, args, message):
    proc = subprocess.run(["bash", str(RUN), "--work-dir", str(tmp_path / "w"), *args], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 1 and message in proc.stderr
    assert not (tmp_path / "w").exists()


def test_bad_config_override_fails_naming_the_key(tmp_path):
    proc = subprocess.run(["bash", str(RUN), "--work-dir", str(tmp_path / "w"), "--ngpu", "0", "--config",
                           "conf/librispeech_tiny_test.yaml", "--overrides", "encoder.d_modle=64"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert proc.returncode != 0 and "encoder.d_modle" in proc.stderr and "encoder.d_model" in proc.stderr
    assert not (tmp_path / "w" / "data").exists()
