"""The one decode-dir writer: text lines in the given order, optional emissions, the summary last."""

import json

from speech_llm.metrics.decode_dir import DecodeSummary, read_summary, write_decode_dir
from speech_llm.metrics.emissions import UttEmissions, WordEmission, read_emissions


def test_write_decode_dir_text_emissions_and_summary(tmp_path):
    out = tmp_path / "a" / "dec"
    em = [UttEmissions(key="u2", words=[WordEmission("hi", 0.5, 0.6)], wall_time=1.0, duration=2.0)]
    summary = write_decode_dir(out, [("u2", "hi there "), ("u1", "")],
                               DecodeSummary(task="asr", mode="batch", num_utts=2, compute_s=1.0, audio_s=4.0), em)
    assert (out / "text").read_text() == "u2 hi there\nu1\n"
    assert [(k, [tuple(w)[:3] for w in u.words]) for k, u in read_emissions(out / "emissions.jsonl").items()] \
        == [("u2", [("hi", 0.5, 0.6)])]
    assert summary["rtf"] == 0.25 and read_summary(out) == summary == json.loads((out / "summary.json").read_text())


def test_write_decode_dir_without_emissions_writes_none(tmp_path):
    write_decode_dir(tmp_path, iter([("u", "x")]), DecodeSummary(task="mt", mode="wait-k", num_utts=1, compute_s=0.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json", "text"]
