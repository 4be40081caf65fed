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


def test_stream_audio_with_a_context_projector_equals_the_masked_forward(tiny_llm_dir):
    """Encoder + projector with context layers (projector.context_layers): two streams of different ages decoded
    together in blocks of any size give the audio tokens of the chunk-masked full forward."""
    m = make_speech_llm(tiny_llm_dir, 4, 2, 0, "projector.context_layers=2", "projector.context_heads=2")[0]
    assert len(m.projector.context) == 2 and m.projector.chunk_tokens == 2
    torch.manual_seed(1)
    feats = [torch.randn(150, m.encoder.input_dim), torch.randn(90, m.encoder.input_dim)]
    with torch.no_grad():
        full = [m.audio_embeds(f[None], torch.tensor([f.size(0)]))[0][0] for f in feats]
        states = [m.init_audio_state(), m.init_audio_state()]
        got = [m.stream_audio(states[:1], [feats[0][:40]], [False])[0], torch.zeros(0, full[0].size(1))]
        pos = [40, 0]
        for n in (7, 33, 21, 50, 60):
            blocks = [f[p:p + n] for f, p in zip(feats, pos)]
            pos = [min(p + n, f.size(0)) for f, p in zip(feats, pos)]
            ends = [p >= f.size(0) for f, p in zip(feats, pos)]
            for b, out in enumerate(m.stream_audio(states, blocks, ends)):
                got[b] = torch.cat([got[b], out])
    for g, f in zip(got, full):
        assert g.shape == f.shape
        assert torch.allclose(g, f, atol=1e-4)


def test_freeze_projector_trains_only_the_adapter_side(tiny_llm_dir):
    from speech_llm.config import ConfigError, load_config
    from speech_llm.model.build import set_trainable

    m = make_speech_llm(tiny_llm_dir)[0]
    set_trainable(m, freeze_encoder=True)
    assert all(p.requires_grad for p in m.projector.parameters())
    set_trainable(m, freeze_encoder=True, freeze_projector=True)
    assert not any(p.requires_grad for p in m.projector.parameters())
    assert not any(p.requires_grad for p in m.encoder.parameters())
    with pytest.raises(ConfigError, match="freeze_projector"):
        load_config(None, ["train.llm.freeze_projector=true"])
