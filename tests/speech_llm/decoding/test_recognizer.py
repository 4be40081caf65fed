"""Recognizer/Stream: streaming invariants on a random-weight SpeechLLM (outputs arbitrary, deterministic)."""

import numpy as np
import pytest
import torch
import torchaudio.functional as AF
from tiny_speech_llm import make_speech_llm

from encoders.constants import SAMPLE_RATE
from encoders.frontend import compute_fbank
from speech_llm.config import DecodeConfig, EndpointConfig
from speech_llm.decoding.recognizer import Recognizer, Stream, _to_mono_float


def audio(seconds: float = 2.3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * SAMPLE_RATE)
    t = torch.arange(n) / SAMPLE_RATE
    return 0.3 * torch.sin(2 * torch.pi * (200 + 300 * t) * t) + 0.05 * torch.randn(n, generator=g)


@pytest.fixture(scope="module")
def rec(tiny_llm_dir):
    model, tok = make_speech_llm(tiny_llm_dir)
    return Recognizer(model, tok, DecodeConfig(max_tokens_per_read=3, max_tokens_per_segment=60))


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


def test_batch_mode_waits_for_the_whole_input_and_never_writes_waits(rec):
    x = audio()
    batch_rec = Recognizer(rec.model, rec.tokenizer, DecodeConfig(mode="batch", max_tokens_per_read=3,
                                                                   max_tokens_per_segment=60))
    b = batch_rec.create_stream()
    b.accept_waveform(SAMPLE_RATE, x[:10000])
    batch_rec.decode(b)  # batch mode waits for the whole input
    assert b.session is None and not b.trace
    b.accept_waveform(SAMPLE_RATE, x[10000:])
    b.input_finished()
    batch_rec.decode(b)
    wait = rec.model.tokens.wait_id
    assert b.finished and b.trace and wait not in [t for t, _ in b.trace]  # no waits in batch mode
    # batch mode: every token saw the whole source, prompt and end marker included
    n_audio = b.tokens_read
    assert {v for _, v in b.trace} == {rec.model.prompt_len + n_audio + len(rec.model.tokens.end_ids)}


def test_streaming_mode_streams_even_when_the_whole_input_comes_at_once(rec):
    """The mode is the recognizer's: a streaming recognizer given everything before its first decode still
    writes chunk by chunk, with exactly the result of feeding it block by block."""
    x = audio()
    s = rec.create_stream()
    s.accept_waveform(SAMPLE_RATE, x)
    s.input_finished()
    rec.decode(s)
    blocks, _ = run_blocks(rec, x, seed=7)
    assert s.trace == blocks.trace and len({v for _, v in s.trace}) > 2   # written as the chunks came in


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


def test_the_trace_keeps_only_the_newest_tokens(rec, monkeypatch):
    """Stream.trace is bounded (a stream may run for days): it holds the last trace_max_tokens tokens."""
    x = audio()
    full, full_res = run_blocks(rec, x, sizes=4000)
    assert len(full.trace) > 12
    monkeypatch.setattr(Stream, "trace_max_tokens", 12)
    short, res = run_blocks(rec, x, sizes=4000)
    assert list(short.trace) == list(full.trace)[-12:]
    assert res[-1].text == full_res[-1].text and res[-1].text      # the text is not cut with the trace


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


def test_unsigned_pcm_is_offset_binary():
    """8-bit WAV is unsigned: 128 is silence (not +1.0, full-scale DC), 0 is -1; wider unsigned ints alike."""
    assert np.array_equal(_to_mono_float(np.full(100, 128, np.uint8)).numpy(), np.zeros(100, np.float32))
    assert _to_mono_float(np.array([0, 255], np.uint8)).tolist() == [-1.0, 127 / 128]
    assert np.array_equal(_to_mono_float(np.full(10, 32768, np.uint16)).numpy(), np.zeros(10, np.float32))
    assert _to_mono_float(torch.full((4,), 128, dtype=torch.uint8)).abs().max() == 0
    t = np.arange(SAMPLE_RATE // 10) / SAMPLE_RATE
    sine = (0.8 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    u8 = np.clip(np.round(sine * 128 + 128), 0, 255).astype(np.uint8)
    err = np.abs(_to_mono_float(u8).numpy() - sine)
    assert err.max() <= 0.5 / 128 + 1e-6          # within half a quantisation step
    s16 = np.round(sine * 32768).astype(np.int16)
    u16 = (s16.astype(np.int32) + 32768).astype(np.uint16)
    assert np.array_equal(_to_mono_float(u16).numpy(), _to_mono_float(s16).numpy())


def test_uint8_input_decodes_like_its_float_samples(rec):
    pcm = np.clip(np.round(audio(1.0).numpy() * 128 + 128), 0, 255).astype(np.uint8)
    _, a = run_blocks(rec, pcm, sizes=len(pcm))
    _, b = run_blocks(rec, torch.from_numpy((pcm.astype(np.float32) - 128) / 128), sizes=len(pcm))
    assert a[-1].text == b[-1].text and [w.audio_s for w in a[-1].words] == [w.audio_s for w in b[-1].words]


def _finish_silence(rec: Recognizer, n: int):
    """A new stream given n zero samples (nothing when n = 0), finished and decoded: (stream, result)."""
    s = rec.create_stream()
    if n:
        s.accept_waveform(SAMPLE_RATE, torch.zeros(n))
    s.input_finished()
    rec.decode(s)
    return s, rec.get_result(s)


def test_empty_and_very_short_input_finish_cleanly(rec):
    """No speech opens no segment: nothing is decoded. Without endpointing the whole input is one segment,
    even an empty one: the model reads the prompt and the end marker, then writes until eos, exactly as
    one session doing that by hand."""
    for n in (0, 100):
        s, r = _finish_silence(rec, n)
        assert r.finished and r.text == "" and r.segments == [] and not s.trace
    m, tk = rec.model, rec.model.tokens
    whole = Recognizer(m, rec.tokenizer, DecodeConfig(max_tokens_per_read=3, max_tokens_per_segment=60,
                                                      endpoint=EndpointConfig(enabled=False)))
    sess = m.glm.start(1)
    sess.read(torch.cat([m.token_embeds(tk.prompt_ids), m.token_embeds(tk.end_ids)], dim=1))
    expected = sess.greedy_write(torch.tensor([tk.bos_id]), [tk.eos_id], 60, suppress_ids=[tk.wait_id]).tokens[0]
    for n in (0, 100):
        s, r = _finish_silence(whole, n)
        assert r.finished and s.tokens_read == 0 and len(r.segments) == 1
        assert [t for t, _ in s.trace] == expected
        assert r.text == whole.tokenizer.decode([t for t in expected if t != tk.eos_id],
                                                skip_special_tokens=True).strip()
        assert r.segments[0].truncated == (expected[-1] != tk.eos_id)


def test_a_chunk_that_writes_nothing_costs_one_llm_forward(tiny_llm_dir):
    """The chunk and the pending <wait> go through the LLM in ONE forward; a quiet chunk (the model writes
    <wait> at once) costs exactly that forward. Counted on a model steered to always write <wait>."""
    model, tok = make_speech_llm(tiny_llm_dir)
    wait = model.tokens.wait_id

    def always_wait(_module, _inputs, logits):
        logits[..., wait] = 1e4
        return logits

    hook = model.glm.lm.get_output_embeddings().register_forward_hook(always_wait)
    calls = []
    count = model.glm.lm.register_forward_pre_hook(lambda m, a, kw: calls.append(kw["inputs_embeds"].shape[1]),
                                                   with_kwargs=True)
    try:
        rec = Recognizer(model, tok, DecodeConfig(max_tokens_per_read=3, max_tokens_per_segment=60))
        x = audio(2.3)
        s = rec.create_stream()
        block = int(round(rec.chunk_s * SAMPLE_RATE))
        per_chunk = []
        for i in range(0, len(x) - block, block):
            n0, read0 = len(calls), s.tokens_read
            s.accept_waveform(SAMPLE_RATE, x[i:i + block])
            rec.decode(s)
            if s.tokens_read > read0:
                per_chunk.append(len(calls) - n0)
        assert len(per_chunk) >= 4 and per_chunk == [1] * len(per_chunk)
        assert [t for t, _ in s.trace] == [wait] * len(per_chunk)
        assert s.session.forwards == len(per_chunk)
    finally:
        hook.remove()
        count.remove()
