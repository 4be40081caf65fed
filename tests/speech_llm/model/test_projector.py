"""Projector: chunk-by-chunk streaming equals the full forward."""

import torch

from speech_llm.model.projector import Projector


def test_streaming_equals_full_forward_for_random_blocks():
    proj = Projector(8, 16, stack=3).eval()
    x = torch.randn(2, 23, 8)
    full, lens = proj(x, torch.tensor([23, 23]))
    assert full.shape == (2, 8, 16) and lens.tolist() == [8, 8]
    state = proj.init_state(2, 8)
    outs, pos = [], 0
    rng = torch.Generator().manual_seed(0)
    while pos < 23:
        n = int(torch.randint(1, 6, (1,), generator=rng))
        y, state = proj.streaming_forward(x[:, pos:pos + n], state, final=pos + n >= 23)
        outs.append(y)
        pos += n
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-6)


def test_padding_frames_do_not_leak():
    proj = Projector(4, 6, stack=2).eval()
    x = torch.randn(1, 7, 4)
    padded = torch.cat([x, torch.randn(1, 3, 4)], 1)
    a, _ = proj(x, torch.tensor([7]))
    b, lens = proj(padded, torch.tensor([7]))
    assert lens.tolist() == [4]
    assert torch.allclose(a, b[:, :4], atol=1e-6)


def _context_projector(left_chunks: int = -1, **kw) -> Projector:
    torch.manual_seed(0)
    return Projector(6, 16, stack=2, hidden_dim=12, context_layers=2, context_heads=2, chunk_tokens=3,
                     left_chunks=left_chunks, **kw).eval()


def _stream(proj, x, blocks, final_at):
    state, outs, pos = proj.init_state(x.size(0), x.size(2)), [], 0
    for n in blocks:
        y, state = proj.streaming_forward(x[:, pos:pos + n], state, final=pos + n >= final_at)
        outs.append(y)
        pos += n
    return torch.cat(outs, 1), state


def test_context_layers_stream_like_the_chunk_masked_forward():
    """Frames in arbitrary blocks (partial stacks, partial chunks, several chunks at once) give the tokens of
    the masked full forward, for unlimited and for limited left context."""
    x = torch.randn(2, 29, 6)
    for left in (-1, 1):
        proj = _context_projector(left)
        full, lens = proj(x, torch.tensor([29, 29]))
        assert full.shape == (2, 15, 16) and lens.tolist() == [15, 15]
        got, state = _stream(proj, x, [1, 4, 7, 2, 13, 2], 29)
        assert torch.allclose(got, full, atol=1e-5), left
        assert int(state["offset"][0]) == 15 and state["feats"].size(1) == 0
        if left >= 0:   # the cache keeps one chunk of keys per layer, whatever the stream's length
            assert state["att_k"].shape == (2, 2, 2, 3, 8)


def test_context_layers_see_no_later_chunk_and_do_see_their_own():
    proj = _context_projector()
    x = torch.randn(1, 18, 6)                      # 9 tokens = 3 chunks of 3
    y = x.clone()
    y[:, 12:] += 1.0                               # change the third chunk only
    a, _ = proj(x, torch.tensor([18]))
    b, _ = proj(y, torch.tensor([18]))
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6)        # earlier chunks do not see it
    z = x.clone()
    z[:, 7] += 1.0                                 # token 3 (second chunk, first token)
    c, _ = proj(z, torch.tensor([18]))
    assert not torch.allclose(a[:, 5], c[:, 5], atol=1e-4)      # token 5 (same chunk) sees it
    assert torch.allclose(a[:, :3], c[:, :3], atol=1e-6)


def test_context_states_stack_and_unstack_between_streams_of_different_ages():
    """Two streams decoded apart, then batched (left-padded caches) and split again, give each stream's own
    output (what SpeechLLM.stream_audio does with the streams of one group)."""
    proj = _context_projector()
    x = torch.randn(2, 24, 6)
    full0, _ = proj(x[:1], torch.tensor([24]))
    full1, _ = proj(x[1:, :12], torch.tensor([12]))
    s0, s1 = proj.init_state(1, 6), proj.init_state(1, 6)
    a, s0 = proj.streaming_forward(x[:1, :12], s0)             # stream 0 is two chunks ahead
    both = proj.stack_states([s0, s1])
    out, both = proj.streaming_forward(torch.cat([x[:1, 12:18], x[1:, :6]]), both)
    s0, s1 = proj.unstack_states(both)
    b, _ = proj.streaming_forward(x[1:, 6:12], s1, final=True)
    assert torch.allclose(torch.cat([a, out[:1]], 1), full0[:, :9], atol=1e-5)
    assert torch.allclose(torch.cat([out[1:], b], 1), full1, atol=1e-5)
    assert s0["att_k"].size(3) == 9 and s1["att_k"].size(3) == 3   # unlimited caches trimmed per stream
