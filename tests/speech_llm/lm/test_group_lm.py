"""GroupStreamingLM: incremental read/write == one masked training forward; nothing forwarded twice."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from speech_llm.lm.group_lm import GroupStreamingLM, GroupStreamingSession
from speech_llm.lm.masks import lengths_to_valid

VOCAB = 97


def tiny_lm(arch: str = "qwen2", attn: str = "sdpa"):
    torch.manual_seed(0)
    kw = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
              attn_implementation=attn)
    model = Qwen2ForCausalLM(Qwen2Config(**kw)) if arch == "qwen2" else LlamaForCausalLM(LlamaConfig(**kw))
    return model.eval()


def schedule(rng: torch.Generator, src_len: int, tgt_len: int) -> list[tuple[int, int]]:
    """A random read/write schedule: list of (n_source_to_read, n_target_to_write), covering both fully."""
    steps, s, t = [], 0, 0
    while s < src_len or t < tgt_len:
        n = min(src_len - s, int(torch.randint(1, 4, (1,), generator=rng)))
        m = min(tgt_len - t, int(torch.randint(0, 3, (1,), generator=rng)))
        if s + n >= src_len:
            m = tgt_len - t
        steps.append((n, m))
        s, t = s + n, t + m
    return steps


def visibility_from(steps: list[tuple[int, int]]) -> list[int]:
    vis, s = [], 0
    for n, m in steps:
        s += n
        vis += [s] * m
    return vis


@pytest.fixture(params=[(arch, attn, phi) for arch in ("qwen2", "llama") for attn in ("eager", "sdpa")
                        for phi in (0, 1000)], ids=lambda p: "-".join(map(str, p)))
def glm(request) -> GroupStreamingLM:
    """The session under test on each architecture and attention implementation, with phi 0 and 1000."""
    arch, attn, phi = request.param
    return GroupStreamingLM(tiny_lm(arch, attn), phi=phi)


def test_incremental_equals_training_forward_single(glm):
    rng = torch.Generator().manual_seed(1)
    S, T = 11, 7
    src = torch.randn(1, S, 32)
    tgt = torch.randint(0, VOCAB, (1, T))
    steps = schedule(rng, S, T)
    vis = torch.tensor([visibility_from(steps)])
    ref = glm(src, torch.tensor([S]), tgt, torch.tensor([T]), vis).logits

    sess = glm.start(1)
    got, s, t = [], 0, 0
    for n, m in steps:
        if n:
            sess.read(src[:, s:s + n])
        if m:
            got.append(sess.write(tgt[:, t:t + m]))
        s, t = s + n, t + m
    got = torch.cat(got, dim=1)
    assert got.shape == ref.shape == (1, T, VOCAB)
    assert (got - ref).abs().max() <= 1e-4
    assert sess.num_forwarded == S + T


def test_incremental_equals_training_forward_batch_of_two(glm):
    """Two streams of different lengths, padded in training and stepped with per-stream lens in a session."""
    rng = torch.Generator().manual_seed(2)
    src_lens, tgt_lens = [9, 5], [6, 4]
    S, T = max(src_lens), max(tgt_lens)
    src = torch.randn(2, S, 32)
    tgt = torch.randint(0, VOCAB, (2, T))
    scheds = [schedule(rng, s, t) for s, t in zip(src_lens, tgt_lens)]
    vis = torch.zeros(2, T, dtype=torch.long)
    for b, sc in enumerate(scheds):
        v = visibility_from(sc)
        vis[b, :len(v)] = torch.tensor(v)
    ref = glm(src, torch.tensor(src_lens), tgt, torch.tensor(tgt_lens), vis).logits

    sess = glm.start(2)
    steps = max(len(sc) for sc in scheds)
    scheds = [sc + [(0, 0)] * (steps - len(sc)) for sc in scheds]
    pos_s, pos_t = [0, 0], [0, 0]
    got = torch.zeros(2, T, VOCAB)
    forwarded = 0
    for i in range(steps):
        ns = [sc[i][0] for sc in scheds]
        ms = [sc[i][1] for sc in scheds]
        if max(ns):
            block = torch.zeros(2, max(ns), 32)
            for b in range(2):
                block[b, :ns[b]] = src[b, pos_s[b]:pos_s[b] + ns[b]]
            sess.read(block, lens=torch.tensor(ns))
            forwarded += max(ns)
        if max(ms):
            ids = torch.zeros(2, max(ms), dtype=torch.long)
            for b in range(2):
                ids[b, :ms[b]] = tgt[b, pos_t[b]:pos_t[b] + ms[b]]
            logits = sess.write(ids, lens=torch.tensor(ms))
            forwarded += max(ms)
            for b in range(2):
                got[b, pos_t[b]:pos_t[b] + ms[b]] = logits[b, :ms[b]]
        pos_s = [p + n for p, n in zip(pos_s, ns)]
        pos_t = [p + m for p, m in zip(pos_t, ms)]
    real = lengths_to_valid(torch.tensor(tgt_lens), T)
    assert (got - ref).abs()[real].max() <= 1e-4
    assert sess.num_forwarded == forwarded
    assert sess.num_source.tolist() == src_lens and sess.num_target.tolist() == tgt_lens


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_source_hidden_states_ignore_written_target(attn):
    """No input-attention mismatch: source read after target sees exactly what it sees with no target."""
    glm = GroupStreamingLM(tiny_lm("qwen2", attn), phi=0)
    src = torch.randn(1, 8, 32)
    plain = glm.start(1)
    plain.read(src[:, :4])
    h_plain = plain.read(src[:, 4:], return_hidden=True)

    mixed = glm.start(1)
    mixed.read(src[:, :4])
    mixed.write(torch.randint(0, VOCAB, (1, 3)))
    h_mixed = mixed.read(src[:, 4:], return_hidden=True)
    assert (h_plain - h_mixed).abs().max() <= 1e-5
    assert mixed.num_forwarded == 8 + 3


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_group_streaming_equals_generate_when_nothing_streams(arch):
    """All source first and phi = source length -> ordinary positions: greedy writing == model.generate."""
    model = tiny_lm(arch, "sdpa")
    src_ids = torch.randint(0, VOCAB, (1, 10))
    first = torch.randint(0, VOCAB, (1,))
    glm = GroupStreamingLM(model, phi=src_ids.size(1))
    sess = glm.start(1)
    sess.read(glm.embed(src_ids))
    res = sess.greedy_write(first, stop_ids=[VOCAB + 1], max_tokens=12)

    inp = torch.cat([src_ids, first.view(1, 1)], dim=1)
    gen = model.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=12, do_sample=False,
                         eos_token_id=None, pad_token_id=0)
    assert res.tokens[0] == gen[0, inp.size(1):].tolist()
    assert not res.stopped[0]
    assert res.pending[0] == res.tokens[0][-1]
    assert sess.num_forwarded == 10 + 12


def _read(glm: GroupStreamingLM, src: torch.Tensor) -> GroupStreamingSession:
    """A new session that has read src (B, S, D)."""
    sess = glm.start(src.size(0))
    sess.read(src)
    return sess


def _write_freely(glm: GroupStreamingLM, stop_ids: list[int]):
    """Two streams of 5 random source frames, then 6 tokens written greedily after [3, 4] with stop ids
    that never occur: (src, first tokens, the write's result), what the stop-token tests replay."""
    src = torch.randn(2, 5, 32)
    first = torch.tensor([3, 4])
    return src, first, _read(glm, src).greedy_write(first, stop_ids=stop_ids, max_tokens=6)


def test_greedy_write_stops_on_stop_token_and_leaves_it_pending():
    glm = GroupStreamingLM(tiny_lm("qwen2", "sdpa"))
    src, first, free = _write_freely(glm, [VOCAB + 1])
    assert [len(t) for t in free.tokens] == [6, 6] and not free.stopped.any()

    # Replay with the 3rd token of stream 0 as a stop token: stream 0 stops at its first occurrence.
    stop_tok = free.tokens[0][2]
    sess = _read(glm, src)
    res = sess.greedy_write(first, stop_ids=[stop_tok], max_tokens=6)
    hit0 = free.tokens[0].index(stop_tok)
    assert res.tokens[0] == free.tokens[0][:hit0 + 1]
    assert bool(res.stopped[0]) and int(res.pending[0]) == stop_tok
    hit1 = free.tokens[1].index(stop_tok) if stop_tok in free.tokens[1] else 5
    assert res.tokens[1] == free.tokens[1][:hit1 + 1]
    # The stop token is pending, not fed: each stream wrote exactly its emitted tokens except the last,
    # plus the first token it was given.
    assert sess.num_target.tolist() == [hit0 + 1, hit1 + 1]


def test_bad_arguments_raise_value_error_naming_them():
    model = tiny_lm()
    with pytest.raises(ValueError, match="phi"):
        GroupStreamingLM(model, phi=-1)
    glm = GroupStreamingLM(model)
    src = torch.randn(2, 4, 32)
    tgt = torch.zeros(2, 3, dtype=torch.long)
    lens_s, lens_t = torch.tensor([4, 3]), torch.tensor([3, 3])
    with pytest.raises(ValueError, match="source_visible"):
        glm(src, lens_s, tgt, lens_t, torch.tensor([[1, 2, 4], [1, 2, 4]]))  # 4 > source length 3
    with pytest.raises(ValueError, match="source_lens"):
        glm(src, torch.tensor([4]), tgt, lens_t)
    with pytest.raises(ValueError, match="target_ids"):
        glm(src, lens_s, tgt[:1], lens_t)
    with pytest.raises(ValueError, match="source_embeds"):
        glm(torch.randn(2, 4, 31), lens_s, tgt, lens_t)
    sess = glm.start(2)
    with pytest.raises(ValueError, match="embeds"):
        sess.read(torch.randn(3, 4, 32))
    with pytest.raises(ValueError, match="lens"):
        sess.read(torch.randn(2, 4, 32), lens=torch.tensor([5, 1]))


def test_merge_and_select_sessions_with_different_histories():
    """Sessions decoded apart, merged (padded), stepped together, split again == stepping each alone."""
    glm = GroupStreamingLM(tiny_lm("qwen2", "sdpa"), phi=0)
    src = torch.randn(3, 9, 32)
    tgt = torch.randint(0, VOCAB, (3, 4))
    histories = [[("r", 4), ("w", 2), ("r", 1)], [("r", 2)], []]  # stream 2 has nothing cached yet

    def replay(sess, b, hist):
        s = t = 0
        for kind, n in hist:
            if kind == "r":
                sess.read(src[b:b + 1, s:s + n])
                s += n
            else:
                sess.write(tgt[b:b + 1, t:t + n])
                t += n
        return s, t

    alone, starts = [], []
    for b, hist in enumerate(histories):
        sess = glm.start(1)
        starts.append(replay(sess, b, hist))
        alone.append(sess)
    merged = GroupStreamingSession.merge(alone)
    assert merged.batch_size == 3 and merged.num_forwarded == 7
    assert merged.cache_valid.sum(1).tolist() == [7, 2, 0]

    # one more read (different lengths) and a greedy write, batched vs each alone
    n_new = [2, 3, 1]
    block = torch.zeros(3, 3, 32)
    for b, (s, _) in enumerate(starts):
        block[b, :n_new[b]] = src[b, s:s + n_new[b]]
    merged.read(block, lens=torch.tensor(n_new))
    first = torch.tensor([5, 6, 7])
    res = merged.greedy_write(first, stop_ids=[[], [], []], max_tokens=[4, 2, 3],
                              suppress_ids=[[1], [], [2, 3]])
    for b, hist in enumerate(histories):
        sess = glm.start(1)
        replay(sess, b, hist)
        sess.read(block[b:b + 1, :n_new[b]])
        ref = sess.greedy_write(first[b:b + 1], stop_ids=[], max_tokens=[4, 2, 3][b],
                                suppress_ids=[[1], [], [2, 3]][b])
        assert res.tokens[b] == ref.tokens[0]
    assert [len(t) for t in res.tokens] == [4, 2, 3]

    parts = merged.split()
    for p in parts:  # compact again: only real slots
        assert bool(p.cache_valid.all()) and p.num_forwarded == int(p.num_source[0] + p.num_target[0])
    # a split stream continues exactly like the merged one
    nxt = src[0:1, 8:9]
    h_part = parts[0].read(nxt, return_hidden=True)
    h_merged = merged.read(torch.cat([nxt, torch.zeros(2, 1, 32)]), lens=torch.tensor([1, 0, 0]),
                           return_hidden=True)
    assert (h_part[0] - h_merged[0]).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="select"):
        merged.select([3])


def test_greedy_write_per_stream_stop_ids_and_caps():
    glm = GroupStreamingLM(tiny_lm("qwen2", "sdpa"))
    src, first, free = _write_freely(glm, [])
    sess = _read(glm, src)
    stop0 = free.tokens[0][1]
    res = sess.greedy_write(first, stop_ids=[[stop0], []], max_tokens=[6, 3])
    assert res.tokens[0] == free.tokens[0][:free.tokens[0].index(stop0) + 1]
    assert res.tokens[1] == free.tokens[1][:3]
    assert res.stopped.tolist() == [True, False]
    with pytest.raises(ValueError, match="max_tokens"):
        sess.greedy_write(first, stop_ids=[], max_tokens=[1, 0])
    with pytest.raises(ValueError, match="stop_ids"):
        sess.greedy_write(first, stop_ids=[[1], [2], [3]], max_tokens=2)


@torch.no_grad()
def test_training_forward_runs_bf16_weights_on_float32_embeddings():
    """An LLM loaded in bf16 (llm.dtype) trained without autocast (precision fp32, e.g. on a CPU): the
    projector's float32 embeddings are cast to the LLM's dtype; the logits match the float32 model's."""
    ref_lm = tiny_lm()
    bf16_lm = tiny_lm().to(torch.bfloat16)
    src = torch.randn(2, 5, 32)
    args = (src, torch.tensor([5, 3]), torch.randint(0, VOCAB, (2, 4)), torch.tensor([4, 2]))
    ref = GroupStreamingLM(ref_lm)(*args).logits
    got = GroupStreamingLM(bf16_lm)(*args).logits
    assert got.dtype == torch.bfloat16
    assert (got.float() - ref).abs().max() < 0.1 * ref.abs().max()
