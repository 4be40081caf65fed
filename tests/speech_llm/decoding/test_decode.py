"""decode_data_dir: outputs, resume after an interruption, and scoring of its output."""

import json

import pytest
import torch
from tiny_speech_llm import make_speech_llm

from data_prep.audio import write_audio
from data_prep.kaldi_dir import Utterance, write_data_dir
from encoders.constants import SAMPLE_RATE
from speech_llm.cli import main
from speech_llm.config import DecodeConfig
from speech_llm.decoding.decode import decode_data_dir
from speech_llm.decoding.recognizer import Recognizer
from speech_llm.metrics.emissions import read_emissions


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("decode_data")
    utts = {}
    for i, secs in enumerate([1.1, 0.7, 1.6]):
        g = torch.Generator().manual_seed(i)
        x = 0.1 * torch.randn(int(secs * SAMPLE_RATE), generator=g)
        wav = root / f"u{i}.wav"
        write_audio(wav, x.numpy(), SAMPLE_RATE)
        key = f"spk-1-{i:04d}"
        utts[key] = Utterance(key=key, wav=str(wav), text="HELLO WORLD", speaker="spk", duration=secs)
    write_data_dir(root / "test", utts)
    return root / "test"


@pytest.fixture(scope="module")
def model_and_tok(tiny_llm_dir):
    return make_speech_llm(tiny_llm_dir)


@pytest.mark.parametrize("mode", ["streaming", "batch"])
def test_decode_writes_text_emissions_summary_and_scores(model_and_tok, data_dir, tmp_path, mode):
    rec = Recognizer(*model_and_tok, DecodeConfig(mode=mode, max_tokens_per_read=2, max_tokens_per_segment=12))
    out = tmp_path / mode
    summary = decode_data_dir(rec, data_dir, out, progress=False)
    lines = (out / "text").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["spk-1-0000", "spk-1-0001", "spk-1-0002"]
    emis = read_emissions(out / "emissions.jsonl")
    assert abs(emis["spk-1-0002"].duration - 1.6) < 1e-3
    assert summary["num_utts"] == 3 and summary["mode"] == mode and summary["rtf"] > 0
    assert not (out / "partial.jsonl").exists()
    if mode == "streaming":  # words are emitted at chunk ends, never after the audio's end
        times = [w.audio_s for e in emis.values() for w in e.words]
        assert times and all(0 < t <= 1.6 + 1e-6 for t in times)
    assert main(["score", "--ref", str(data_dir), "--hyp", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["num_utts"] == 3 and res["wer"]["ref_words"] == 6


def _interrupt_at_third_utterance(rec: Recognizer, decode) -> list:
    """Run ``decode()`` with the 3rd utterance failing to start (KeyboardInterrupt, as Ctrl-C does), then let
    ``rec.create_stream`` count its calls; returns that count (a list), for the resumed run."""
    orig = rec.create_stream
    calls = []

    def failing_create_stream():
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return orig()

    rec.create_stream = failing_create_stream
    with pytest.raises(KeyboardInterrupt):
        decode()
    calls.clear()
    rec.create_stream = lambda: (calls.append(1), orig())[1]
    return calls


def test_interrupted_decode_resumes(model_and_tok, data_dir, tmp_path):
    rec = Recognizer(*model_and_tok, DecodeConfig(max_tokens_per_read=2, max_tokens_per_segment=12))
    ref_out = tmp_path / "full"
    decode_data_dir(rec, data_dir, ref_out, progress=False)

    out = tmp_path / "resumed"
    calls = _interrupt_at_third_utterance(rec, lambda: decode_data_dir(rec, data_dir, out, progress=False))
    assert len((out / "partial.jsonl").read_text().splitlines()) == 2
    with open(out / "partial.jsonl", "a") as f:
        f.write('{"key": "spk-1-00')  # a line cut by the interruption
    decode_data_dir(rec, data_dir, out, progress=False)
    assert len(calls) == 1  # only the missing utterance was decoded again
    assert (out / "text").read_text() == (ref_out / "text").read_text()


@pytest.mark.parametrize("mode", ["streaming", "batch"])
def test_batched_decode_gives_the_same_output_and_resumes(model_and_tok, data_dir, tmp_path, mode):
    rec = Recognizer(*model_and_tok, DecodeConfig(mode=mode, max_tokens_per_read=2, max_tokens_per_segment=12))
    decode_data_dir(rec, data_dir, tmp_path / "one", progress=False)
    summary = decode_data_dir(rec, data_dir, tmp_path / "two", progress=False, batch_size=2)
    assert (tmp_path / "two" / "text").read_text() == (tmp_path / "one" / "text").read_text()
    words = [{k: [(w.word, w.audio_s) for w in e.words] for k, e in read_emissions(d / "emissions.jsonl").items()}
             for d in (tmp_path / "one", tmp_path / "two")]
    assert words[0] == words[1]
    assert summary["num_utts"] == 3 and summary["rtf"] > 0

    out = tmp_path / "resumed"  # the 3rd utterance fails to start: the first two finish meanwhile
    calls = _interrupt_at_third_utterance(
        rec, lambda: decode_data_dir(rec, data_dir, out, progress=False, batch_size=2))
    assert 1 <= len((out / "partial.jsonl").read_text().splitlines()) <= 2
    decode_data_dir(rec, data_dir, out, progress=False, batch_size=2)
    assert 1 <= len(calls) <= 2  # only what was not finished
    assert (out / "text").read_text() == (tmp_path / "one" / "text").read_text()
