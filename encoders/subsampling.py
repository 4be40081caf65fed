"""Conv2d subsampling of fbank frames (×4, ×6 or ×8 in time) and the output-length arithmetic.

The convolutions have no padding, so output frame ``j`` depends only on input frames
``[stride * j, stride * j + receptive_field)``; padding at the end of a batch never changes the real
output frames, and streaming only has to keep ``receptive_field - stride`` frames of left context.

========  ===========================  ======  ===============
rate      time convolutions (k, s)     stride  receptive field
========  ===========================  ======  ===============
4         (3, 2), (3, 2)               4       7
6         (3, 2), (5, 3)               6       11
8         (3, 2), (3, 2), (3, 2)       8       15
========  ===========================  ======  ===============
"""

from __future__ import annotations

import torch
from torch import nn

_CONVS: dict[int, tuple[tuple[int, int], ...]] = {
    4: ((3, 2), (3, 2)),
    6: ((3, 2), (5, 3)),
    8: ((3, 2), (3, 2), (3, 2)),
}
SUBSAMPLING_RATES = tuple(sorted(_CONVS))


def _convs(rate: int) -> tuple[tuple[int, int], ...]:
    if rate not in _CONVS:
        raise ValueError(f"subsampling must be one of {list(SUBSAMPLING_RATES)}, got {rate}")
    return _CONVS[rate]


def receptive_field(rate: int) -> int:
    """Input frames that one output frame depends on (7 for ×4)."""
    field, stride = 1, 1
    for kernel, step in _convs(rate):
        field += (kernel - 1) * stride
        stride *= step
    return field


def subsampled_lengths(feat_lens: torch.Tensor | int, rate: int) -> torch.Tensor | int:
    """Output frames for input lengths ``feat_lens`` ((B,) tensor or int); 0 for too-short inputs."""
    lens = feat_lens
    for kernel, step in _convs(rate):
        lens = (lens - kernel) // step + 1
    if isinstance(lens, torch.Tensor):
        return lens.clamp_min(0)
    return max(int(lens), 0)


class Conv2dSubsampling(nn.Module):
    """(B, T, F) features -> (B, T', D) with ``T' = subsampled_lengths(T, rate)``.

    Conv2d over (time, frequency) with ReLU, then a linear projection of (channels × remaining
    frequency bins) to ``d_model``.
    """

    def __init__(self, input_dim: int, d_model: int, rate: int = 4, channels: int | None = None) -> None:
        super().__init__()
        channels = channels or d_model
        layers: list[nn.Module] = []
        freq, in_ch = input_dim, 1
        for kernel, step in _convs(rate):
            layers += [nn.Conv2d(in_ch, channels, kernel, step), nn.ReLU()]
            freq, in_ch = (freq - kernel) // step + 1, channels
        if freq < 1:
            raise ValueError(f"input_dim={input_dim} is too small for ×{rate} conv subsampling")
        self.rate = rate
        self.stride = rate
        self.receptive_field = receptive_field(rate)
        self.conv = nn.Sequential(*layers)
        self.out = nn.Linear(channels * freq, d_model)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> (B, T', D); T' may be 0."""
        if feats.size(1) < self.receptive_field:
            return feats.new_zeros(feats.size(0), 0, self.out.out_features)
        x = self.conv(feats.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.shape
        return self.out(x.transpose(1, 2).reshape(b, t, c * f))
