"""Stage llm: targets from alignments, the loss drops, what the checkpoint holds, kill + resume."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_speech_llm import LLM_LR

from speech_common.errors import UserError
from speech_llm.config import load_config
from speech_llm.model.checkpoint import MODEL, load_model, read_checkpoint
from speech_llm.train.data import collate
from speech_llm.train.llm import LLMStage, is_batch_mode_key, run_llm_stage, silence_like, word_token_ids
from speech_llm.train.toy import make_toy_experiment


@pytest.fixture(scope="module")
def stage(ctc_run, toy_root):
    exp, _ = ctc_run
    return LLMStage(make_toy_experiment(toy_root), exp)


def test_streaming_target_places_words_after_the_chunk_where_they_end(stage):
    tok = stage.model.tokens
    words = word_token_ids(stage.tokenizer, ["ONE", "TWO", "THREE"])
    # 160 ms chunks of 2 audio tokens; 7 audio tokens = 4 chunks (the last one partial)
    t = stage.target(words, [0.10, 0.35, 0.50], num_audio_tokens=7, batch_mode=False)
    p = stage.model.prompt_len
    w = tok.wait_id
    expected = [*words[0], w, w, *words[1], w, *words[2], w, tok.eos_id]
    assert t.labels == expected
    assert t.input_ids == [tok.bos_id, *expected[:-1]]
    visible = [p + 2] * (len(words[0]) + 1) + [p + 4] + [p + 6] * (len(words[1]) + 1) + \
        [p + 7] * (len(words[2]) + 1) + [p + 7 + len(tok.end_ids)]
    assert t.source_visible == visible


def test_batch_mode_target_has_no_waits_and_sees_everything(stage):
    tok = stage.model.tokens
    words = word_token_ids(stage.tokenizer, ["ONE", "TWO"])
    t = stage.target(words, [0.1, 0.2], num_audio_tokens=5, batch_mode=True)
    assert t.labels == [*words[0], *words[1], tok.eos_id]
    assert tok.wait_id not in t.labels
    assert set(t.source_visible) == {stage.model.prompt_len + 5 + len(tok.end_ids)}


def test_silent_rows_get_silence_features_and_an_empty_transcript(stage):
    """train.silence_share: the marked rows' real frames become silence/noise fbank, their target is only
    waits and eos; the other rows and the padding are untouched."""
    batch = collate([stage.train_set[i] for i in range(3)])
    torch.manual_seed(3)
    feats = silence_like(batch["feats"], batch["feat_lens"], [False, True, False])
    n = int(batch["feat_lens"][1])
    assert torch.equal(feats[0], batch["feats"][0]) and torch.equal(feats[2], batch["feats"][2])
    assert not torch.allclose(feats[1, :n], batch["feats"][1, :n])
    assert torch.equal(feats[1, n:], batch["feats"][1, n:])
    energy = feats[1, :n].mean()      # silence: far below the speech frames' log-mel energy
    assert energy < batch["feats"][1, :n].mean() - 3
    torch.manual_seed(3)
    assert torch.equal(silence_like(batch["feats"], batch["feat_lens"], [False, True, False]), feats)

    tok = stage.model.tokens
    t = stage.targets(batch, stage.train_set, [False, False, True], silent=[False, True, True])
    for b in (1, 2):
        labels = t["labels"][b, :int(t["target_lens"][b])].tolist()
        assert set(labels[:-1]) <= {tok.wait_id} and labels[-1] == tok.eos_id
    assert int(t["target_lens"][2]) == 1                            # batch mode: just eos
    assert len(set(t["labels"][0].tolist()) - {tok.wait_id, tok.eos_id, 0}) > 0   # row 0 keeps its words


def test_words_are_tokenized_in_context(stage):
    tokenizer = stage.tokenizer
    words = word_token_ids(tokenizer, ["THE", "CAT"])
    assert [i for w in words for i in w] == tokenizer("THE CAT", add_special_tokens=False)["input_ids"]


def test_validation_mode_is_fixed_per_key_with_the_configured_share():
    keys = [f"utt-{i}" for i in range(2000)]
    share = sum(is_batch_mode_key(k, 0.3) for k in keys) / len(keys)
    assert 0.25 < share < 0.35
    assert not any(is_batch_mode_key(k, 0.0) for k in keys) and all(is_batch_mode_key(k, 1.0) for k in keys)


def test_missing_alignments_are_a_clear_error(ctc_run, toy_root, tmp_path):
    exp, _ = ctc_run
    cfg = make_toy_experiment(toy_root)
    records = [json.loads(line) for line in open(cfg.data.train_manifest)]
    for r in records:
        r.pop("words")
    manifest = tmp_path / "no_words.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    paths = [f"data.train_manifest={manifest}", "data.valid_manifest=null"]
    missing = r"no_words.jsonl: 16 utterance\(s\) have no word alignments.*--stage align"
    with pytest.raises(UserError, match=missing):
        LLMStage(make_toy_experiment(toy_root, overrides=paths), exp)
    batch_only = make_toy_experiment(toy_root, overrides=[*paths, "streaming.batch_mode_share=1"])
    assert len(LLMStage(batch_only, exp).train_set) == 16


def test_llm_loss_drops_in_thirty_steps(llm_run):
    _, result = llm_run
    assert len(result.losses) == 30
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < 0.75 * first, (first, last)


def test_llm_checkpoint_holds_only_what_was_trained(llm_run):
    exp, _ = llm_run
    ckpt = read_checkpoint(exp / "llm" / "last")
    keys = set(ckpt.state())
    assert any(k.startswith("projector.") for k in keys)
    assert any("lora_A" in k for k in keys) and any("trainable_tokens_delta" in k for k in keys)
    assert {"cmvn.mean", "cmvn.std"} <= keys
    assert not any(k.startswith("encoder.") for k in keys)  # frozen: referenced, not copied
    assert not any(k.endswith("q_proj.base_layer.weight") or "embed_tokens.weight" in k for k in keys)
    assert ckpt.meta["encoder_checkpoint"]["sha256"] and ckpt.meta["base_llm"]["relpath"]
    assert (ckpt.path / "tokenizer" / "tokenizer.json").is_file()
    assert ckpt.config.train.llm.lr == 1e-2


@pytest.mark.parametrize("choices", [[], ["streaming.chunk_ms_choices=[160, 320, 480]"]],
                         ids=["one-chunk", "drawn-chunks"])
def test_llm_kill_and_resume_matches_an_uninterrupted_run(ctc_run, toy_root, tmp_path, choices):
    """The draws (batch mode, silence, chunk sizes) come from the RNG saved in the checkpoint: a resumed
    run draws what the uninterrupted one drew, to the same weights."""
    exp, _ = ctc_run
    cfg = make_toy_experiment(toy_root, overrides=[LLM_LR, "train.llm.max_steps=6", "train.llm.save_every=2",
                                                   *choices])
    enc = exp / "ctc" / "last"
    run_llm_stage(cfg, tmp_path / "a", encoder_checkpoint=enc, resume=False, cpu=True, progress_bar=False)
    killed = run_llm_stage(cfg, tmp_path / "b", encoder_checkpoint=enc, resume=False, cpu=True,
                           progress_bar=False, stop_after=5)
    assert killed.interrupted and read_checkpoint(tmp_path / "b" / "llm" / "last").meta["step"] == 4
    resumed = run_llm_stage(cfg, tmp_path / "b", encoder_checkpoint=enc, cpu=True, progress_bar=False)
    assert resumed.progress.step == 6 and len(resumed.losses) == 2
    a = torch.load(tmp_path / "a" / "llm" / "last" / MODEL, weights_only=True)
    b = torch.load(tmp_path / "b" / "llm" / "last" / MODEL, weights_only=True)
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= 1e-6, worst


def test_resume_refuses_a_changed_config(ctc_run, toy_root, tmp_path):
    exp, _ = ctc_run
    cfg = make_toy_experiment(toy_root, overrides=["train.llm.max_steps=2", "train.llm.save_every=1"])
    run_llm_stage(cfg, tmp_path, encoder_checkpoint=exp / "ctc" / "last", cpu=True, progress_bar=False,
                  stop_after=1)
    changed = make_toy_experiment(toy_root, overrides=["train.llm.max_steps=2", "projector.hidden_dim=48"])
    with pytest.raises(UserError, match=r"(?s)cannot resume .*projector.hidden_dim: 32 -> 48"):
        run_llm_stage(changed, tmp_path, encoder_checkpoint=exp / "ctc" / "last", cpu=True,
                      progress_bar=False)


def test_fine_tuned_encoder_is_saved_and_rebuilt(ctc_run, toy_root, tmp_path):
    exp, _ = ctc_run
    cfg = make_toy_experiment(toy_root, overrides=[LLM_LR, "train.llm.max_steps=2", "train.llm.freeze_encoder=false"])
    run_llm_stage(cfg, tmp_path, encoder_checkpoint=exp / "ctc" / "last", resume=False, cpu=True,
                  progress_bar=False)
    state = read_checkpoint(tmp_path / "llm" / "last").state()
    ctc_state = read_checkpoint(exp / "ctc" / "last").state()
    name = "encoder.layers.0.att_norm.weight"
    assert name in state and not torch.equal(state[name], ctc_state[name])  # it did train
    model, _, _ = load_model(tmp_path)
    assert torch.equal(model.encoder.layers[0].att_norm.weight, state[name])


def test_adapter_choices_decide_what_trains(ctc_run, toy_root):
    from speech_llm.model.build import build_speech_llm
    from speech_llm.model.checkpoint import load_ctc_model

    exp, _ = ctc_run
    ctc_model, _, _ = load_ctc_model(exp, dynamic_chunk=False)
    cfg = make_toy_experiment(toy_root, overrides=["llm.lora_rank=0"])
    model, _ = build_speech_llm(cfg, encoder=ctc_model.encoder, cmvn=ctc_model.cmvn)
    trained = {n.split(".")[0] if n.startswith("projector") else n for n, p in model.named_parameters()
               if p.requires_grad}
    rows = "glm.lm.base_model.model.model.embed_tokens.trainable_tokens_delta.default"
    assert trained == {"projector", rows}  # no LoRA; the tied wait row is the only LLM parameter
    bad = make_toy_experiment(toy_root, overrides=["llm.lora_target_modules=[qq_proj]"])
    with pytest.raises(UserError, match=r"llm.lora_target_modules \['qq_proj'\]"):
        build_speech_llm(bad, encoder=ctc_model.encoder, cmvn=ctc_model.cmvn)


CHOICES = "streaming.chunk_ms_choices=[160, 320, 480]"


@pytest.fixture(scope="module")
def drawn_stage(ctc_run, toy_root):
    exp, _ = ctc_run
    return LLMStage(make_toy_experiment(toy_root, overrides=[CHOICES]), exp)


@pytest.mark.parametrize("chunk_ms", [160, 320, 480])
def test_targets_for_a_drawn_chunk_equal_targets_built_for_that_chunk(drawn_stage, ctc_run, toy_root, chunk_ms):
    exp, _ = ctc_run
    single = LLMStage(make_toy_experiment(toy_root, overrides=[f"streaming.chunk_ms={chunk_ms}"]), exp)
    for i in range(4):
        words, ends = drawn_stage.words[id(drawn_stage.train_set)][i]
        n = int(drawn_stage.model.projector.output_lengths(drawn_stage.model.encoder.output_lengths(
            torch.tensor([drawn_stage.train_set[i]["feats"].size(0)]))))
        assert drawn_stage.target(words, ends, n, False, chunk_ms=chunk_ms) == single.target(words, ends, n, False)


def test_draws_cover_the_choices_and_the_batch_uses_them(drawn_stage):
    torch.manual_seed(0)
    chunks, delays = drawn_stage.draw(300)
    assert set(chunks) == {160, 320, 480} and set(delays) == {0}
    assert min(chunks.count(c) for c in (160, 320, 480)) > 60          # uniform enough
    # no choices configured: nothing is drawn, the RNG is left alone (single-chunk runs reproduce)
    plain = LLMStage.__new__(LLMStage)
    plain.cfg = load_config(None)
    state = torch.get_rng_state()
    assert plain.draw(5) is None and torch.equal(state, torch.get_rng_state())
    batch = collate([drawn_stage.train_set[i] for i in range(3)])
    t = drawn_stage.targets(batch, drawn_stage.train_set, [False] * 3, drawn=([160, 320, 480], [0, 0, 0]))
    assert t["chunk_frames"].tolist() == [4, 8, 12]
    valid = drawn_stage.fixed_draw(["a", "b", "c", "a"])
    assert valid[0][0] == valid[0][3] and valid == drawn_stage.fixed_draw(["a", "b", "c", "a"])


@torch.no_grad()
def test_the_encoder_runs_each_utterance_with_its_own_chunk_mask(drawn_stage):
    """One batch with per-utterance chunk sizes = each utterance encoded alone with its chunk."""
    m = drawn_stage.model.eval()
    items = [drawn_stage.train_set[i] for i in range(3)]
    batch = collate(items)
    chunks = torch.tensor([4, 8, 12])
    audio, lens = m.audio_embeds(batch["feats"], batch["feat_lens"], chunks)
    for b, it in enumerate(items):
        alone, n = m.audio_embeds(it["feats"].unsqueeze(0), torch.tensor([it["feats"].size(0)]), chunks[b:b + 1])
        assert int(n) == int(lens[b])
        assert torch.allclose(audio[b, :int(n)], alone[0, :int(n)], atol=1e-5)
    other, _ = m.audio_embeds(batch["feats"], batch["feat_lens"], torch.tensor([12, 8, 4]))
    assert not torch.allclose(other[0, :int(lens[0])], audio[0, :int(lens[0])], atol=1e-5)  # the mask matters
