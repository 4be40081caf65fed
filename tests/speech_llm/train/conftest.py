"""Fixtures for the training tests: a toy experiment (synthetic speech + tiny LLM), trained once a session."""

from __future__ import annotations

import pytest

from speech_llm.train.toy import make_toy_experiment

LLM_LR = "train.lr=1e-2"
"""The tiny random LLM stage learns fast at a higher rate than the toy default."""


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One torch thread: these models are tiny, and on a busy shared machine two spinning OpenMP threads
    per process make training ~20x slower (measured: 30 CTC steps 77 s with 2 threads, 4 s with 1)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def _features_once():
    """Each audio file's fbank once per session (the stages build many datasets over the same audio)."""
    from speech_llm.train.data import FbankDataset

    original, done = FbankDataset.features, {}

    def features(self, index):
        path = self.records[index]["audio"]
        if path not in done:
            done[path] = original(self, index)
        return done[path]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FbankDataset, "features", features)
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
