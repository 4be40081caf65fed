"""Fixtures for the LLM side: a tiny random-weight SpeechLLM built from local artifacts."""

from __future__ import annotations

import pytest
from tiny_speech_llm import LLM_LR, WAIT

from speech_llm.model.tiny_llm import build_tiny_llm, pretrain_lm, train_tokenizer
from speech_llm.train.toy import make_toy_experiment

TEXTS = ["the quick brown fox jumps over the lazy dog", "one two three four five six seven eight nine ten",
         "turn on the light in the kitchen please", "alice and bob meet at noon"] * 20


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory):
    """A tiny Llama with a locally trained tokenizer that knows <|wait|>, briefly LM-trained, saved by path."""
    root = tmp_path_factory.mktemp("tiny_llm")
    tok = train_tokenizer(TEXTS, vocab_size=300, out_dir=root / "tok")
    tok.add_special_tokens({"additional_special_tokens": [WAIT]})
    tok.save_pretrained(root / "tok")
    build_tiny_llm(root / "tok", root / "llm", arch="llama", hidden_size=32, num_layers=2, num_heads=4,
                   num_kv_heads=2, intermediate_size=64, seed=0)
    # A little LM training so that it writes word-like text (tokens with leading spaces).
    pretrain_lm(root / "llm", TEXTS, steps=30, batch_size=8, lr=3e-3, seq_len=32, progress=False)
    return root / "llm"


@pytest.fixture(scope="session")
def fbank_once():
    """Each audio file's fbank once per session (training tests build many datasets over the same audio)."""
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
def toy_root(tmp_path_factory, one_thread):
    """Root of the toy experiment's data and tiny LLM (shared with tests/speech_llm/model/test_checkpoint.py)."""
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
