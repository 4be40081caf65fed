"""speech_llm.doctor: the environment checks, and `speech-llm doctor` / `--version`."""

from __future__ import annotations

import pytest

import speech_llm
from speech_llm import doctor
from speech_llm.cli import main


def test_torchaudio_compiled_ops_load_and_run():
    """CI cannot pass on a broken torch/torchaudio pair: the ops this toolkit uses must really run."""
    check = doctor.check_torchaudio_ops()
    assert check.status == doctor.OK, check.detail


def test_installed_pair_is_matched_and_transformers_has_the_cache_argument():
    assert doctor.check_torch_pair().status == doctor.OK
    assert doctor.check_transformers_cache().status == doctor.OK


@pytest.mark.parametrize("torch_v, audio_v, bad", [
    ("2.11.0", "2.11.0", False),
    ("2.11.0+cu130", "2.11.0", False),
    ("2.11.0", "2.11.1", True),      # the pair that broke fresh installs on 2026-12-01
    ("2.10.0", "2.11.0", True),
])
def test_torch_pair_problem_names_both_versions(torch_v, audio_v, bad):
    problem = doctor.torch_pair_problem(torch_v, audio_v)
    assert (problem is not None) == bad
    if bad:
        assert torch_v in problem and audio_v in problem


def test_requirement_problems_reports_missing_and_out_of_range():
    installed = {"torch": "2.11.0", "transformers": "5.23.0"}.get
    problems = doctor.requirement_problems(
        ["torch==2.11.0", "transformers>=5.24,<6", "jiwer>=4", 'pytest; extra == "dev"'], installed)
    assert problems == ["transformers 5.23.0 is installed, setup.cfg asks for <6,>=5.24",
                        "jiwer is not installed (needs >=4)"]


def test_installed_requirements_match_setup_cfg():
    check = doctor.check_packages()
    assert check.status == doctor.OK, check.detail


def test_doctor_command_reports_every_check(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for name in ("torch/torchaudio", "torchaudio ops", "transformers", "cuda", "espeak-ng", "libportaudio2"):
        assert name in out


def test_doctor_fails_on_a_failed_check(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "check_torch_pair",
                        lambda: doctor.Check("torch/torchaudio", doctor.FAIL, "torchaudio 2.11.1 vs torch 2.11.0"))
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "torchaudio 2.11.1 vs torch 2.11.0" in out
    assert "torchaudio ops" not in out  # a mismatched pair is not loaded at all


def test_strict_doctor_fails_without_system_tools(monkeypatch):
    monkeypatch.setattr(doctor.shutil, "which", lambda tool: None)
    assert [c.status for c in doctor.check_tools(require=True)][:2] == [doctor.FAIL, doctor.FAIL]
    assert [c.status for c in doctor.check_tools(require=False)][:2] == [doctor.WARN, doctor.WARN]


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"speech-llm {speech_llm.__version__} (torch 2.11.0, torchaudio 2.11.0, transformers ")


def test_pretrained_parts_are_found_or_named_with_the_install_command(monkeypatch):
    """CI installs them (install.sh --dev): every part is found. One that is missing is information,
    not a failure, and says how to install it."""
    checks = {c.name: c for c in doctor.check_pretrained()}
    assert set(checks) == {"SmolLM2-135M-Instruct", "Whisper tiny.en", "Piper voice", "WordNet",
                           "Asterisk prompts", "Chromium"}
    assert all(c.status == doctor.OK for c in checks.values()), [c for c in checks.values() if c.status != "ok"]
    assert checks["SmolLM2-135M-Instruct"].detail.endswith(".gguf")

    import speech_llm.model.pretrained as pretrained
    from speech_common.errors import UserError

    def missing():
        raise UserError("SmolLM2-135M-Instruct is not installed")

    monkeypatch.setattr(pretrained, "smollm2_gguf", missing)
    check = next(c for c in doctor.check_pretrained() if c.name == "SmolLM2-135M-Instruct")
    assert check.status == doctor.INFO and "install.sh --pretrained" in check.detail
    assert not doctor.failed(doctor.check_pretrained())
