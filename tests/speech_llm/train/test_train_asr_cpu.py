"""The real-speech pipeline's stages on tiny models: the frozen-output cache, the Whisper encoder distilled
under chunk masks, the projector pre-aligned with CTC over the LLM's vocabulary, and the llm stage reading
cached encoder frames through that projector; then the checkpoint rebuilt alone and decoded."""

from __future__ import annotations

import pytest
import torch

from encoders.feature_cache import FeatureCache, state_digest
from speech_llm.model.checkpoint import load_model, read_checkpoint
from speech_llm.model.projector import VocabProjector
from speech_llm.train.toy import make_toy_experiment


def asr_cfg(toy_root, whisper_dir, *overrides):
    """The toy experiment on a tiny Whisper encoder: 160 ms chunks (8 frames of 20 ms), 4 frames per token."""
    return make_toy_experiment(toy_root, overrides=[
        "encoder.name=whisper", f"encoder.path_or_name={whisper_dir}", "encoder.subsampling=2",
        "encoder.dropout=0.0", "encoder.dynamic_chunk=false", "projector.stack=4",
        "data.cmvn_path=null", "train.distill.max_steps=4", "train.distill.chunk_ms_choices=[160, 320]",
        "train.distill.lr=1e-3", "train.distill.max_frames_per_batch=2000", "train.proj.max_steps=6",
        "train.proj.max_frames_per_batch=2000", "train.proj.valid_every=3", "train.llm.max_steps=4",
        "train.llm.lr=1e-2", *overrides])


def train_log(exp, stage: str) -> list[dict]:
    import json

    return [json.loads(line) for line in (exp / stage / "train_log.jsonl").read_text().splitlines()]


def test_feature_cache_misses_when_the_module_or_the_audio_changes(tmp_path):
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF-one")
    cache = FeatureCache(tmp_path / "cache", "encoder abc chunk=32")
    assert cache.get(audio) is None and cache.missing([audio]) == [str(audio)]
    frames = torch.randn(7, 3)
    cache.put(audio, frames)
    assert torch.allclose(cache.get(audio), frames, atol=1e-2)       # stored in float16
    assert FeatureCache(tmp_path / "cache", "encoder abc chunk=16").get(audio) is None  # another setting
    audio.write_bytes(b"RIFF-two")                                   # the file rewritten in place
    assert FeatureCache(tmp_path / "cache", "encoder abc chunk=32").get(audio) is None
    calls = []
    assert cache.fill([audio], lambda p: calls.append(p) or torch.zeros(2, 3), progress=False) == 1
    assert cache.fill([audio], lambda p: calls.append(p) or torch.zeros(2, 3), progress=False) == 0
    assert len(calls) == 1


def test_state_digest_follows_the_weights():
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    assert state_digest(a) == state_digest(b)
    with torch.no_grad():
        b.weight[0, 0] += 1e-3
    assert state_digest(a) != state_digest(b)


def test_vocab_projector_streams_like_its_forward_and_mixes_token_embeddings():
    torch.manual_seed(0)
    emb = torch.randn(50, 16)
    proj = VocabProjector(8, emb, stack=2, hidden_dim=12, vocab_ids=torch.tensor([3, 7, 9, 20]))
    x = torch.randn(1, 9, 8)
    full, lens = proj(x, torch.tensor([9]))
    assert full.shape == (1, 5, 16) and lens.tolist() == [5]
    state, parts = proj.init_state(1, 8), []
    for a, b in [(0, 3), (3, 4), (4, 9)]:
        out, state = proj.streaming_forward(x[:, a:b], state, final=b == 9)
        parts.append(out)
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-6)
    # a sharp softmax gives (nearly) one class's embedding: the LLM reads its own token vectors
    sharp = VocabProjector(8, emb, stack=2, hidden_dim=12, vocab_ids=torch.tensor([3, 7, 9, 20]), temperature=1e-4)
    sharp.load_state_dict(proj.state_dict())
    h, _ = sharp.hidden(x, torch.tensor([9]))
    best = sharp.logits(h).argmax(-1)[0]
    table = sharp.classes()
    assert torch.allclose(sharp.mix(h)[0], table[best], atol=1e-4)
    assert proj.blank_id == 4 and "vocab_ids" in proj.state_dict()
    assert not any(t is emb for t in proj.state_dict().values())   # the LLM's matrix is not saved here


@pytest.fixture(scope="module")
def asr_runs(toy_root, whisper_dir, tmp_path_factory):
    """distill -> proj -> llm on the toy data with a tiny Whisper and the tiny LLM."""
    from speech_llm.train.distill import WHISPER_DIR, run_distill_stage
    from speech_llm.train.llm import run_llm_stage
    from speech_llm.train.proj import run_proj_stage

    exp = tmp_path_factory.mktemp("asr_exp")
    cfg = asr_cfg(toy_root, whisper_dir)
    distill = run_distill_stage(cfg, exp, resume=False, cpu=True, progress_bar=False)
    student = exp / "distill" / "last" / WHISPER_DIR
    cfg2 = asr_cfg(toy_root, whisper_dir, f"encoder.path_or_name={student}", "projector.kind=vocab")
    proj = run_proj_stage(cfg2, exp, resume=False, cpu=True, progress_bar=False)
    cfg3 = asr_cfg(toy_root, whisper_dir, f"encoder.path_or_name={student}", "projector.kind=vocab",
                   f"train.llm.init_projector={exp / 'proj' / 'last'}", "train.llm.cache_encoder_frames=true",
                   "streaming.chunk_ms_choices=[]", "train.llm.silence_share=0.3")
    llm = run_llm_stage(cfg3, exp, resume=False, cpu=True, progress_bar=False)
    return exp, cfg3, distill, proj, llm


def test_distill_trains_the_student_and_writes_a_whisper_dir_with_its_encoder(asr_runs, whisper_dir):
    from transformers import WhisperForConditionalGeneration

    from encoders.whisper import WhisperStreamingEncoder
    from speech_llm.train.distill import WHISPER_DIR

    exp, _, distill, _, _ = asr_runs
    assert len(distill.losses) == 4 and all(torch.isfinite(torch.tensor(distill.losses)))
    assert any("frame_cos" in r for r in train_log(exp, "distill"))
    student = exp / "distill" / "last" / WHISPER_DIR
    teacher = WhisperStreamingEncoder.from_pretrained(str(whisper_dir))
    saved = WhisperStreamingEncoder.from_pretrained(str(student))
    assert state_digest(saved) != state_digest(teacher)             # the weights moved
    state = read_checkpoint(exp / "distill" / "last").state()
    assert torch.equal(saved.layers[0].fc1.weight, state["layers.0.fc1.weight"])
    full = WhisperForConditionalGeneration.from_pretrained(str(student))   # a complete Whisper (decoder kept)
    original = WhisperForConditionalGeneration.from_pretrained(str(whisper_dir))
    assert torch.equal(full.model.decoder.layers[0].fc1.weight, original.model.decoder.layers[0].fc1.weight)


def test_teacher_cache_is_filled_once(toy_root, whisper_dir, tmp_path):
    from speech_llm.train.distill import DistillStage

    cfg = asr_cfg(toy_root, whisper_dir, f"data.cache_dir={tmp_path / 'cache'}")
    first = DistillStage(cfg, tmp_path, progress=False)
    n = len(list(first.cache.dir.rglob("*.pt")))
    assert n == len(first.train_set) + len(first.valid_set)
    second = DistillStage(cfg, tmp_path, progress=False)
    assert second.cache.missing(r["audio"] for r in second.train_set.records) == []
    item = second.train_set[0]
    assert item["teacher"].size(0) == (item["feats"].size(0) + 1) // 2      # one teacher frame per 20 ms


def test_proj_stage_learns_ctc_over_the_llm_tokens_of_the_transcripts(asr_runs):
    exp, _, _, proj, _ = asr_runs
    assert len(proj.losses) == 6 and proj.losses[-1] < proj.losses[0]
    assert any("greedy_wer" in r for r in train_log(exp, "proj"))
    state = read_checkpoint(exp / "proj" / "last").state()
    ids = state["vocab_ids"]
    assert ids.numel() > 5 and torch.equal(ids, ids.sort().values)   # the transcripts' tokens, sorted


def test_llm_stage_on_cached_frames_rebuilds_and_decodes(asr_runs, toy_root):
    from speech_llm.decoding.recognizer import load_recognizer

    exp, cfg, _, _, llm = asr_runs
    assert len(llm.losses) == 4
    ckpt = read_checkpoint(exp / "llm" / "last")
    assert "encoder_pretrained" in ckpt.meta and "encoder_checkpoint" not in ckpt.meta
    assert ckpt.config.projector.vocab_size == int(ckpt.state()["projector.vocab_ids"].numel())
    model, _, _ = load_model(exp)
    assert isinstance(model.projector, VocabProjector)
    rec = load_recognizer(exp)
    from data_prep.audio import read_audio
    from data_prep.manifest import read_manifest

    record = read_manifest(toy_root / "data" / "test" / "manifest.jsonl")[0]
    s = rec.create_stream()
    s.accept_waveform(16000, read_audio(record["audio"]))
    s.input_finished()
    rec.decode(s)
    result = rec.get_result(s)
    assert isinstance(result.text, str)


def test_cached_frames_equal_the_encoder_the_llm_stage_runs(asr_runs):
    """The llm stage read cached frames; decoding runs the encoder: both must be the same frames."""
    from data_prep.audio import read_audio
    from speech_llm.model.build import feature_fn
    from speech_llm.train.llm import LLMStage

    exp, cfg, _, _, _ = asr_runs
    stage = LLMStage(cfg, None, exp_dir=exp)
    item, rec = stage.train_set[0], stage.train_set.records[0]
    feats = feature_fn(cfg.encoder)(torch.from_numpy(read_audio(rec["audio"])))
    with torch.no_grad():
        out, _ = stage.model.encoder(feats[None], torch.tensor([feats.size(0)]), stage.model.chunk_frames,
                                     cfg.encoder.left_chunks)
    assert out.shape[1:] == item["frames"].shape
    assert torch.allclose(out[0], item["frames"], atol=1e-2 * float(out.abs().max()))   # float16 storage


def test_silent_rows_of_a_cached_batch_take_frames_of_silence():
    from speech_llm.train.llm import with_silence_frames

    frames = torch.ones(3, 10, 4)
    pool = [torch.full((4, 4), -1.0), torch.full((4, 4), -2.0)]
    out = with_silence_frames(frames, torch.tensor([10, 6, 10]), [False, True, False], pool)
    assert torch.equal(out[0], frames[0]) and torch.equal(out[2], frames[2])
    assert set(out[1, :6, 0].tolist()) <= {-1.0, -2.0} and len(set(out[1, :6, 0].tolist())) == 1   # one clip, repeated
    assert torch.equal(out[1, 6:], frames[1, 6:])                                                  # padding untouched


def test_swap_projector_puts_a_context_projector_into_a_trained_llm_checkpoint(asr_runs, toy_root, whisper_dir,
                                                                               tmp_path):
    """A proj checkpoint with context layers, trained on the same encoder's frames, replaces the llm checkpoint's
    projector: the LoRA state is kept, the config takes the proj's projector section, and it decodes (streaming
    through the context layers). A proj from other frames is refused."""
    import json
    import shutil

    from data_prep.audio import read_audio
    from data_prep.manifest import read_manifest
    from speech_llm.decoding.recognizer import load_recognizer
    from speech_llm.model.checkpoint import CheckpointError, swap_projector
    from speech_llm.train.distill import WHISPER_DIR
    from speech_llm.train.proj import run_proj_stage

    exp, *_ = asr_runs
    student = exp / "distill" / "last" / WHISPER_DIR
    cfg = asr_cfg(toy_root, whisper_dir, f"encoder.path_or_name={student}", "projector.kind=vocab",
                  "projector.context_layers=1", "projector.context_heads=2", "train.proj.max_steps=2")
    run_proj_stage(cfg, tmp_path / "ctx", resume=False, cpu=True, progress_bar=False)
    out = swap_projector(exp, tmp_path / "ctx" / "proj" / "last", tmp_path / "swapped")
    ckpt, llm, proj = read_checkpoint(out), read_checkpoint(exp / "llm" / "best"), read_checkpoint(
        tmp_path / "ctx" / "proj" / "last")
    state, pstate, lstate = ckpt.state(), proj.state(), llm.state()
    assert ckpt.config.projector.context_layers == 1
    assert all(torch.equal(state[f"projector.{k}"], v) for k, v in pstate.items())
    assert all(torch.equal(state[k], v) for k, v in lstate.items() if not k.startswith("projector."))
    model, _, _ = load_model(out)
    assert len(model.projector.context) == 1
    rec = load_recognizer(out)
    s = rec.create_stream()
    s.accept_waveform(16000, read_audio(read_manifest(toy_root / "data" / "test" / "manifest.jsonl")[0]["audio"]))
    s.input_finished()
    rec.decode(s)
    assert isinstance(rec.get_result(s).text, str)
    other = tmp_path / "other_proj"
    shutil.copytree(tmp_path / "ctx" / "proj" / "last", other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "encoder_cache": "whisper-encoder 0000 chunk=8"}))
    with pytest.raises(CheckpointError, match="other encoder frames"):
        swap_projector(exp, other, tmp_path / "refused")
