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
