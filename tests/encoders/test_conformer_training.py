"""Conformer training forward: padded batches, padding invariance, dynamic chunks, backward with CTC."""

import pytest
import torch

from encoders.conformer import ConformerEncoder
from encoders.ctc import CTCHead
from encoders.frontend import GlobalCMVN, SpecAugment
from encoders.subsampling import receptive_field, subsampled_lengths

FEAT_DIM = 40


def _model(**kw) -> ConformerEncoder:
    config = dict(d_model=32, num_layers=2, num_heads=4, ffn_dim=64, conv_kernel=5)
    config.update(kw)
    return ConformerEncoder(FEAT_DIM, **config)


def _padded_batch(lengths, pad_value_scale=10.0):
    """Random features padded with large garbage (not zeros) so leaks would show."""
    feats = torch.randn(len(lengths), max(lengths), FEAT_DIM) * pad_value_scale
    for b, n in enumerate(lengths):
        feats[b, :n] = torch.randn(n, FEAT_DIM)
    return feats, torch.tensor(lengths)


@pytest.mark.parametrize("rate", [4, 6, 8])
def test_output_lengths_match_subsampling(rate):
    model = _model(subsampling=rate).eval()
    assert model.subsampling_rate == rate and model.output_dim == 32
    assert model.frame_shift_s == pytest.approx(rate * 0.01)
    for n in [receptive_field(rate) - 1, receptive_field(rate), 50, 51, 97]:
        out = model.embed(torch.zeros(1, n, FEAT_DIM))
        assert out.size(1) == subsampled_lengths(n, rate) == int(model.output_lengths(torch.tensor([n]))[0])
    assert subsampled_lengths(receptive_field(rate) - 1, rate) == 0


def test_inputs_shorter_than_the_receptive_field_give_no_frames():
    model = _model().eval()
    with torch.no_grad():
        out, lens = model(torch.randn(2, 6, FEAT_DIM), torch.tensor([6, 3]))
        assert out.shape == (2, 0, 32) and lens.tolist() == [0, 0]
        out, lens = model(torch.randn(2, 20, FEAT_DIM), torch.tensor([20, 4]), 2, 1)
        assert lens.tolist() == [4, 0] and torch.all(out[1] == 0)
        states = model.init_states(1, 4, -1)
        out, states = model.streaming_forward(torch.randn(1, 6, FEAT_DIM), states, final=True)
        assert out.shape == (1, 0, 32)


@pytest.mark.parametrize("chunk_size,left_chunks", [(0, -1), (4, -1), (2, 1)])
def test_padding_does_not_change_unpadded_outputs(chunk_size, left_chunks):
    torch.manual_seed(0)
    model = _model().eval()
    lengths = [100, 73, 41]
    feats, lens = _padded_batch(lengths)
    with torch.no_grad():
        out, out_lens = model(feats, lens, chunk_size, left_chunks)
        assert out_lens.tolist() == [subsampled_lengths(n, 4) for n in lengths]
        for b, n in enumerate(lengths):
            alone, _ = model(feats[b:b + 1, :n], lens[b:b + 1], chunk_size, left_chunks)
            m = int(out_lens[b])
            assert (out[b, :m] - alone[0]).abs().max() <= 1e-5
            assert torch.all(out[b, m:] == 0)


def test_padded_batch_training_forward_backward_learns():
    torch.manual_seed(0)
    cmvn = GlobalCMVN(torch.zeros(FEAT_DIM), torch.ones(FEAT_DIM))
    aug = SpecAugment(freq_mask_param=5, time_mask_param=5)
    model = _model(dropout=0.0)
    head = CTCHead(32, vocab_size=12)
    feats, lens = _padded_batch([120, 90, 61])
    targets = torch.tensor([[3, 4, 5, 5, 6], [7, 8, 9, 0, 0], [10, 11, 0, 0, 0]])
    target_lens = torch.tensor([5, 3, 2])
    params = [*model.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    model.train()
    aug.eval()  # deterministic input for the loss comparison; SpecAugment runs in the first step
    losses = []
    for step in range(12):
        x = cmvn(feats)
        if step == 0:
            aug.train()
            x = aug(x)
            aug.eval()
        out, out_lens = model(x, lens, chunk_size=4, left_chunks=2)
        loss = head.loss(out, out_lens, targets, target_lens)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            for name, p in [*model.named_parameters(), *head.named_parameters()]:
                assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert any(p.grad.abs().sum() > 0 for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.7 * losses[1]


def test_padding_gets_no_gradient():
    torch.manual_seed(0)
    model = _model(dropout=0.0).train()
    feats, lens = _padded_batch([80, 50])
    feats.requires_grad_(True)
    out, out_lens = model(feats, lens, chunk_size=2, left_chunks=-1)
    valid = torch.arange(out.size(1)).unsqueeze(0) < out_lens.unsqueeze(1)
    out[valid].sum().backward()
    assert feats.grad[1, 50:].abs().max() == 0
    assert feats.grad[1, :50].abs().max() > 0


def test_dynamic_chunk_draws_per_batch_in_training_only():
    torch.manual_seed(0)
    model = _model(dropout=0.0, dynamic_chunk=True, max_dynamic_chunk=6, dynamic_left_chunks=True,
                   max_left_chunks=2)
    draws = [model._sample_chunk(-1) for _ in range(300)]
    assert {c for c, _ in draws} == {0, 1, 2, 3, 4, 5, 6}
    assert {lc for c, lc in draws if c > 0} == {0, 1, 2}
    assert all(lc == -1 for c, lc in draws if c == 0)

    model.eval()  # eval: the given chunk size is used
    feats, lens = _padded_batch([60])
    with torch.no_grad():
        a, _ = model(feats, lens, 2, 1)
        b, _ = model(feats, lens, 2, 1)
        full, _ = model(feats, lens, 0, -1)
    assert torch.equal(a, b) and (a - full).abs().max() > 1e-3

    model.train()  # no dropout: outputs differ only through the drawn masks
    with torch.no_grad():
        outs = [model(feats, lens, 2, 1)[0] for _ in range(8)]
    assert any((o - outs[0]).abs().max() > 1e-3 for o in outs[1:])
    assert any((o - full).abs().max() <= 1e-5 for o in outs)  # some batches drew full attention
