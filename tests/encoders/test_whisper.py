"""Streaming Whisper encoder on a tiny random Whisper (saved with save_pretrained, loaded by path):
full attention equals HF's WhisperEncoder; chunk-by-chunk streaming_forward equals the masked forward;
stacked streams equal single streams; positions past the table; registry, LoRA, CTC, front end.

Imports go through ``encoders.<module>`` (see tests/encoders/test_registry.py).
"""

import pytest
import torch
from streaming_testutil import TOL, assert_mask_choice_matters, assert_streaming_equals_masked, stream_random_blocks

from encoders.registry import build_encoder
from encoders.whisper import WhisperStreamingEncoder, stack_states, unstack_states
from encoders.whisper_frontend import StreamingLogMel

N_MELS = 16
D_MODEL = 32
MAX_POS = 40  # encoder frames of the tiny model's "30 s" (80 mel frames)


def _config():
    from transformers import WhisperConfig

    return WhisperConfig(vocab_size=64, num_mel_bins=N_MELS, d_model=D_MODEL, encoder_layers=2,
                         encoder_attention_heads=4, encoder_ffn_dim=64, decoder_layers=1, decoder_attention_heads=4,
                         decoder_ffn_dim=64, max_source_positions=MAX_POS, max_target_positions=16,
                         pad_token_id=0, bos_token_id=1, eos_token_id=1, decoder_start_token_id=2,
                         begin_suppress_tokens=None)


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    """A tiny random WhisperForConditionalGeneration saved like a hub checkpoint."""
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(_config())
    with torch.no_grad():  # non-trivial biases and norms, so a miswired weight shows
        for name, p in model.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("tiny_whisper")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hf_encoder(whisper_dir):
    from transformers import WhisperForConditionalGeneration

    return WhisperForConditionalGeneration.from_pretrained(whisper_dir).model.encoder.eval()


@pytest.fixture
def model(whisper_dir):
    return WhisperStreamingEncoder.from_pretrained(whisper_dir).eval()


def test_loaded_by_path_with_the_interface(model, whisper_dir):
    assert (model.input_dim, model.output_dim, model.subsampling_rate) == (N_MELS, D_MODEL, 2)
    assert model.frame_shift_s == pytest.approx(0.02)
    assert (model.embed.stride, model.embed.receptive_field) == (2, 3)
    assert model.output_lengths(torch.tensor([0, 1, 2, 3, 80])).tolist() == [0, 1, 1, 2, 40]
    assert model.output_lengths(157) == 79
    sd = __import__("safetensors.torch", fromlist=["load_file"]).load_file(str(whisper_dir / "model.safetensors"))
    assert torch.equal(model.layers[1].self_attn.q_proj.weight, sd["model.encoder.layers.1.self_attn.q_proj.weight"])
    assert torch.equal(model.embed.conv2.bias, sd["model.encoder.conv2.bias"])
    names = {n for n, _ in model.named_parameters()}
    for part in ("embed.conv1.weight", "embed_positions.weight", "layers.0.self_attn.k_proj.weight",
                 "layers.1.fc2.bias", "layers.0.final_layer_norm.weight", "layer_norm.bias"):
        assert part in names
    assert not model.embed_positions.weight.requires_grad  # Whisper never trains its positions


def test_full_attention_equals_hf_whisper_encoder(model, hf_encoder):
    feats = torch.randn(2, 2 * MAX_POS, N_MELS)  # HF's encoder takes exactly its 30 s of frames
    with torch.no_grad():
        ref = hf_encoder(feats.transpose(1, 2)).last_hidden_state
        got, lens = model(feats, torch.tensor([2 * MAX_POS] * 2))
    assert lens.tolist() == [MAX_POS] * 2
    assert got.shape == ref.shape
    assert (got - ref).abs().max() <= 1e-5
    assert ref.abs().mean() > 0.1


@pytest.mark.parametrize("chunk_size", [1, 4, 16])
@pytest.mark.parametrize("left_chunks", [-1, 0, 2])
def test_streaming_equals_masked_forward(model, chunk_size, left_chunks):
    ref = assert_streaming_equals_masked(model, torch.randn(1, 75, N_MELS), chunk_size, left_chunks)
    assert ref.size(1) == 38  # not a multiple of 4 or 16; an odd tail


@pytest.mark.parametrize("num_feats", [1, 2, 3, 4, 5, 8, 9, 10])
def test_streaming_equals_masked_forward_at_the_edges(model, num_feats):
    """Utterances of a few frames: the zero padding before the start and after the end is the same."""
    feats = torch.randn(1, num_feats, N_MELS)
    ref = assert_streaming_equals_masked(model, feats, 2, 1, seeds=(num_feats,), max_block=3)
    assert ref.shape == (1, (num_feats + 1) // 2, D_MODEL)


def test_padding_is_the_end_of_a_short_utterance(model):
    feats = torch.randn(3, 61, N_MELS)
    lens = torch.tensor([61, 40, 7])
    with torch.no_grad():
        out, out_lens = model(feats, lens, 4, 1)
        assert out_lens.tolist() == [31, 20, 4]
        for b in range(3):
            alone, _ = model(feats[b:b + 1, :lens[b]], lens[b:b + 1], 4, 1)
            assert (out[b, :out_lens[b]] - alone[0]).abs().max() <= TOL
            assert bool((out[b, out_lens[b]:] == 0).all())


def test_mask_choice_matters(model):
    assert_mask_choice_matters(model, torch.randn(1, 75, N_MELS))


@pytest.mark.parametrize("left_chunks", [-1, 1])
def test_stacked_streams_equal_single_streams(model, left_chunks):
    """3 streams at different offsets, fed as the Recognizer does (a chunk window per step, the leftover
    feature re-sent): stack, batched steps, unstack, finish alone == each stream alone == masked forward."""
    chunk = 4
    hop = model.embed.stride * chunk
    need = model.embed.stride * (chunk - 1) + model.embed.receptive_field
    prefix_chunks, batched_steps, tails = [1, 3, 0], 2, [5, 2, 0]
    feats = [torch.randn(1, hop * (k + batched_steps) + tail + 1, N_MELS) for k, tail in zip(prefix_chunks, tails)]

    def window(f, j):
        return f[:, hop * j:hop * j + need]

    def step(f, j, states):
        out, states = model.streaming_forward(window(f, j), states)
        states["feats"] = states["feats"][:, :0]  # what it kept is re-sent with the next window
        return out, states

    with torch.no_grad():
        prefix_outs, prefix_states = [], []
        for f, k in zip(feats, prefix_chunks):
            st, outs = model.init_states(1, chunk, left_chunks), []
            for j in range(k):
                o, st = step(f, j, st)
                outs.append(o)
            prefix_outs.append(outs)
            prefix_states.append(st)
        states = stack_states(prefix_states)
        assert states["offset"].tolist() == [chunk * k for k in prefix_chunks]
        batched = [list(o) for o in prefix_outs]
        for s in range(batched_steps):
            block = torch.cat([window(f, k + s) for f, k in zip(feats, prefix_chunks)])
            out, states = model.streaming_forward(block, states)
            states["feats"] = states["feats"][:, :0]
            assert out.shape == (3, chunk, D_MODEL)
            for b in range(3):
                batched[b].append(out[b:b + 1])
        singles = unstack_states(states)

        for b, (f, k) in enumerate(zip(feats, prefix_chunks)):
            alone_st = prefix_states[b]
            alone = list(prefix_outs[b])
            for s in range(batched_steps):
                o, alone_st = step(f, k + s, alone_st)
                alone.append(o)
            for key, value in alone_st.items():
                assert singles[b][key].shape == value.shape, key
                assert torch.allclose(singles[b][key].float(), value.float(), atol=TOL), key
            rest = f[:, hop * (k + batched_steps):]
            o, _ = model.streaming_forward(rest, singles[b], final=True)
            batched[b].append(o)
            got = torch.cat(batched[b], dim=1)
            full, _ = model(f, torch.tensor([f.size(1)]), chunk, left_chunks)
            assert got.shape == full.shape
            assert (got - full).abs().max() <= TOL


def test_features_needed_batches_streams_as_speech_llm_does(model):
    """The SpeechLLM's loop: streams whose states need the same number of features for their next chunk
    (``features_needed``) stack and take one streaming_forward; the ends are flushed. Every stream's frames
    equal its masked forward."""
    chunk, left = 4, 2
    feats = [torch.randn(n, N_MELS) for n in (61, 40, 9, 0)]
    states = [model.init_states(1, chunk, left) for _ in feats]
    assert model.features_needed(states[0]) == 2 * chunk + 1
    pending = list(feats)
    outs = [[] for _ in feats]
    with torch.no_grad():
        while True:
            groups = {}
            for b, (st, f) in enumerate(zip(states, pending)):
                need = model.features_needed(st)
                if f.size(0) >= need:
                    groups.setdefault(need, []).append(b)
            if not groups:
                break
            for need, idx in groups.items():
                st = stack_states([states[b] for b in idx]) if len(idx) > 1 else states[idx[0]]
                out, st = model.streaming_forward(torch.stack([pending[b][:need] for b in idx]), st)
                assert out.size(1) == chunk
                for i, (b, one) in enumerate(zip(idx, unstack_states(st) if len(idx) > 1 else [st])):
                    states[b], pending[b] = one, pending[b][need:]
                    outs[b].append(out[i:i + 1])
                    assert model.features_needed(one) == 2 * chunk  # one feature carried over
        for b in range(len(feats)):
            out, _ = model.streaming_forward(pending[b][None], states[b], final=True)
            outs[b].append(out)
            got = torch.cat(outs[b], dim=1)
            ref, _ = model(feats[b][None], torch.tensor([feats[b].size(0)]), chunk, left)
            assert got.shape == ref.shape == (1, (feats[b].size(0) + 1) // 2, D_MODEL)
            assert torch.allclose(got, ref, rtol=0, atol=TOL)  # (the empty stream gives no frames)


def test_stack_unstack_lossless_and_checks(model):
    _, a = model.streaming_forward(torch.randn(1, 9, N_MELS), model.init_states(1, 4, -1))
    _, b = model.streaming_forward(torch.randn(1, 17, N_MELS), model.init_states(1, 4, -1))
    assert a["feats"].size(1) == b["feats"].size(1) == 1
    stacked = stack_states([a, b])
    assert stacked["att_k"].shape[3] == 8  # b's cache; a's is left-padded
    for orig, back in zip([a, b], unstack_states(stacked)):
        assert set(back) == set(orig)
        for key in orig:
            assert torch.equal(back[key], orig[key]), key
    with pytest.raises(ValueError, match="buffered feature frames"):
        stack_states([a, model.init_states(1, 4, -1)])
    with pytest.raises(ValueError, match="chunk_size"):
        stack_states([model.init_states(1, 4, -1), model.init_states(1, 8, -1)])
    with pytest.raises(ValueError, match="chunk_size"):
        model.init_states(1, 0)
    with pytest.raises(ValueError, match=f"\\(B, T, {N_MELS}\\)"):
        model.streaming_forward(torch.zeros(1, 5, N_MELS + 1), model.init_states(1, 4))
    with pytest.raises(ValueError, match="streams"):
        model.streaming_forward(torch.zeros(3, 5, N_MELS), model.init_states(2, 4))


def test_positions_past_the_table_are_clamped(model):
    """Past MAX_POS frames (Whisper's 30 s) every frame takes the last position; streaming still equals
    the masked forward there."""
    num_feats = 2 * MAX_POS + 50  # 65 encoder frames, 25 past the table
    feats = torch.randn(1, num_feats, N_MELS)
    with torch.no_grad():
        ref, lens = model(feats, torch.tensor([num_feats]), 4, 2)
    assert int(lens[0]) == 65
    got = stream_random_blocks(model, feats, 4, 2, seed=0)
    assert (got - ref).abs().max() <= TOL
    positions = model.position_embeddings(torch.arange(65))
    table = model.embed_positions.weight
    assert torch.equal(positions[:MAX_POS], table)
    assert torch.equal(positions[MAX_POS:], table[-1].expand(25, -1))


def test_past_whisper_1500_positions():
    """Whisper's own table size: 3300 mel frames (33 s) give 1650 frames; the 150 past 1500 all take
    position 1499, and chunked streaming equals the masked forward across the boundary."""
    cfg = _config()
    cfg.max_source_positions = 1500
    model = WhisperStreamingEncoder(cfg).eval()
    feats = torch.randn(1, 3300, N_MELS)
    with torch.no_grad():
        ref, lens = model(feats, torch.tensor([3300]), 50, 1)
        got = stream_random_blocks(model, feats, 50, 1, seed=3, max_block=400)
    assert int(lens[0]) == 1650 and got.shape == ref.shape
    assert (got - ref).abs().max() <= TOL
    positions = model.position_embeddings(torch.tensor([1498, 1499, 1500, 1649]))
    assert not torch.equal(positions[0], positions[1])
    assert torch.equal(positions[1:], positions[1:2].expand(3, -1))


def test_extended_positions_continue_whisper_sinusoids(whisper_dir):
    from transformers.models.whisper.modeling_whisper import sinusoids

    model = WhisperStreamingEncoder.from_pretrained(whisper_dir, long_positions="extend").eval()
    positions = model.position_embeddings(torch.arange(3 * MAX_POS))
    assert torch.equal(positions[:MAX_POS], model.embed_positions.weight)
    assert torch.allclose(positions[MAX_POS:], sinusoids(3 * MAX_POS, D_MODEL)[MAX_POS:], atol=1e-5)
    feats = torch.randn(1, 2 * MAX_POS + 30, N_MELS)
    with torch.no_grad():
        ref, _ = model(feats, torch.tensor([feats.size(1)]), 4, -1)
        clamped, _ = WhisperStreamingEncoder.from_pretrained(whisper_dir).eval()(feats, torch.tensor([feats.size(1)]),
                                                                                 4, -1)
    assert (stream_random_blocks(model, feats, 4, -1, seed=1) - ref).abs().max() <= TOL
    assert (ref[:, :MAX_POS] - clamped[:, :MAX_POS]).abs().max() <= TOL
    assert (ref[:, MAX_POS:] - clamped[:, MAX_POS:]).abs().max() > 100 * TOL
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    other = WhisperEncoder(_config())
    with torch.no_grad():
        other.embed_positions.weight.normal_()  # a trained (non-sinusoid) table cannot be extended
    with pytest.raises(ValueError, match="sinusoid"):
        WhisperStreamingEncoder(other, long_positions="extend")


def test_registry_builds_whisper_by_path(whisper_dir):
    enc = build_encoder("whisper", path_or_name=str(whisper_dir), dynamic_chunk=True)
    assert isinstance(enc, WhisperStreamingEncoder) and enc.dynamic_chunk
    random_init = build_encoder("whisper", path_or_name=str(whisper_dir), pretrained=False)
    assert not torch.equal(random_init.layers[0].fc1.bias, enc.layers[0].fc1.bias)  # not loaded
    random_init.load_state_dict(enc.state_dict())  # a checkpoint's state dict fits the rebuilt encoder
    with_dropout = build_encoder("whisper", path_or_name=str(whisper_dir), dropout=0.2)
    assert with_dropout.dropout == with_dropout.layers[1].dropout == 0.2 and enc.dropout == 0.0
    conformer = build_encoder("conformer", input_dim=80, d_model=32, num_layers=1, num_heads=4)
    assert conformer.output_dim == 32


@pytest.mark.parametrize("change", ["drop", "add"])
def test_strict_loading(whisper_dir, tmp_path, change):
    """A missing encoder weight or an unknown tensor fails loudly (decoder weights are skipped quietly)."""
    import shutil

    from safetensors.torch import load_file, save_file

    sd = load_file(str(whisper_dir / "model.safetensors"))
    if change == "drop":
        del sd["model.encoder.layers.0.fc1.weight"]
    else:
        sd["model.encoder.adapter.weight"] = torch.zeros(2)
    shutil.copy(whisper_dir / "config.json", tmp_path / "config.json")
    save_file(sd, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="layers.0.fc1.weight" if change == "drop" else "adapter"):
        WhisperStreamingEncoder.from_pretrained(tmp_path)


def test_dynamic_chunk_training_and_ctc_head(model):
    from encoders.ctc import CTCHead

    model.dynamic_chunk, model.max_dynamic_chunk = True, 3
    feats, lens = torch.randn(2, 40, N_MELS), torch.tensor([40, 31])
    model.train()
    outs = [model(feats, lens)[0] for _ in range(6)]
    assert any((o - outs[0]).abs().max() > TOL for o in outs[1:])  # the drawn chunk changes the output
    model.eval()
    assert torch.equal(model(feats, lens, 0, -1)[0], model(feats, lens)[0])  # eval: the given chunk
    head = CTCHead(model.output_dim, vocab_size=7)
    out, out_lens = model(feats, lens, 4, -1)
    loss = head.loss(out, out_lens, torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([3, 2]))
    loss.backward()
    assert model.layers[0].self_attn.q_proj.weight.grad is not None


def test_lora_targets_whisper_module_names(model):
    from peft import LoraConfig, inject_adapter_in_model

    lora = inject_adapter_in_model(LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj", "out_proj",
                                                                    "fc1", "fc2"], init_lora_weights=False),
                                   model)
    wrapped = [n for n, m in lora.named_modules() if hasattr(m, "lora_A")]
    assert len(wrapped) == 2 * 6
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    feats = torch.randn(1, 37, N_MELS)
    with torch.no_grad():
        ref, _ = lora(feats, torch.tensor([37]), 4, 1)
    assert (stream_random_blocks(lora, feats, 4, 1, seed=2) - ref).abs().max() <= TOL


def test_make_frontend_gives_the_encoders_features(model):
    fe = model.make_frontend()
    assert isinstance(fe, StreamingLogMel) and fe.n_mels == N_MELS
    conformer = build_encoder("conformer", input_dim=80, d_model=32, num_layers=1, num_heads=4)
    from encoders.frontend import StreamingFbank

    assert isinstance(conformer.make_frontend(), StreamingFbank)
