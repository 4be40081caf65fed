"""Recognizer.decode_streams: many streams in one batch give exactly what each gives decoded alone."""

import pytest
import torch
from tiny_speech_llm import make_speech_llm

from encoders.constants import SAMPLE_RATE
from speech_llm.config import DecodeConfig, EndpointConfig
from speech_llm.decoding.recognizer import Recognizer


def audio(seconds: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * SAMPLE_RATE)
    t = torch.arange(n) / SAMPLE_RATE
    return 0.3 * torch.sin(2 * torch.pi * (200 + 300 * seed + 250 * t) * t) + 0.05 * torch.randn(n, generator=g)


@pytest.fixture(scope="module", params=["capped", "stopping"])
def model_and_tok(request, tiny_llm_dir):
    """``capped``: the random model never writes <wait>/eos, every write runs to its cap. ``stopping``: the
    LM-head rows of <wait> and eos copy (slightly scaled) rows of common tokens, so writes stop on them
    after different numbers of tokens (per-stream stop tokens inside one batched write)."""
    model, tok = make_speech_llm(tiny_llm_dir)
    if request.param == "stopping":
        w = model.glm.lm.get_output_embeddings().weight
        common = tok(" light the", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            w[model.tokens.wait_id] = w[common[0]] * 1.02
            w[model.tokens.eos_id] = w[common[-1]] * 1.02
    return model, tok, request.param


def make_rec(model_and_tok, **kw) -> Recognizer:
    opts = dict(max_tokens_per_read=3, max_tokens_per_segment=40) | kw
    return Recognizer(*model_and_tok[:2], DecodeConfig(**opts))


class Feed:
    """A stream fed from ``x`` in blocks of ``block`` samples (``None``: all at once, then input end)."""

    def __init__(self, rec: Recognizer, x: torch.Tensor, block: int | None, start_step: int = 0):
        self.s, self.x, self.block, self.start, self.pos = rec.create_stream(), x, block, start_step, 0
        self.results = []

    def feed(self, step: int) -> bool:
        """Give the stream its input for ``step``; False when it has nothing to do yet / any more."""
        if step < self.start or self.s.input_done:
            return not self.s.finished and step >= self.start
        n = self.block or len(self.x)
        self.s.accept_waveform(SAMPLE_RATE, self.x[self.pos:self.pos + n])
        self.pos += n
        if self.pos >= len(self.x):
            self.s.input_finished()
        return True


def signature(rec: Recognizer, s) -> tuple:
    r = rec.get_result(s)
    return (s.trace, r.text, r.committed, r.partial, [(w.word, w.audio_s) for w in r.words], r.finished,
            s.tokens_read, s.session.num_source.tolist() if s.session else None,
            s.session.num_target.tolist() if s.session else None)


def run_alone(rec: Recognizer, feed: Feed) -> list[tuple]:
    """Decode one stream by itself; the signature after each of its decode calls."""
    out, step = [], 0
    while not feed.s.finished:
        if feed.feed(step):
            rec.decode(feed.s)
            out.append(signature(rec, feed.s))
        step += 1
    return out


def run_together(rec: Recognizer, feeds: list[Feed]) -> list[list[tuple]]:
    """All streams in one decode_streams call per step; the signatures after each call that involved them."""
    out: list[list[tuple]] = [[] for _ in feeds]
    step = 0
    while not all(f.s.finished for f in feeds):
        live = [i for i, f in enumerate(feeds) if f.feed(step)]
        rec.decode_streams([feeds[i].s for i in live])
        for i in live:
            out[i].append(signature(rec, feeds[i].s))
        step += 1
    return out


SPECS = [  # seconds, block samples (None = whole file, input finished before the first decode), start step
    (2.3, 1200, 0),
    (1.1, 5000, 0),
    (3.0, 2000, 0),
    (0.9, None, 2),      # batch mode, joins at step 2
    (1.7, 3333, 4),      # a stream added later
]


@pytest.mark.parametrize("lookahead", [0, 1])
def test_decode_streams_equals_each_stream_alone(model_and_tok, lookahead):
    rec = make_rec(model_and_tok, read_ahead_chunks=lookahead)
    xs = [audio(secs, seed) for seed, (secs, _, _) in enumerate(SPECS)]
    alone = [run_alone(rec, Feed(rec, x, block)) for x, (_, block, _) in zip(xs, SPECS)]
    feeds = [Feed(rec, x, block, start) for x, (_, block, start) in zip(xs, SPECS)]
    together = run_together(rec, feeds)
    for a, t in zip(alone, together):
        assert len(a) == len(t) and a == t  # every intermediate result too, not only the last
    assert all(a[-1][5] for a in alone) and sum(bool(a[-1][1]) for a in alone) >= 3  # finished, text written
    finish_calls = [len(t) + start for t, (_, _, start) in zip(together, SPECS)]
    assert len(set(finish_calls)) > 2  # streams finished at different times
    tk = model_and_tok[0].tokens
    written = {t for f in feeds for t, _ in f.s.trace}
    assert (tk.wait_id in written and tk.eos_id in written) == (model_and_tok[2] == "stopping")


def test_batch_mode_recognizer_decodes_streams_together(model_and_tok):
    rec = make_rec(model_and_tok, mode="batch")
    xs = [audio(secs, seed) for seed, secs in enumerate([1.3, 0.6, 2.1])]
    alone = [run_alone(rec, Feed(rec, x, 4000)) for x in xs]
    together = run_together(rec, [Feed(rec, x, 4000) for x in xs])
    assert together == alone
    wait = model_and_tok[0].tokens.wait_id
    assert all(wait not in [t for t, _ in a[-1][0]] for a in alone)


class ForwardCounter:
    """Counts LLM forwards and records each one's batch size and number of new positions."""

    def __init__(self, lm):
        self.calls: list[tuple[int, int]] = []
        self.handle = lm.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        x = kwargs["inputs_embeds"]
        self.calls.append((x.size(0), x.size(1)))


def test_one_llm_forward_per_step_for_the_whole_batch(model_and_tok):
    # energy endpointing: the count below assumes no segment ends mid-input (the decoder rules could end
    # one after a run of <wait>-only chunks of the "stopping" model, adding its end-marker step)
    rec = make_rec(model_and_tok, endpoint=EndpointConfig(mode="energy"))
    k = rec.tokens_per_chunk
    block = int(round(rec.chunk_s * SAMPLE_RATE))  # one chunk of audio per call
    feeds = [Feed(rec, audio(secs, seed), block) for seed, secs in enumerate([1.5, 1.0, 2.0])]
    counter = ForwardCounter(model_and_tok[0].glm.lm)
    try:
        checked, step = 0, 0
        while not all(f.s.finished for f in feeds):
            live = [f for f in feeds if f.feed(step)]
            before = [(len(f.s.trace), f.s.tokens_read, f.s.finished) for f in live]
            n0 = len(counter.calls)
            rec.decode_streams([f.s for f in live])
            calls = counter.calls[n0:]
            reads = [f.s.tokens_read - r for f, (_, r, _) in zip(live, before)]
            new = [len(f.s.trace) - t for f, (t, _, _) in zip(live, before)]
            if all(r in (0, k) for r in reads) and not any(f.s.finished for f in live):
                # each stream read at most one chunk: ONE forward reads every chunk and feeds the pending
                # token of every writing stream, then one forward per further greedy token, shared by every
                # stream still writing (a step that writes only <wait> is one forward)
                readers = sum(r > 0 for r in reads)
                assert len(calls) == (max(1, max(new)) if readers else 0)
                if readers:  # the merged batch holds the streams that read; all take part in each forward
                    p = model_and_tok[0].prompt_len
                    assert calls[0][0] == readers and calls[0][1] in (k, k + 1, k + p, k + p + 1)
                    assert all(c == (readers, 1) for c in calls[1:])
                    checked += readers > 1
            step += 1
        assert checked >= 3  # several steps really batched 2+ streams
        batched = len(counter.calls)
        counter.calls.clear()
        for seed, secs in enumerate([1.5, 1.0, 2.0]):
            run_alone(rec, Feed(rec, audio(secs, seed), block))
        assert batched < 0.7 * len(counter.calls)  # the sequential decode needs many more forwards
    finally:
        counter.handle.remove()


def test_sessions_stay_compact_between_calls(model_and_tok):
    """Merging pads KV caches with invalid slots; after each call every stream's cache is compact again."""
    rec = make_rec(model_and_tok)
    feeds = [Feed(rec, audio(secs, seed), block) for seed, (secs, block) in enumerate([(2.0, 900), (1.2, 7000)])]
    step = 0
    while not all(f.s.finished for f in feeds):
        live = [f for f in feeds if f.feed(step)]
        rec.decode_streams([f.s for f in live])
        for f in live:
            sess = f.s.session
            if sess is not None:
                assert bool(sess.cache_valid.all())
                assert sess.num_forwarded == int(sess.num_source[0] + sess.num_target[0])
        step += 1


def test_same_stream_twice_and_finished_streams_are_ignored(model_and_tok):
    rec = make_rec(model_and_tok)
    x = audio(1.0, 7)
    ref = run_alone(rec, Feed(rec, x, 2500))[-1]
    f = Feed(rec, x, 2500)
    step = 0
    while not f.s.finished:
        f.feed(step)
        rec.decode_streams([f.s, f.s])
        step += 1
    rec.decode_streams([f.s])  # finished: nothing happens
    assert signature(rec, f.s) == ref
    rec.decode_streams([])


def test_encoder_without_state_stacking_is_encoded_stream_by_stream(model_and_tok):
    """The fallback for encoders that cannot stack states gives the same results (only the LLM is batched)."""
    rec = make_rec(model_and_tok)
    xs = [audio(secs, seed) for seed, secs in enumerate([1.2, 0.8])]
    alone = [run_alone(rec, Feed(rec, x, 3000)) for x in xs]
    rec._chunk_window = lambda: None
    assert run_together(rec, [Feed(rec, x, 3000) for x in xs]) == alone
