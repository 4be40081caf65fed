"""Incremental word-level wait-k decoding == one masked training forward; emissions; the decode dir."""

import json

import pytest
import torch
from mt_testutil import PAIRS
from transformers import AutoModelForCausalLM, AutoTokenizer

from speech_llm.metrics.emissions import read_emissions
from speech_llm.mt import decode_mt_data, source_groups, split_words, translate, wait_k_target, wrap_model
from speech_llm.train.toy import make_toy_llm

SOURCES = [PAIRS[0][0], PAIRS[1][0], "ONE", "TURN ON THE LIGHT IN THE KITCHEN PLEASE NOW"]
BUDGET = 40   # written tokens per sentence: keeps random-weight decoding short
_DECODED: dict = {}


def decode(model, text, k):
    """translate() with logits, memoised: several tests look at the same decodes."""
    key = (id(model), text, k)
    if key not in _DECODED:
        _DECODED[key] = translate(model, text, k, max_tokens=BUDGET, return_logits=True)
    return _DECODED[key]


@pytest.fixture(scope="module", params=["trained-qwen2", "random-llama-phi7"])
def model(request, mt_root):
    """The trained Qwen2 (conftest.py), and a random-weight Llama with target positions starting at phi = 7."""
    if request.param == "trained-qwen2":
        return request.getfixturevalue("trained")
    make_toy_llm(mt_root / "llama", [x for pair in PAIRS for x in pair], arch="llama", seed=1)
    llm = AutoModelForCausalLM.from_pretrained(mt_root / "llama").eval()
    return wrap_model(llm, AutoTokenizer.from_pretrained(mt_root / "llama"), phi=7)


def _replay(model, text, r, k):
    """Logits of ONE training forward over the written tokens with the wait-k visibility rule."""
    src = source_groups(model.tokenizer, model.framing, text)
    target = wait_k_target(src, r.units, k, bos_id=model.framing.bos_id, eos_id=model.framing.eos_id,
                           add_eos=r.finished)
    glm = model.glm
    with torch.no_grad():
        logits = glm(glm.embed(torch.tensor([src.ids])), torch.tensor([len(src.ids)]),
                     torch.tensor([target.input_ids]), torch.tensor([len(target.input_ids)]),
                     torch.tensor([target.source_visible])).logits[0]
    return src, target, logits


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("text", SOURCES)
def test_incremental_wait_k_equals_one_training_forward(model, text, k):
    r = decode(model, text, k)
    src, target, logits = _replay(model, text, r, k)
    assert split_words(r.tokens, model.starts_word) == r.units
    assert target.input_ids == r.input_ids                     # the decoder fed exactly these tokens ...
    assert target.source_visible == r.source_visible           # ... with exactly the wait-k visibility
    assert (r.logits - logits).abs().max() <= 1e-4
    # greedy choice of the training forward (eos barred while source words remain) = what was written
    masked = logits.clone()
    early = torch.tensor(target.source_visible) < len(src.ids)
    masked[early, model.framing.eos_id] = float("-inf")
    assert masked.argmax(-1).tolist() == target.labels


@pytest.mark.parametrize("text", SOURCES)
def test_k_at_least_source_length_equals_batch(model, text):
    n = len(text.split())
    batch = decode(model, text, None)
    for k in (n, n + 3):
        r = decode(model, text, k)
        assert r.tokens == batch.tokens and r.finished == batch.finished and r.text == batch.text
    if n > 1:   # a smaller k reads less before writing the first word
        assert decode(model, text, 1).source_visible[0] < batch.source_visible[0]
    _, target, logits = _replay(model, text, batch, None)
    assert set(target.source_visible) == {batch.num_source_tokens}
    assert (batch.logits - logits).abs().max() <= 1e-4


@pytest.mark.parametrize("k", [1, 2, None])
def test_every_token_forwarded_once(model, k):
    for text in SOURCES:
        r = decode(model, text, k)
        src = source_groups(model.tokenizer, model.framing, text)
        if r.finished:
            assert r.num_source_tokens == len(src.ids)
        assert r.num_forwarded == r.num_source_tokens + len(r.input_ids)
        assert len(r.input_ids) == len(r.tokens) + (1 if r.finished else 0)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_emissions_follow_pure_wait_k(model, k):
    for text in SOURCES:
        r = decode(model, text, k)
        n = len(text.split())
        assert r.src_len == n
        assert r.unit_src_words == [min(k + j - 1, n) for j in range(1, len(r.units) + 1)]
        delays = [w.src_words for w in r.words]
        assert delays == sorted(delays) and all(1 <= d <= n for d in delays)
        walls = [w.wall_s for w in r.words]
        assert walls == sorted(walls) and all(0 <= w <= r.wall_time for w in walls)
        assert [w.word for w in r.words] == r.text.split()
        assert all(w.audio_s is None for w in r.words)


def test_trained_model_writes_whole_words_with_wait_k_delays(trained):
    r = translate(trained, PAIRS[0][0], 2)
    assert r.words and len(r.words) == len(r.units)            # no blank units from a trained model
    assert [w.src_words for w in r.words] == [min(2 + j, r.src_len) for j in range(len(r.words))]


def test_token_budget_cuts_the_output(model):
    r = translate(model, SOURCES[-1], 2, max_tokens=3, return_logits=True)
    assert not r.finished and len(r.tokens) == 3 and len(r.input_ids) == 3
    _, target, logits = _replay(model, SOURCES[-1], r, 2)
    assert target.labels == r.tokens and (r.logits - logits).abs().max() <= 1e-4


def test_decode_mt_data_writes_a_scorable_decode_dir(model, tmp_path):
    sources = {f"utt{i}": s for i, s in enumerate(SOURCES[:3])}
    seen = []
    summary = decode_mt_data(model, None, sources, 2, tmp_path / "dec", max_tokens=BUDGET,
                             on_result=lambda k, r: seen.append(k))
    assert seen == list(sources)
    lines = (tmp_path / "dec" / "text").read_text().splitlines()
    assert [line.split()[0] for line in lines] == list(sources)
    ems = read_emissions(tmp_path / "dec" / "emissions.jsonl")
    for (key, text), line in zip(sources.items(), lines):
        hyp = line.split(maxsplit=1)[1] if " " in line else ""
        assert ems[key].src_len == len(text.split())
        assert [w.word for w in ems[key].words] == hyp.split()
        assert ems[key].text_input or not ems[key].words
    assert summary == json.loads((tmp_path / "dec" / "summary.json").read_text())
    assert summary["task"] == "mt" and summary["mode"] == "wait-k" and summary["k"] == 2
    assert summary["num_utts"] == 3 and summary["options"]["k"] == 2
    batch = decode_mt_data(model, None, sources, 2, tmp_path / "bat", batch=True, max_tokens=BUDGET)
    assert batch["mode"] == "batch" and batch["k"] is None
    for em in read_emissions(tmp_path / "bat" / "emissions.jsonl").values():
        assert all(w.src_words == em.src_len for w in em.words)


def test_lm_head_with_more_rows_than_the_tokenizer(mt_root, trained):
    """Qwen2.5 pads its vocabulary: ids the tokenizer does not know never start a word, and decoding runs."""
    tok = trained.tokenizer
    llm = AutoModelForCausalLM.from_pretrained(mt_root / "base").eval()
    llm.resize_token_embeddings(len(tok) + 6)
    padded = wrap_model(llm, tok)
    assert padded.starts_word.numel() == len(tok) + 6 and not padded.starts_word[len(tok):].any()
    r = translate(padded, "ONE TWO", 1, max_tokens=8)
    assert r.num_forwarded == r.num_source_tokens + len(r.input_ids)
