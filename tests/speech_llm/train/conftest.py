"""Fixtures for the training tests: a toy experiment (synthetic speech + tiny LLM), trained once a session."""

from __future__ import annotations

import pytest

from speech_llm.train.toy import make_toy_experiment

LLM_LR = "train.llm.lr=1e-2"
"""The tiny random LLM stage learns fast at a higher rate than the toy default."""


@pytest.fixture(scope="session", autouse=True)
def _tiny_training(one_thread, fbank_once):
    """Every training test: one torch thread, each audio file's fbank computed once (../conftest.py)."""
    yield


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory):
    """Root of the toy experiment's data and tiny LLM (shared with tests/speech_llm/test_checkpoint.py)."""
    root = tmp_path_factory.getbasetemp() / "toy_experiment"
    make_toy_experiment(root)
    return root


@pytest.fixture
def toy_cfg(toy_root):
    return make_toy_experiment(toy_root)


@pytest.fixture(scope="session")
def ctc_run(toy_root):
    """30 CTC steps into ``<root>/exp/ctc``: (exp dir, TrainResult)."""
    from speech_llm.train.ctc import run_ctc_stage

    exp = toy_root / "exp"
    result = run_ctc_stage(make_toy_experiment(toy_root), exp, resume=False, cpu=True, progress_bar=False)
    return exp, result


@pytest.fixture(scope="session")
def llm_run(ctc_run, toy_root):
    """30 LLM steps on the CTC encoder of ``ctc_run`` into ``<root>/exp/llm``: (exp dir, TrainResult)."""
    from speech_llm.train.llm import run_llm_stage

    exp, _ = ctc_run
    cfg = make_toy_experiment(toy_root, overrides=[LLM_LR])
    result = run_llm_stage(cfg, exp, resume=False, cpu=True, progress_bar=False)
    return exp, result
