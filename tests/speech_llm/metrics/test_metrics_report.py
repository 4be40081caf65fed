"""``speech-llm report``: one table over scored decode dirs, with ratios against the batch decode."""

import json

import pytest

from speech_llm.cli import main
from speech_llm.metrics.report import collect_rows, format_table

REF = [("u1", "A B C D", 2.0, [("A", 0.1, 0.4), ("B", 0.5, 0.8), ("C", 0.9, 1.2), ("D", 1.3, 1.9)]),
       ("u2", "E F", 1.0, [("E", 0.1, 0.4), ("F", 0.5, 0.9)])]


def _ref(d):
    d.mkdir()
    (d / "text").write_text("".join(f"{k} {t}\n" for k, t, *_ in REF))
    with open(d / "manifest.jsonl", "w") as f:
        for k, t, dur, words in REF:
            f.write(json.dumps({"key": k, "audio": f"{k}.flac", "duration": dur, "text": t, "speaker": "s",
                                "words": [{"word": w, "start": s, "end": e} for w, s, e in words],
                                "translation": {"fr": t.lower()}}) + "\n")


def _decode_dir(d, hyps, mode, chunk_ms, emit_s):
    """A decode dir as `speech-llm decode` writes it: every word emitted at ``emit_s`` after its end."""
    d.mkdir()
    (d / "text").write_text("".join(f"{k} {h}\n" for k, h in hyps.items()))
    with open(d / "emissions.jsonl", "w") as f:
        for k, _, dur, words in REF:
            hyp_words = hyps[k].split()
            em = [{"word": w, "audio_s": min(dur, e + emit_s), "wall_s": min(dur, e + emit_s) + 0.01}
                  for w, (_, _, e) in zip(hyp_words, words)]
            f.write(json.dumps({"key": k, "duration": dur, "wall_time": dur + 0.02, "compute_s": 0.1,
                                "words": em}) + "\n")
    summary = {"mode": mode, "chunk_ms": chunk_ms or 640.0, "options": {"mode": mode, "chunk_ms": None}}
    (d / "summary.json").write_text(json.dumps(summary))


def test_report_table_and_json(tmp_path, capsys):
    _ref(tmp_path / "ref")
    # streaming: 1 substitution in 6 words; batch: 2 errors; so streaming/batch WER = 0.5
    _decode_dir(tmp_path / "stream", {"u1": "A B X D", "u2": "E F"}, "streaming", 640, 0.05)
    _decode_dir(tmp_path / "batch", {"u1": "A B X Y", "u2": "E F"}, "batch", None, 0.0)
    for d in ("stream", "batch"):
        assert main(["score", "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / d)]) == 0
    capsys.readouterr()
    rc = main(["report", "--out", str(tmp_path / "results"), "--baseline", str(tmp_path / "batch"),
               str(tmp_path / "stream"), str(tmp_path / "batch")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| stream | streaming | 640 | 2 | 16.67 | 0.500 |" in printed
    assert "| batch | batch | — | 2 | 33.33 | 1.000 |" in printed
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert rows[0]["wer"] == pytest.approx(1 / 6, abs=1e-6)
    assert rows[0]["delay_mean_s"] == pytest.approx(0.05, abs=1e-6)   # every word 50 ms after its end
    assert rows[1]["delay_mean_s"] == pytest.approx(0.0, abs=1e-6)
    assert (tmp_path / "results.md").read_text().startswith("| decode |")


def test_translation_rows_use_bleu(tmp_path, capsys):
    _ref(tmp_path / "ref")
    _decode_dir(tmp_path / "st", {"u1": "a b c d", "u2": "e f"}, "streaming", 640, 0.2)
    assert main(["score", "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "st"), "--task", "st"]) == 0
    rows = collect_rows([tmp_path / "st"], baseline=tmp_path / "st")
    assert rows[0].task == "st" and rows[0].bleu == pytest.approx(100.0) and rows[0].rel_to_baseline == 1.0
    assert rows[0].al_ms is not None
    assert "| BLEU | chrF |" in format_table(rows)


def test_unscored_dir_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    assert main(["report", "--out", str(tmp_path / "r"), str(tmp_path / "d")]) == 2
    assert "run `speech-llm score" in capsys.readouterr().err
