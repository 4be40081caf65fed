"""``speech-llm train`` and ``speech-llm merge`` from the command line: stages, saved config, clear errors."""

from __future__ import annotations

import json
import shutil

import yaml

from speech_llm.cli import main
from speech_llm.config import dump_yaml
from speech_llm.train.toy import make_toy_experiment


def _config_file(toy_root, tmp_path, *overrides):
    path = tmp_path / "toy.yaml"
    path.write_text(dump_yaml(make_toy_experiment(toy_root, overrides=overrides)))
    return path


def _train(conf, exp, stage, *args):
    return main(["train", "--config", str(conf), "--exp-dir", str(exp), "--stage", stage, "--cpu",
                 "--no-progress", *args])


def test_unknown_key_and_wrong_type_name_the_key(toy_root, tmp_path, capsys):
    conf = _config_file(toy_root, tmp_path)
    assert main(["train", "--config", str(conf), "--exp-dir", str(tmp_path / "e"), "--stage", "ctc",
                 "train.ctc.lrr=1e-4"]) == 2
    assert "train.ctc.lrr" in capsys.readouterr().err
    assert main(["train", "--config", str(conf), "--exp-dir", str(tmp_path / "e"), "--stage", "ctc",
                 "encoder.num_layers=two"]) == 2
    err = capsys.readouterr().err
    assert "encoder.num_layers" in err and "expected int" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  ctc:\n    lr: 1e-3\n    warmup: 5\n")
    assert main(["train", "--config", str(bad), "--exp-dir", str(tmp_path / "e"), "--stage", "ctc"]) == 2
    assert "train.ctc.warmup" in capsys.readouterr().err
    assert _train(conf, tmp_path / "e", "ctc", "oops") == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_missing_manifest_and_corrupt_audio_are_user_errors(toy_root, tmp_path, capsys):
    conf = _config_file(toy_root, tmp_path)
    assert main(["train", "--config", str(conf), "--exp-dir", str(tmp_path / "e"), "--stage", "ctc",
                 f"data.train_manifest={tmp_path / 'nope.jsonl'}"]) == 2
    assert "data.train_manifest: manifest not found" in capsys.readouterr().err

    rec = json.loads(open(make_toy_experiment(toy_root).data.train_manifest).readline())
    broken = dict(rec, key="broken-utt", audio=str(tmp_path / "broken.flac"))
    (tmp_path / "broken.flac").write_bytes(b"fLaC but not really")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(rec) + "\n" + json.dumps(broken) + "\n")
    assert _train(conf, tmp_path / "e", "ctc", f"data.train_manifest={manifest}", "data.valid_manifest=null",
                  "data.cmvn_path=null") == 2
    err = capsys.readouterr().err
    assert "utterance broken-utt" in err and "broken.flac" in err and "Traceback" not in err


def test_stages_from_the_command_line(toy_root, ctc_run, tmp_path, capsys):
    exp = tmp_path / "exp"
    shutil.copytree(ctc_run[0] / "ctc", exp / "ctc")  # a trained encoder to start from
    conf = _config_file(toy_root, tmp_path)
    assert _train(conf, exp, "ctc", "--restart", "train.ctc.max_steps=2", "train.ctc.lr=2e-3") == 0
    saved = yaml.safe_load((exp / "config.yaml").read_text())
    assert saved["train"]["ctc"]["lr"] == 2e-3 and saved["train"]["ctc"]["max_steps"] == 2
    assert json.loads((exp / "ctc" / "last" / "meta.json").read_text())["step"] == 2

    assert _train(conf, exp, "llm", "train.llm.max_steps=2") == 0
    assert (exp / "llm" / "config.yaml").is_file() and (exp / "llm" / "best" / "model.pt").is_file()
    # running it again finds the stage finished and changes nothing
    before = (exp / "llm" / "last" / "model.pt").stat().st_mtime_ns
    assert _train(conf, exp, "llm", "train.llm.max_steps=2") == 0
    assert (exp / "llm" / "last" / "model.pt").stat().st_mtime_ns == before

    assert main(["merge", "--checkpoint", str(exp), "--out", str(exp / "merged")]) == 0
    assert (exp / "merged" / "llm" / "config.json").is_file()
    assert main(["merge", "--checkpoint", str(exp), "--out", str(exp / "merged")]) == 2
    assert "--overwrite" in capsys.readouterr().err
