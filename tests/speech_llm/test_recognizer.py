"""Recognizer/Stream: streaming invariants on a random-weight SpeechLLM (outputs arbitrary, deterministic)."""

import numpy as np
import pytest
import torch
import torchaudio.functional as AF
from tiny_speech_llm import make_speech_llm

from encoders.constants import SAMPLE_RATE
from encoders.frontend import compute_fbank
from speech_llm.recognizer import DecodeOptions, Recognizer


def audio(seconds: float = 2.3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * SAMPLE_RATE)
    t = torch.arange(n) / SAMPLE_RATE
    return 0.3 * torch.sin(2 * torch.pi * (200 + 300 * t) * t) + 0.05 * torch.randn(n, generator=g)


@pytest.fixture(scope="module")
def rec(tiny_llm_dir):
    model, tok = make_speech_llm(tiny_llm_dir)
    return Recognizer(model, tok, DecodeOptions(max_tokens_per_read=3, max_total_tokens=60))


def run_blocks(rec, x, sizes=None, sr=SAMPLE_RATE, seed=0):
    s = rec.create_stream()
    g = torch.Generator().manual_seed(seed)
    results, pos = [], 0
    while pos < len(x):
        n = sizes or int(torch.randint(1, sr // 2, (1,), generator=g))
        s.accept_waveform(sr, x[pos:pos + n])
        pos += n
        rec.decode(s)
        results.append(rec.get_result(s))
    s.input_finished()
    rec.decode(s)
    results.append(rec.get_result(s))
    return s, results


def test_committed_text_never_changes(rec):
    _, results = run_blocks(rec, audio())
    assert results[-1].finished and results[-1].text
    for before, after in zip(results, results[1:]):
        assert after.committed.startswith(before.committed)
        assert after.words[:len(before.words)] == before.words
    assert len({r.committed for r in results}) > 2  # text really grew along the way


def test_block_sizes_do_not_matter(rec):
    x = audio()
    _, random_blocks = run_blocks(rec, x, seed=3)
    _, whole = run_blocks(rec, x, sizes=len(x))
    a, b = random_blocks[-1], whole[-1]
    assert a.text == b.text
    assert [(w.word, w.audio_s) for w in a.words] == [(w.word, w.audio_s) for w in b.words]


def test_whole_input_before_first_decode_is_batch_mode(rec):
    x = audio()
    s = rec.create_stream()
    s.accept_waveform(SAMPLE_RATE, x)
    s.input_finished()
    rec.decode(s)
    batch_rec = Recognizer(rec.model, rec.tokenizer, DecodeOptions(mode="batch", max_tokens_per_read=3,
                                                                   max_total_tokens=60))
    b = batch_rec.create_stream()
    b.accept_waveform(SAMPLE_RATE, x[:10000])
    batch_rec.decode(b)  # batch mode waits for the whole input
    assert b.session is None
    b.accept_waveform(SAMPLE_RATE, x[10000:])
    b.input_finished()
    batch_rec.decode(b)
    assert rec.get_result(s).text == batch_rec.get_result(b).text
    wait = rec.model.tokens.wait_id
    assert wait not in [t for t, _ in s.trace]  # no waits in batch mode
    # batch mode: every token saw the whole source
    assert {v for _, v in s.trace} == {int(s.session.num_source[0])}


def test_streaming_decode_replays_teacher_forced_training_forward(rec):
    """The tokens chosen while streaming are the argmax of ONE training forward with the trace's visibility."""
    x = audio(1.7, seed=5)
    s, _ = run_blocks(rec, x, seed=1)
    m = rec.model
    toks = [t for t, _ in s.trace]
    vis = [v for _, v in s.trace]
    assert len(set(vis)) > 2  # it really streamed: tokens were chosen with growing visibility
    feats = compute_fbank(x).unsqueeze(0)
    ids = torch.tensor([[m.tokens.bos_id] + toks[:-1]])
    with torch.no_grad():
        out = m(feats, torch.tensor([feats.size(1)]), ids, torch.tensor([toks]), torch.tensor([len(toks)]),
                torch.tensor([vis]))
    logits = out.logits[0]
    end_start = next(i for i, (_, v) in enumerate(s.trace) if v == vis[-1])
    logits[:end_start, m.tokens.eos_id] = float("-inf")   # suppressed while input remained
    logits[end_start:, m.tokens.wait_id] = float("-inf")  # suppressed after the end marker
    assert logits.argmax(-1).tolist() == toks


@pytest.mark.parametrize("rate", [8000, 44100])
def test_other_sample_rates_are_resampled(rec, rate):
    x16 = audio(1.5)
    x = AF.resample(x16, SAMPLE_RATE, rate)
    _, res = run_blocks(rec, x, sr=rate, seed=2)
    _, ref = run_blocks(rec, AF.resample(x, rate, SAMPLE_RATE), sizes=4000)
    assert res[-1].text == ref[-1].text


def test_int16_and_stereo_conversions_and_bad_input(rec):
    x = audio(1.0)
    pcm = (x.numpy() * 32767).astype(np.int16)
    _, a = run_blocks(rec, pcm, sizes=len(pcm))
    _, b = run_blocks(rec, torch.from_numpy(pcm.astype(np.float32) / 32768), sizes=len(pcm))
    assert a[-1].text == b[-1].text
    stereo = np.stack([x.numpy(), x.numpy()], axis=1)
    _, c = run_blocks(rec, stereo, sizes=len(stereo))
    _, d = run_blocks(rec, x, sizes=len(x))
    assert c[-1].text == d[-1].text
    s = rec.create_stream()
    bad = x.clone()
    bad[10] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        s.accept_waveform(SAMPLE_RATE, bad)
    with pytest.raises(ValueError, match="shape"):
        s.accept_waveform(SAMPLE_RATE, np.zeros((2, 2, 2)))


def test_empty_and_very_short_input_finish_cleanly(rec):
    """No audio token (nothing, or less than one fbank frame): the model reads the prompt and the end
    marker, then writes until eos, exactly as one session doing that by hand."""
    m, tk = rec.model, rec.model.tokens
    sess = m.glm.start(1)
    sess.read(torch.cat([m.token_embeds(tk.prompt_ids), m.token_embeds(tk.end_ids)], dim=1))
    expected = sess.greedy_write(torch.tensor([tk.bos_id]), [tk.eos_id], rec.options.max_total_tokens,
                                 suppress_ids=[tk.wait_id]).tokens[0]
    for n in (0, 100):
        s = rec.create_stream()
        if n:
            s.accept_waveform(SAMPLE_RATE, torch.zeros(n))
        s.input_finished()
        rec.decode(s)
        r = rec.get_result(s)
        assert r.finished and s.tokens_read == 0
        assert [t for t, _ in s.trace] == expected
        assert r.text == rec.tokenizer.decode([t for t in expected if t != tk.eos_id],
                                              skip_special_tokens=True).strip()
