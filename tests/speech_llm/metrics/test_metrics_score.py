"""``speech-llm score`` end to end on tiny data dirs written in tmp_path."""

import json

import jiwer
import pytest
import sacrebleu

from speech_llm.cli import main
from speech_llm.metrics.emissions import UttEmissions, WordEmission, read_emissions, write_emissions

U1, U2, U3 = "spk1-ch-0001", "spk1-ch-0002", "spk1-ch-0003"


def _write_ref(d, utts):
    """utts: [(key, text, duration, words or None, translation or None)]"""
    d.mkdir()
    (d / "text").write_text("".join(f"{k} {t}\n" for k, t, *_ in utts))
    with open(d / "manifest.jsonl", "w") as f:
        for k, t, dur, words, tr in utts:
            rec = {"key": k, "audio": f"{k}.flac", "duration": dur, "text": t, "speaker": "spk1"}
            if words is not None:
                rec["words"] = [{"word": w, "start": s, "end": e} for w, s, e in words]
            if tr is not None:
                rec["translation"] = {"fr": tr}
            f.write(json.dumps(rec) + "\n")


def _write_hyp(d, texts, emissions=None, summary=None):
    d.mkdir()
    (d / "text").write_text("".join(f"{k} {t}\n" for k, t in texts.items()))
    if emissions is not None:
        write_emissions(d / "emissions.jsonl", emissions)
    if summary is not None:
        (d / "summary.json").write_text(json.dumps(summary))


def _score(tmp_path, *extra):
    return main(["score", "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"), *extra])


def _em(key, words, **kw):
    return UttEmissions(key=key, words=[WordEmission(*w) for w in words], **kw)


def test_asr_end_to_end(tmp_path, capsys):
    _write_ref(tmp_path / "ref", [
        (U1, "HELLO BIG WORLD", 2.5, [("HELLO", 0.5, 0.9), ("BIG", 1.0, 1.3), ("WORLD", 1.4, 2.0)], None),
        (U2, "YES", 1.0, [("YES", 0.2, 0.6)], None),
        (U3, "A B C", 1.0, None, None),
    ])
    _write_hyp(tmp_path / "hyp", {U1: "Hello small world. again", U2: "yes"}, emissions=[
        _em(U1, [("Hello", 0.96, 0.10), ("small", 1.60, 0.20), ("world.", 2.5, 0.35), ("again", 2.5, 0.36)],
            duration=2.5, wall_time=0.40, input_end_wall_s=0.30),
        _em(U2, [("yes", 0.64, 0.9)], duration=1.0, wall_time=1.2, compute_s=0.3, realtime=True),
    ], summary={"mode": "streaming", "chunk_ms": 640})
    out = tmp_path / "scores"
    assert _score(tmp_path, "--out", str(out)) == 0

    res = json.loads((out / "results.json").read_text())
    j = jiwer.process_words(["hello big world", "yes", "a b c"], ["hello small world again", "yes", ""])
    assert res["wer"] == {"percent": pytest.approx(100 * j.wer, abs=1e-3), "errors": 5, "hits": j.hits,
                          "substitutions": j.substitutions, "deletions": j.deletions,
                          "insertions": j.insertions, "ref_words": 7}
    assert (j.substitutions, j.deletions, j.insertions) == (1, 3, 1)
    assert res["missing_hyps"] == [U3] and res["num_utts"] == 3 and res["task"] == "asr"
    assert res["utts"][U3] == {"ref_words": 3, "hits": 0, "substitutions": 0, "deletions": 3, "insertions": 0,
                               "missing": True}
    lat = res["latency"]   # the hand example of test_metrics_latency.py
    assert lat["num_utts"] == 2
    assert lat["first_token_s"]["ideal"] == pytest.approx(0.45)
    assert lat["word_delay_mean_s"] == {"ideal": pytest.approx(0.225),
                                        "computation_aware": pytest.approx(0.4525)}
    assert lat["word_delay_p90_s"]["computation_aware"] == pytest.approx(0.745)
    assert lat["finalization_s"]["computation_aware"] == pytest.approx(0.15)
    assert lat["rtf"] == pytest.approx(0.2)
    assert res["decode_summary"] == {"mode": "streaming", "chunk_ms": 640}
    per = res["utts"][U1]["latency"]
    assert per["word_delays_s"]["ideal"] == pytest.approx([0.06, 0.30, 0.50])
    assert per["word_delays_s"]["computation_aware"] == pytest.approx([0.16, 0.50, 0.85])
    assert per["first_token_s"] == {"ideal": pytest.approx(0.46), "computation_aware": pytest.approx(0.56)}

    md = (out / "results.md").read_text()
    assert "| 71.43 | 5 | 1 | 3 | 1 | 7 |" in md and "| word delay, mean | 0.225 | 0.453 |" in md
    assert md in capsys.readouterr().out
    details = (out / "wer_details.txt").read_text()
    assert f"{U1} #csid 2 1 1 0" in details and f"{U3} #csid 0 0 0 3" in details
    assert not (tmp_path / "hyp" / "results.json").exists()


def test_asr_defaults_write_into_hyp_dir_and_cer(tmp_path):
    _write_ref(tmp_path / "ref", [(U1, "HELLO WORLD", 1.0, None, None)])
    _write_hyp(tmp_path / "hyp", {U1: "hello word"})
    assert _score(tmp_path, "--cer") == 0
    res = json.loads((tmp_path / "hyp" / "results.json").read_text())
    assert res["wer"]["substitutions"] == 1 and "latency" not in res
    assert res["cer"]["percent"] == pytest.approx(100 * jiwer.cer("hello world", "hello word"), abs=1e-3)


def test_hypothesis_without_reference_is_named(tmp_path, capsys):
    _write_ref(tmp_path / "ref", [(U1, "HELLO", 1.0, None, None)])
    _write_hyp(tmp_path / "hyp", {U1: "hello", "intruder-1": "x", "intruder-2": "y"})
    assert _score(tmp_path) == 2
    err = capsys.readouterr().err
    assert "intruder-1, intruder-2" in err and "hyp/text" in err and "Traceback" not in err


def test_st_end_to_end(tmp_path):
    _write_ref(tmp_path / "ref", [
        (U1, "HELLO WORLD", 2.0, None, "bonjour le monde"),
        (U2, "GOOD NIGHT", 1.0, None, "bonne nuit"),
        (U3, "THANKS", 1.0, None, "merci"),
    ])
    _write_hyp(tmp_path / "hyp", {U1: "bonjour le monde entier", U2: ""}, emissions=[
        _em(U1, [("bonjour", 0.64, 0.1), ("le", 1.28, 0.2), ("monde", 2.0, 0.3), ("entier", 2.0, 0.31)],
            duration=2.0, wall_time=0.35, input_end_wall_s=0.25),
        _em(U2, [], duration=1.0, wall_time=0.05),
    ])
    assert _score(tmp_path, "--task", "st") == 0
    res = json.loads((tmp_path / "hyp" / "results.json").read_text())
    hyps, refs = ["bonjour le monde entier", "", ""], ["bonjour le monde", "bonne nuit", "merci"]
    assert res["bleu"]["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-3)
    assert res["bleu"]["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-3)
    assert res["missing_hyps"] == [U3]
    simul = res["simul"]
    assert simul["unit"] == "ms" and simul["num_scored"] == 1 and simul["num_empty"] == 1
    # delays 640, 1280, 2000, 2000 ms of a 2000 ms source, 3 reference words: gamma = 3/2000, tau = 3
    assert simul["ideal"]["AL"] == pytest.approx((640 + (1280 - 2000 / 3) + (2000 - 4000 / 3)) / 3, abs=1e-3)
    # computation-aware (audio + wall): 740, 1480, 2300, 2310
    ca_al = (740 + (1480 - 2000 / 3) + (2300 - 4000 / 3)) / 3
    assert simul["computation_aware"]["AL"] == pytest.approx(ca_al, abs=1e-3)
    assert simul["computation_aware"]["StartOffset"] == pytest.approx(740.0)
    assert simul["ideal"]["EndOffset"] == pytest.approx(0.0)
    assert res["latency"]["finalization_s"]["computation_aware"] == pytest.approx(0.10)
    assert "wer" not in res and not (tmp_path / "hyp" / "wer_details.txt").exists()


def test_mt_end_to_end_and_missing_translation(tmp_path, capsys):
    _write_ref(tmp_path / "ref", [(U1, "THE CAT SLEEPS NOW", 1.0, None, "le chat dort maintenant")])
    _write_hyp(tmp_path / "hyp", {U1: "le chat dort maintenant"}, emissions=[
        _em(U1, [("le", None, 0.01, 2), ("chat", None, 0.02, 3), ("dort", None, 0.03, 4),
                 ("maintenant", None, 0.04, 4)], wall_time=0.05),
    ])
    assert _score(tmp_path, "--task", "mt") == 0
    res = json.loads((tmp_path / "hyp" / "results.json").read_text())
    assert res["bleu"]["bleu"] == pytest.approx(100.0)
    assert res["simul"]["unit"] == "words" and res["simul"]["computation_aware"] is None
    assert res["simul"]["ideal"]["AL"] == pytest.approx(2.0)   # wait-2 over 4 source words
    assert res["simul"]["ideal"]["DAL"] == pytest.approx(2.0)

    assert _score(tmp_path, "--task", "mt", "--lang", "de") == 2
    assert "no 'translation' 'de'" in capsys.readouterr().err


def test_emissions_round_trip_and_errors(tmp_path):
    em = [_em(U1, [("a", 0.5, 0.1)], duration=1.0, wall_time=0.2, realtime=True, compute_s=0.1)]
    write_emissions(tmp_path / "e.jsonl", em)
    back = read_emissions(tmp_path / "e.jsonl")
    assert back[U1].words == [WordEmission("a", 0.5, 0.1)] and back[U1].realtime and back[U1].compute_s == 0.1
    (tmp_path / "bad.jsonl").write_text(json.dumps({"key": U1, "words": [{"word": "a", "wall_s": 0.1}],
                                                    "duration": 1.0, "wall_time": 0.2}) + "\n")
    from speech_common.errors import UserError
    with pytest.raises(UserError, match=r"bad.jsonl:1 .*'audio_s'"):
        read_emissions(tmp_path / "bad.jsonl")
