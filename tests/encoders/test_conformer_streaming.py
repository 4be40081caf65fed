"""Streaming Conformer: chunk-by-chunk streaming_forward equals the masked full forward; stacked streams
equal single streams."""

import pytest
import torch
from streaming_testutil import TOL, assert_mask_choice_matters, assert_streaming_equals_masked

from encoders.conformer import ConformerEncoder, stack_states, unstack_states

FEAT_DIM = 40


def _model(subsampling: int = 4) -> ConformerEncoder:
    torch.manual_seed(0)
    return ConformerEncoder(FEAT_DIM, d_model=32, num_layers=2, num_heads=4, subsampling=subsampling,
                            ffn_dim=64, conv_kernel=5, dropout=0.1).eval()


@pytest.mark.parametrize("chunk_size", [1, 4, 16])
@pytest.mark.parametrize("left_chunks", [-1, 0, 2])
def test_streaming_equals_masked_forward(chunk_size, left_chunks):
    ref = assert_streaming_equals_masked(_model(), torch.randn(1, 157, FEAT_DIM), chunk_size, left_chunks)
    assert ref.size(1) == 38  # not a multiple of 4 or 16; 2 trailing features unused


@pytest.mark.parametrize("subsampling", [6, 8])
def test_streaming_equals_masked_forward_other_subsampling(subsampling):
    model = _model(subsampling)
    ref = assert_streaming_equals_masked(model, torch.randn(1, 203, FEAT_DIM), 3, 1, seeds=(0,), max_block=50)
    assert ref.shape == (1, model.output_lengths(203), 32)


def test_mask_choice_matters():
    assert_mask_choice_matters(_model(), torch.randn(1, 157, FEAT_DIM))


def test_streaming_rejects_bad_input():
    model = _model()
    with pytest.raises(ValueError, match="chunk_size"):
        model.init_states(1, 0, -1)
    states = model.init_states(2, 4, -1)
    with pytest.raises(ValueError, match=f"\\(B, T, {FEAT_DIM}\\)"):
        model.streaming_forward(torch.zeros(2, 5, FEAT_DIM + 1), states)
    with pytest.raises(ValueError, match="streams"):
        model.streaming_forward(torch.zeros(3, 5, FEAT_DIM), states)


@pytest.mark.parametrize("left_chunks", [-1, 1])
def test_stacked_streams_equal_single_streams(left_chunks):
    """3 streams at different offsets: stack, batched steps, unstack, finish alone == each stream alone."""
    model = _model()
    chunk = 4
    step = model.subsampling_rate * chunk  # features per chunk
    context = model.embed.receptive_field - model.subsampling_rate
    prefix_chunks = [1, 3, 0]
    batched_steps = 2
    tails = [5, 13, 0]  # features left for the final flush
    feats = [torch.randn(1, context + step * (k + batched_steps) + tail, FEAT_DIM)
             for k, tail in zip(prefix_chunks, tails)]

    with torch.no_grad():
        # each stream alone, in the same blocks
        alone_outs, alone_states = [], []
        for f, k in zip(feats, prefix_chunks):
            st = model.init_states(1, chunk, left_chunks)
            o1, st = model.streaming_forward(f[:, :context + step * k], st)
            pieces = [o1]
            for s in range(batched_steps):
                start = context + step * (k + s)
                o, st = model.streaming_forward(f[:, start:start + step], st)
                pieces.append(o)
            alone_states.append(st)
            o, _ = model.streaming_forward(f[:, context + step * (k + batched_steps):], st, final=True)
            pieces.append(o)
            alone_outs.append(pieces)

        # the same streams, batched after their prefixes
        batched_outs, prefix_states = [], []
        for f, k in zip(feats, prefix_chunks):
            o1, st = model.streaming_forward(f[:, :context + step * k], model.init_states(1, chunk, left_chunks))
            batched_outs.append([o1])
            prefix_states.append(st)
        states = stack_states(prefix_states)
        assert states["offset"].tolist() == [chunk * k for k in prefix_chunks]
        for s in range(batched_steps):
            block = torch.cat([f[:, context + step * (k + s):context + step * (k + s + 1)]
                               for f, k in zip(feats, prefix_chunks)])
            out, states = model.streaming_forward(block, states)
            assert out.shape == (3, chunk, 32)
            for b in range(3):
                batched_outs[b].append(out[b:b + 1])
        singles = unstack_states(states)
        for b, (f, k) in enumerate(zip(feats, prefix_chunks)):
            for key, value in alone_states[b].items():
                assert singles[b][key].shape == value.shape, key
                assert torch.allclose(singles[b][key].float(), value.float(), atol=TOL), key
            o, _ = model.streaming_forward(f[:, context + step * (k + batched_steps):], singles[b], final=True)
            batched_outs[b].append(o)

    for b in range(3):
        got = torch.cat(batched_outs[b], dim=1)
        ref = torch.cat(alone_outs[b], dim=1)
        assert got.shape == ref.shape
        assert (got - ref).abs().max() <= TOL
        with torch.no_grad():
            full, _ = model(feats[b], torch.tensor([feats[b].size(1)]), chunk, left_chunks)
        assert (got - full).abs().max() <= TOL


def test_stack_states_rejects_mismatched_streams():
    model = _model()
    a = model.init_states(1, 4, -1)
    _, b = model.streaming_forward(torch.randn(1, 5, FEAT_DIM), model.init_states(1, 4, -1))
    with pytest.raises(ValueError, match="buffered feature frames"):
        stack_states([a, b])
    with pytest.raises(ValueError, match="chunk_size"):
        stack_states([a, model.init_states(1, 8, -1)])
    restacked = stack_states(unstack_states(stack_states([a, a, a])))
    assert all(torch.equal(restacked[k], stack_states([a, a, a])[k]) for k in a)
