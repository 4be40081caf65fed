"""Checks shared by the streaming encoders' tests (test_conformer_streaming.py, test_whisper.py): chunk-by-chunk
``streaming_forward`` in random blocks equals the masked full forward, and the chunk mask matters.

``model`` is any encoder with the streaming interface (``forward``, ``init_states``, ``streaming_forward``).
"""

import torch

TOL = 1e-4


def stream_random_blocks(model, feats: torch.Tensor, chunk_size: int, left_chunks: int, seed: int,
                         max_block: int = 30) -> torch.Tensor:
    """feats (1, T, F) fed in random blocks (0..max_block frames), then flushed with final=True -> (1, T', D)."""
    g = torch.Generator().manual_seed(seed)
    states = model.init_states(1, chunk_size, left_chunks)
    outs, i = [], 0
    with torch.no_grad():
        while i < feats.size(1):
            n = int(torch.randint(0, max_block + 1, (1,), generator=g))
            out, states = model.streaming_forward(feats[:, i:i + n], states)
            assert out.size(1) % chunk_size == 0  # only whole chunks before the end
            outs.append(out)
            i += n
        out, states = model.streaming_forward(feats[:, :0], states, final=True)
        outs.append(out)
    return torch.cat(outs, dim=1)


def assert_streaming_equals_masked(model, feats: torch.Tensor, chunk_size: int, left_chunks: int,
                                   seeds=(0, 1), max_block: int = 30, tol: float = TOL) -> torch.Tensor:
    """feats (1, T, F) streamed in random blocks (one draw per seed) give the frames of the masked forward
    with the same chunk mask; returns those frames (1, T', D)."""
    with torch.no_grad():
        ref, ref_lens = model(feats, torch.tensor([feats.size(1)]), chunk_size, left_chunks)
    assert int(ref_lens[0]) == ref.size(1)
    for seed in seeds:
        got = stream_random_blocks(model, feats, chunk_size, left_chunks, seed, max_block)
        assert got.shape == ref.shape
        assert (got - ref).abs().max() <= tol
    return ref


def assert_mask_choice_matters(model, feats: torch.Tensor, tol: float = TOL) -> None:
    """The equivalences are not vacuous: on feats (1, T, F) with T' > 8 frames, chunks of 4 with one left
    chunk, unlimited left context and full attention give clearly different frames, and so does streaming
    with one left chunk from the unlimited forward; the first two chunks see the same context either way."""
    lens = torch.tensor([feats.size(1)])
    with torch.no_grad():
        limited, _ = model(feats, lens, 4, 1)
        unlimited, _ = model(feats, lens, 4, -1)
        full, _ = model(feats, lens, 0, -1)
    streamed = stream_random_blocks(model, feats, 4, 1, seed=0)
    assert (limited - unlimited).abs().max() > 100 * tol
    assert (unlimited - full).abs().max() > 100 * tol
    assert (limited[:, :8] - unlimited[:, :8]).abs().max() <= tol
    assert (streamed - unlimited).abs().max() > 100 * tol
