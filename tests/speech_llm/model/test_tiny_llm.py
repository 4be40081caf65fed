"""Tiny local LLMs: tokenizer round trip, loading by path like a hub model, LM pre-training, CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from speech_common.errors import UserError
from speech_llm.cli import main
from speech_llm.model.tiny_llm import (
    CHAT_TOKENS,
    EOS_TOKEN,
    build_tiny_llm,
    evaluate_lm,
    pretrain_lm,
    train_tokenizer,
)

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a cat sat on the mat and the dog ran in the park",
    "one two three four five six seven eight nine ten",
    "she said hello to the old man by the river",
] * 20

SIZES = dict(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64,
             max_position_embeddings=128)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(TEXTS, vocab_size=320, out_dir=out)
    return out


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def model_dir(request, tok_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(f"llm_{request.param}")
    build_tiny_llm(tok_dir, out, arch=request.param, seed=0, **SIZES)
    return out


def test_tokenizer_round_trip(tok_dir):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    for text in ["the lazy dog", "Unseen Words, punctuation!? and  two  spaces", "café → naïve 東京 🙂", " x\n"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    # merges were learnt: a frequent word is one token, not one per byte
    assert len(tok("the", add_special_tokens=False)["input_ids"]) == 1


def test_tokenizer_special_tokens(tok_dir):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    assert tok.eos_token == EOS_TOKEN and tok.pad_token == EOS_TOKEN
    assert tok.eos_token_id == tok.pad_token_id == tok.convert_tokens_to_ids(EOS_TOKEN)
    text = f"{CHAT_TOKENS[0]}user\nhi{CHAT_TOKENS[1]}{EOS_TOKEN}"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    for special in (*CHAT_TOKENS, EOS_TOKEN):
        assert tok.convert_tokens_to_ids(special) in ids  # each one a single id
    assert tok.decode(ids) == text
    assert tok.decode(ids, skip_special_tokens=True) == "user\nhi"
    # no tokens are added around plain text (as Qwen2.5: no bos)
    assert tok("hi")["input_ids"] == tok("hi", add_special_tokens=False)["input_ids"]
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_vocab_size_too_small_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="vocab_size 100 is too small"):
        train_tokenizer(TEXTS, vocab_size=100, out_dir=tmp_path)
    with pytest.raises(UserError, match="no text"):
        train_tokenizer(["", ""], vocab_size=300, out_dir=tmp_path)


def test_built_model_loads_by_path_like_a_hub_model(model_dir):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # conftest: any hub access would fail
    tok = AutoTokenizer.from_pretrained(model_dir)
    eager = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
    sdpa = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa")
    arch = eager.config.model_type
    assert type(eager).__name__ == {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}[arch]
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    assert eager.config.vocab_size == len(tok)
    assert eager.config.hidden_size == SIZES["hidden_size"]
    assert eager.config.num_key_value_heads == SIZES["num_kv_heads"]
    assert eager.config.eos_token_id == tok.eos_token_id == eager.generation_config.eos_token_id
    # as the real models: Qwen2.5-0.5B ties the LM head to the embedding, Llama does not
    tied = eager.lm_head.weight.data_ptr() == eager.get_input_embeddings().weight.data_ptr()
    assert tied == (arch == "qwen2")

    ids = tok(["the lazy dog sat", "one two"], padding=True, return_tensors="pt")
    with torch.no_grad():
        a = eager(**ids).logits
        b = sdpa(**ids).logits
    assert a.shape == (2, ids["input_ids"].shape[1], len(tok))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    out = eager.generate(**tok(["the"], return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 4)


def test_build_is_seeded_and_leaves_global_rng_alone(tok_dir, tmp_path):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    build_tiny_llm(tok_dir, tmp_path / "a", seed=5, **SIZES)
    assert torch.rand(1) == expected_next
    build_tiny_llm(tok_dir, tmp_path / "b", seed=5, **SIZES)
    build_tiny_llm(tok_dir, tmp_path / "c", seed=6, **SIZES)
    params = [AutoModelForCausalLM.from_pretrained(tmp_path / n).model.embed_tokens.weight for n in "abc"]
    assert torch.equal(params[0], params[1])
    assert not torch.equal(params[0], params[2])


def test_build_rejects_bad_settings(tok_dir, tmp_path):
    with pytest.raises(UserError, match="unknown arch 'gpt2'"):
        build_tiny_llm(tok_dir, tmp_path, arch="gpt2")
    with pytest.raises(UserError, match="not divisible by num_kv_heads"):
        build_tiny_llm(tok_dir, tmp_path, num_heads=4, num_kv_heads=3)
    with pytest.raises(UserError, match="no tokenizer here"):
        build_tiny_llm(tmp_path / "missing", tmp_path)


def test_pretraining_reduces_lm_loss(model_dir, tmp_path):
    before = evaluate_lm(model_dir, TEXTS, seq_len=32)
    out = tmp_path / "trained"
    losses = pretrain_lm(model_dir, TEXTS, steps=40, batch_size=8, lr=3e-3, seq_len=32, out_dir=out,
                         progress=False)
    after = evaluate_lm(out, TEXTS, seq_len=32)
    assert len(losses) == 40
    assert before > 4.0  # about log(vocab) for random weights
    assert after < before - 2.0, (before, after)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 2.0
    # the source dir is unchanged, and the trained one loads on its own (tokenizer included)
    assert evaluate_lm(model_dir, TEXTS, seq_len=32) == pytest.approx(before)
    assert AutoTokenizer.from_pretrained(out).eos_token == EOS_TOKEN


def test_build_llm_command(tmp_path, capsys):
    text = tmp_path / "text"
    text.write_text("".join(f"utt{i} {line}\n" for i, line in enumerate(TEXTS[:20])))
    out = tmp_path / "llm"
    argv = ["build-llm", "--text", str(text), "--kaldi-text", "--out", str(out), "--arch", "llama",
            "--vocab-size", "300", "--hidden-size", "32", "--intermediate-size", "64",
            "--pretrain-steps", "20", "--seq-len", "16", "--lr", "3e-3"]
    assert main(argv) == 0
    report = capsys.readouterr().out
    assert "LM loss on" in report
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, attn_implementation="sdpa")
    assert model.config.model_type == "llama" and model.config.hidden_size == 32
    assert not any("utt" in token for token in tok.get_vocab())  # utterance ids were dropped
    assert len(tok(" the", add_special_tokens=False)["input_ids"]) == 1  # the words were kept
    # a second run refuses to write into the non-empty dir
    assert main(argv) == 2
    assert "not empty" in capsys.readouterr().err
