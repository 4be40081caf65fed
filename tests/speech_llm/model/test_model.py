"""SpeechLLM: the training source layout and the teacher-forced loss (speech_llm.model.speech_model)."""

from __future__ import annotations

import pytest
import torch
from tiny_speech_llm import make_speech_llm


@pytest.fixture(scope="module")
def model(tiny_llm_dir):
    return make_speech_llm(tiny_llm_dir)[0]


@torch.no_grad()
def test_source_batch_puts_the_end_marker_right_after_each_utterance(model):
    d = model.glm.hidden_size
    audio = torch.randn(2, 5, d)
    src, lens = model.source_batch(audio, torch.tensor([5, 3]))
    p, e = model.prompt_len, len(model.tokens.end_ids)
    assert lens.tolist() == [p + 5 + e, p + 3 + e]
    prompt = model.token_embeds(model.tokens.prompt_ids)[0]
    end = model.token_embeds(model.tokens.end_ids)[0]
    for b, n in enumerate([5, 3]):
        assert torch.equal(src[b, :p], prompt)
        assert torch.equal(src[b, p:p + n], audio[b, :n])
        assert torch.equal(src[b, p + n:p + n + e], end)


def test_chunk_source_ends_count_prompt_and_audio(model):
    k, p = model.tokens_per_chunk, model.prompt_len
    assert model.chunk_source_ends(2 * k + 1) == [p + k, p + 2 * k, p + 2 * k + 1]
    assert model.chunk_source_ends(k) == [p + k]
    assert model.chunk_source_ends(0) == []


def test_loss_is_on_target_tokens_only(model):
    """Padding target rows (and their labels) change nothing: the loss is the mean over real tokens."""
    torch.manual_seed(0)
    feats = torch.randn(1, 120, 80)
    lens = torch.tensor([120])
    n_src = model.prompt_len + int(model.projector.output_lengths(model.encoder.output_lengths(lens))) + 1
    ids = torch.tensor([[model.tokens.bos_id, 5, 6]])
    labels = torch.tensor([[5, 6, model.tokens.eos_id]])
    vis = torch.full((1, 3), n_src)
    with torch.no_grad():
        short = model(feats, lens, ids, labels, torch.tensor([3]), vis)
        padded = model(feats, lens, torch.cat([ids, torch.tensor([[7, 7]])], 1),
                       torch.cat([labels, torch.tensor([[9, 9]])], 1), torch.tensor([3]),
                       torch.cat([vis, torch.zeros(1, 2, dtype=torch.long)], 1))
    assert short.num_tokens == padded.num_tokens == 3
    assert torch.allclose(short.loss, padded.loss, atol=1e-6)
    manual = torch.nn.functional.cross_entropy(short.logits[0].float(), labels[0])
    assert torch.allclose(short.loss, manual, atol=1e-6)
