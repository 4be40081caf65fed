"""``speech-llm report``: one table over scored decode dirs, with ratios against the batch decode."""

import json

import pytest

from speech_common.errors import UserError
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
    assert "| stream | streaming | 640 | 2 | 16.67 | 1 / 0 / 0 | 0.500 |" in printed
    assert "| batch | batch | — | 2 | 33.33 | 2 / 0 / 0 | 1.000 |" in printed
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert rows[0]["wer"] == pytest.approx(1 / 6, abs=1e-6)
    assert rows[0]["delay_mean_s"] == pytest.approx(0.05, abs=1e-6)   # every word 50 ms after its end
    assert rows[1]["delay_mean_s"] == pytest.approx(0.0, abs=1e-6)
    assert (tmp_path / "results.md").read_text().startswith("| decode |")


def test_sibling_baselines_for_several_sets_and_models(tmp_path, capsys):
    """--baseline sibling: each row against the batch decode beside it; rows named <exp>/<decode dir>."""
    _ref(tmp_path / "ref")
    hyps = {"a": ("A B X D", "A B X Y"), "b": ("A B C D", "A X C D")}   # streaming, batch of each model
    for exp, (stream, batch) in hyps.items():
        (tmp_path / exp).mkdir()
        _decode_dir(tmp_path / exp / "decode_test_640ms", {"u1": stream, "u2": "E"}, "streaming", 640, 0.1)
        _decode_dir(tmp_path / exp / "decode_test_batch", {"u1": batch, "u2": "E F"}, "batch", None, 0.0)
    dirs = [str(tmp_path / e / d) for e in hyps for d in ("decode_test_640ms", "decode_test_batch")]
    for d in dirs:
        assert main(["score", "--ref", str(tmp_path / "ref"), "--hyp", d]) == 0
    capsys.readouterr()
    assert main(["report", "--out", str(tmp_path / "all"), "--baseline", "sibling", *dirs]) == 0
    printed = capsys.readouterr().out
    assert "| a/decode_test_640ms | streaming | 640 | 2 | 33.33 | 1 / 1 / 0 | 1.000 |" in printed
    assert "| b/decode_test_640ms | streaming | 640 | 2 | 16.67 | 0 / 1 / 0 | 1.000 |" in printed
    assert "| b/decode_test_batch | batch | — | 2 | 16.67 | 1 / 0 / 0 | 1.000 |" in printed
    (tmp_path / "a" / "decode_dev_640ms").mkdir()          # scored, but its batch decode is missing
    (tmp_path / "a" / "decode_dev_640ms" / "results.json").write_text(
        (tmp_path / "a" / "decode_test_640ms" / "results.json").read_text())
    with pytest.raises(UserError, match="decode_dev_batch/results.json: not found"):
        collect_rows([tmp_path / "a" / "decode_test_640ms", tmp_path / "a" / "decode_dev_640ms"], "sibling")


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
