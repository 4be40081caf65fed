"""Speech translation (``llm.task=st``) on the toy experiment: config, targets, train -> decode -> score.

The recipe's path is followed: the CTC encoder of one experiment (``ctc_run``), an ST experiment in
another dir trained with ``speech-llm train --stage llm --encoder-checkpoint``, decoded with
``speech-llm decode`` (the task and prompt come from the checkpoint) and scored with
``speech-llm score --task st``. The tiny LLM's tokenizer has seen the French translations and the LLM
was pre-trained on English and French text, so it could write either language: only the ST training
makes it write French.
"""

from __future__ import annotations

import json
import random

import pytest
import sacrebleu

from data_prep.manifest import read_manifest
from data_prep.sentences import random_sentence, vocabulary
from speech_common.errors import UserError
from speech_llm.cli import main
from speech_llm.config import ConfigError, load_config, save_config
from speech_llm.model.build import special_tokens
from speech_llm.model.checkpoint import load_model, read_checkpoint
from speech_llm.train.llm import LLMStage, target_words_of
from speech_llm.train.toy import make_toy_experiment

ST = ("llm.task=st", "llm.target_lang=fr", "train.llm.lr=1e-2", "train.llm.max_steps=80", "train.llm.log_every=5",
      "streaming.chunk_ms=640", "decode.chunk_ms=640")
LLM = {"translations": ["fr"], "pretrain_steps": 300, "llm_hidden_size": 64}
"""A tiny LLM whose tokenizer saw the French text and that was pre-trained on English and French."""


def french_vocabulary() -> set[str]:
    """Every French word the synthetic corpus generator writes (data_prep/sentences.py)."""
    rng = random.Random(0)
    return {w for _ in range(5000) for w in random_sentence(rng).translation["fr"].split()}


@pytest.fixture(scope="module")
def st_cfg(toy_root):
    return make_toy_experiment(toy_root, overrides=ST, **LLM)


@pytest.fixture(scope="module")
def st_exp(ctc_run, st_cfg, tmp_path_factory):
    """The ST llm stage trained through the CLI, on the encoder of another experiment (as the recipe does)."""
    ctc_exp, _ = ctc_run
    root = tmp_path_factory.mktemp("st")
    conf = root / "st.yaml"
    save_config(st_cfg, conf)
    exp = root / "exp_st"
    assert main(["train", "--config", str(conf), "--exp-dir", str(exp), "--stage", "llm",
                 "--encoder-checkpoint", str(ctc_exp / "ctc"), "--cpu", "--no-progress"]) == 0
    return exp


def test_task_is_validated_and_picks_the_prompt(st_cfg):
    assert load_config(None).llm.task == "asr" and load_config(None).llm.target_lang == "fr"
    with pytest.raises(ConfigError, match=r"llm\.task.*unknown task 'translate'; known: asr, st, mt"):
        load_config(None, ["llm.task=translate"])
    with pytest.raises(ConfigError, match=r"llm\.target_lang"):
        load_config(None, ["llm.target_lang=f r"])
    from speech_llm.model.build import add_wait_token, load_tokenizer

    tok = load_tokenizer(st_cfg.llm.path_or_name)
    with pytest.raises(UserError, match=r"no '<\|wait\|>' token"):     # the framing needs the boundary token
        special_tokens(tok, st_cfg)
    add_wait_token(tok, st_cfg.llm.wait_token)
    prompt = special_tokens(tok, st_cfg).prompt_ids
    assert prompt == special_tokens(tok, st_cfg, "st").prompt_ids != special_tokens(tok, st_cfg, "asr").prompt_ids
    assert tok.decode(prompt).endswith(st_cfg.llm.prompt.st)


def test_st_targets_are_the_translation_timed_by_the_source_words(st_cfg):
    records = read_manifest(st_cfg.data.train_manifest)
    targets = target_words_of(records, st_cfg.llm, need_times=True, source="train")
    for rec, (words, ends) in zip(records, targets):
        assert words == rec["translation"]["fr"].split()
        assert len(ends) == len(words) and ends == sorted(ends)
        assert ends[-1] == rec["words"][-1]["end"]                    # the last word waits for the last source word
        assert set(ends) <= {w["end"] for w in rec["words"]}
    asr = target_words_of(records, load_config(None).llm, need_times=True, source="train")
    assert [w for w, _ in asr] == [r["text"].split() for r in records]
    lower = target_words_of(records, load_config(None, ["llm.target_case=lower"]).llm, need_times=True,
                            source="train")
    assert [w for w, _ in lower] == [r["text"].lower().split() for r in records] != [w for w, _ in asr]
    assert [e for _, e in lower] == [e for _, e in asr]


def test_records_without_the_translation_are_a_clear_error(ctc_run, toy_root, tmp_path):
    ctc_exp, _ = ctc_run
    records = [json.loads(line) for line in (toy_root / "data" / "train" / "manifest.jsonl").open(encoding="utf-8")]
    for r in records[:2]:
        r["translation"].pop("fr")
    manifest = tmp_path / "no_fr.jsonl"
    manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")

    def stage(*overrides: str) -> LLMStage:
        return LLMStage(make_toy_experiment(toy_root, overrides=[*ST, *overrides], **LLM), ctc_exp)

    keys = ", ".join(r["key"] for r in records[:2])
    with pytest.raises(UserError, match=rf"no_fr\.jsonl: 2 of {len(records)} utterance\(s\) have no 'translation' "
                                        rf"'fr' \(manifest key translation\.fr\), e\.g\. {keys}"):
        stage(f"data.train_manifest={manifest}")
    with pytest.raises(UserError, match=r"translation\.xx\).*languages found: de, fr; set llm.target_lang"):
        stage("llm.target_lang=xx")


def test_st_trains_decodes_french_and_scores_bleu(st_exp, toy_root, capsys):
    log = [json.loads(line) for line in (st_exp / "llm" / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < 0.6 * losses[0], losses
    ckpt = read_checkpoint(st_exp / "llm" / "last")
    assert (ckpt.config.llm.task, ckpt.config.llm.target_lang) == ("st", "fr")
    model, tok, _ = load_model(st_exp)                 # the prompt comes back from the checkpoint's config
    assert tok.decode(model.tokens.prompt_ids).endswith(ckpt.config.llm.prompt.st)

    data, out = toy_root / "data" / "test", st_exp / "decode_test"
    assert main(["decode", "--exp-dir", str(st_exp), "--data", str(data), "--out", str(out),
                 "--no-progress"]) == 0
    hyps = {line.split(" ", 1)[0]: line.split(" ", 1)[1] if " " in line else ""
            for line in (out / "text").read_text(encoding="utf-8").splitlines()}
    words = [w for h in hyps.values() for w in h.split()]
    french, english = french_vocabulary(), set(vocabulary())
    # French words of the corpus (a random-weight model writes byte soup; the English LLM side, CAPITALS)
    for some in (words, set(words)):
        in_french = sum(w in french for w in some)
        assert some and in_french >= 0.6 * len(some) and sum(w in english for w in some) < in_french, hyps
    emissions = {json.loads(line)["key"]: json.loads(line) for line in (out / "emissions.jsonl").open()}
    assert {k: " ".join(w["word"] for w in e["words"]) for k, e in emissions.items()} == hyps

    assert main(["score", "--ref", str(data), "--hyp", str(out), "--task", "st", "--lang", "fr"]) == 0
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    refs = {r["key"]: r["translation"]["fr"] for r in read_manifest(data / "manifest.jsonl")}
    keys = sorted(refs)
    chrf = sacrebleu.corpus_chrf([hyps.get(k, "") for k in keys], [[refs[k] for k in keys]]).score
    assert res["task"] == "st" and res["bleu"]["chrf"] == pytest.approx(chrf, abs=0.01) and chrf > 5.0
    assert "BLEU" in capsys.readouterr().out
    assert res["simul"]["ideal"]["AL"] is not None
    assert json.loads((out / "summary.json").read_text())["task"] == "st"
    # --task must match what the checkpoint was trained for
    assert main(["decode", "--exp-dir", str(st_exp), "--data", str(data), "--out", str(out / "x"),
                 "--task", "asr", "--no-progress"]) == 2
    assert "was trained for llm.task=st" in capsys.readouterr().err
