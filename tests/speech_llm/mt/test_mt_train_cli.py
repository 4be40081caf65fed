"""Wait-k MT training (full and LoRA), the saved model dir, and ``speech-llm translate`` + ``score --task mt``."""

import io
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from data_prep.sentences import generate_sentences
from speech_llm.cli import main
from speech_llm.errors import UserError
from speech_llm.metrics.emissions import read_emissions
from speech_llm.mt import load_mt_model, read_parallel_data, train_mt, translate
from speech_llm.train.toy import make_toy_llm

SENTENCES = generate_sentences(56, seed=11)
PAIRS = [(s.text, s.translation["fr"]) for s in SENTENCES[:50]]
TEST = SENTENCES[50:]


def _mean(xs):
    return sum(xs) / len(xs)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mt_train")
    make_toy_llm(root / "base", [x for pair in PAIRS for x in pair])   # tokenizer + tiny Qwen2 in base/
    return root


@pytest.fixture(scope="module")
def trained(base_dir):
    """Full fine-tuning for 60 steps on 50 English -> French pairs; returns (model dir, losses)."""
    losses = train_mt(base_dir / "base", PAIRS, base_dir / "mt", k=(1, 2, 3), steps=60, batch_size=8, lr=3e-3,
                      progress=False)
    return base_dir / "mt", losses


def test_full_fine_tuning_clearly_reduces_the_loss(trained):
    out, losses = trained
    assert len(losses) == 60
    assert _mean(losses[-5:]) < 0.75 * _mean(losses[:5])
    meta = json.loads((out / "mt.json").read_text())
    assert meta["format"] == 1 and meta["phi"] == 0 and meta["prompt"].startswith("Translate")
    assert meta["train"]["k"] == [1, 2, 3] and meta["train"]["num_pairs"] == 50 and meta["train"]["lora_rank"] == 0
    r = translate(load_mt_model(out), TEST[0].text, 2)            # the saved dir loads and translates
    assert r.tokens and r.unit_src_words[0] == 2


def test_lora_trains_only_the_adapter_and_saves_merged_weights(trained, base_dir):
    """LoRA on top of the fully fine-tuned model (LoRA adapts a model that already knows the language)."""
    start, _ = trained
    base = AutoModelForCausalLM.from_pretrained(start)
    losses = train_mt(start, PAIRS, base_dir / "mt_lora", k=2, steps=20, batch_size=8, lr=1e-2, lora_rank=4,
                      progress=False)
    assert _mean(losses[-5:]) < _mean(losses[:5])
    assert not (base_dir / "mt_lora" / "adapter_config.json").exists()   # a plain HF model dir
    merged = AutoModelForCausalLM.from_pretrained(base_dir / "mt_lora")
    b, m = base.state_dict(), merged.state_dict()
    assert set(b) == set(m)
    changed = {name for name in b if not torch.equal(b[name], m[name])}
    assert changed and all(any(t in name for t in ("q_proj", "k_proj", "v_proj", "o_proj")) for name in changed)
    assert load_mt_model(base_dir / "mt_lora").info["train"]["lora_rank"] == 4


def test_train_mt_rejects_bad_arguments(base_dir):
    with pytest.raises(UserError, match="k must be"):
        train_mt(base_dir / "base", PAIRS, base_dir / "bad", k=0, steps=1, progress=False)
    with pytest.raises(UserError, match="pair 1 has an empty"):
        train_mt(base_dir / "base", [PAIRS[0], ("A B", " ")], base_dir / "bad", steps=1, progress=False)
    with pytest.raises(UserError, match="no model here"):
        train_mt(base_dir / "nowhere", PAIRS, base_dir / "bad", steps=1, progress=False)


def _write_ref(d, sentences):
    """A data dir in the layout score --task mt reads: text (English) + manifest.jsonl with translations."""
    d.mkdir()
    (d / "text").write_text("".join(f"utt{i:03d} {s.text}\n" for i, s in enumerate(sentences)))
    with open(d / "manifest.jsonl", "w") as f:
        for i, s in enumerate(sentences):
            rec = {"key": f"utt{i:03d}", "audio": f"utt{i:03d}.flac", "duration": 1.0, "text": s.text,
                   "speaker": "spk", "translation": {"fr": s.translation["fr"]}}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def test_translate_cli_end_to_end_then_score(trained, tmp_path, capsys):
    model_dir, _ = trained
    _write_ref(tmp_path / "ref", TEST)
    assert read_parallel_data(tmp_path / "ref")["utt000"] == (TEST[0].text, TEST[0].translation["fr"])
    hyp = tmp_path / "hyp"
    rc = main(["translate", "--model", str(model_dir), "--k", "2", "--input", str(tmp_path / "ref" / "text"),
               "--kaldi-text", "--out", str(hyp), "--show-delays"])
    assert rc == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed] == [f"utt{i:03d}" for i in range(len(TEST))]
    assert all("@" in line for line in printed if len(line.split()) > 1)
    assert (hyp / "text").is_file() and (hyp / "emissions.jsonl").is_file()

    assert main(["score", "--ref", str(tmp_path / "ref"), "--hyp", str(hyp), "--task", "mt", "--lang", "fr"]) == 0
    res = json.loads((hyp / "results.json").read_text())
    assert res["task"] == "mt" and 0.0 <= res["bleu"]["bleu"] <= 100.0
    ideal = res["simul"]["ideal"]
    assert res["simul"]["unit"] == "words" and isinstance(ideal["AL"], float)
    ems = read_emissions(hyp / "emissions.jsonl")
    scored = [em for em in ems.values() if em.words]
    assert res["simul"]["num_scored"] == len(scored) > 0
    assert ideal["StartOffset"] == pytest.approx(_mean([min(2, em.src_len) for em in scored]))
    assert res["decode_summary"]["k"] == 2 and res["decode_summary"]["mode"] == "wait-k"


def test_translate_cli_reads_stdin_and_batch_equals_large_k(trained, monkeypatch, capsys):
    model_dir, _ = trained
    text = "\n".join(s.text for s in TEST[:3]) + "\n\n"
    outs = []
    for mode in (["--batch"], ["--k", "50"]):
        monkeypatch.setattr("sys.stdin", io.StringIO(text))
        assert main(["translate", "--model", str(model_dir), *mode]) == 0
        outs.append(capsys.readouterr().out.splitlines())
    assert outs[0] == outs[1] and len(outs[0]) == 3


def test_translate_cli_errors(base_dir, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("HELLO\n")
    assert main(["translate", "--model", str(base_dir / "base"), "--input", str(tmp_path / "in.txt")]) == 2
    assert "no mt.json" in capsys.readouterr().err
    assert main(["translate", "--model", str(base_dir / "base"), "--input", str(tmp_path / "nope.txt")]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "bad.txt").write_text("onlykey\n")
    assert main(["translate", "--model", str(base_dir / "base"), "--input", str(tmp_path / "bad.txt"),
                 "--kaldi-text"]) == 2
    assert "want '<key> <sentence>'" in capsys.readouterr().err


def test_decode_task_mt_equals_translate_and_scores(trained, tmp_path, capsys):
    """``speech-llm decode --task mt`` translates a data dir's text exactly as ``translate --out`` does."""
    model_dir, _ = trained
    _write_ref(tmp_path / "ref", TEST)
    ref = str(tmp_path / "ref")
    assert main(["decode", "--task", "mt", "--exp-dir", str(model_dir), "--data", ref, "--k", "2",
                 "--out", str(tmp_path / "dec"), "--no-progress"]) == 0
    assert main(["translate", "--model", str(model_dir), "--k", "2", "--input", f"{ref}/text", "--kaldi-text",
                 "--out", str(tmp_path / "tr")]) == 0
    assert (tmp_path / "dec" / "text").read_text() == (tmp_path / "tr" / "text").read_text()
    assert json.loads((tmp_path / "dec" / "summary.json").read_text())["k"] == 2
    assert main(["decode", "--task", "mt", "--exp-dir", str(model_dir), "--data", ref, "--mode", "batch",
                 "--out", str(tmp_path / "batch"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "batch" / "summary.json").read_text())["mode"] == "batch"
    assert main(["score", "--ref", ref, "--hyp", str(tmp_path / "dec"), "--task", "mt"]) == 0
    capsys.readouterr()
    assert main(["decode", "--task", "mt", "--exp-dir", str(model_dir), "--data", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "x")]) == 2
    assert "no 'text' file" in capsys.readouterr().err
