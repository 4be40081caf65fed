"""StreamingResampler: block-wise output equals resampling the whole signal."""

import pytest
import torch
import torchaudio.functional as AF

from speech_llm.decoding.resample import StreamingResampler


@pytest.mark.parametrize("orig", [8000, 44100, 22050, 48000])
def test_streaming_equals_offline(orig):
    torch.manual_seed(0)
    x = torch.randn(orig * 2 + 123) * 0.3
    ref = AF.resample(x, orig, 16000, lowpass_filter_width=6, rolloff=0.99)
    rs = StreamingResampler(orig, 16000)
    rng = torch.Generator().manual_seed(1)
    outs, pos = [], 0
    while pos < x.numel():
        n = int(torch.randint(1, orig // 3, (1,), generator=rng))
        outs.append(rs.accept(x[pos:pos + n]))
        pos += n
    outs.append(rs.flush())
    got = torch.cat(outs)
    assert got.numel() == ref.numel()
    assert (got - ref).abs().max() < 1e-5
    # memory stays bounded: only the filter context is kept
    assert rs._buf.numel() < orig // 3 + 2 * rs._margin + rs._period_in * 2


def test_identity_passthrough():
    rs = StreamingResampler(16000, 16000)
    x = torch.randn(100)
    assert torch.equal(rs.accept(x), x) and rs.flush().numel() == 0
