"""speech_runtime imports and recognises with torch (and the torch side of the toolkit) unimportable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runtime_testutil import SHORT_RULES, audio, endpointed, feed, with_pauses

import speech_runtime

BLOCKED = ("torch", "torchaudio", "transformers", "peft", "speech_llm", "encoders", "data_prep")

SCRIPT = """
import importlib.abc, json, sys

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, Blocker())
import numpy as np
import speech_runtime

rec = speech_runtime.load_recognizer(sys.argv[1], threads=1, overrides=json.loads(sys.argv[3]))
x = np.load(sys.argv[2])
s = rec.create_stream()
for i in range(0, len(x), 1234):
    s.accept_waveform(16000, x[i:i + 1234])
    rec.decode(s)
s.input_finished()
rec.decode(s)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
r = rec.get_result(s)
print(json.dumps({"text": r.text, "trace": list(s.trace), "loaded": loaded,
                  "segments": [[g.start_s, g.end_s, g.reason, g.text] for g in r.segments]}))
"""


@pytest.mark.parametrize("rec_name,export_name", [("torch_rec", "export_dir"), ("whisper_rec", "whisper_export")])
def test_runtime_runs_with_torch_blocked(rec_name, export_name, request, tmp_path):
    """The Conformer export (fbank) and the Whisper + vocab projector export (Whisper's log-mel)."""
    torch_rec, export_dir = request.getfixturevalue(rec_name), request.getfixturevalue(export_name)
    x = audio(2.3, 0)
    out = run_blocked(export_dir, x, tmp_path)
    streams, results = feed(torch_rec, [x], fixed=1234)
    assert out["text"] == results[0].text
    assert [tuple(t) for t in out["trace"]] == list(streams[0].trace)


def test_runtime_endpointing_runs_with_torch_blocked(torch_rec, export_dir, tmp_path):
    """The decoder rules (speech_common.endpoint) need no torch either: the torch recognizer's segments."""
    ref, overrides = endpointed(torch_rec, **SHORT_RULES)
    x = with_pauses()
    out = run_blocked(export_dir, x, tmp_path, overrides)
    streams, results = feed(ref, [x], fixed=1234)
    assert len(out["segments"]) >= 3
    assert [tuple(g) for g in out["segments"]] == [(g.start_s, g.end_s, g.reason, g.text) for g in results[0].segments]
    assert out["text"] == results[0].text and [tuple(t) for t in out["trace"]] == list(streams[0].trace)


def run_blocked(export_dir, x, tmp_path, overrides: dict | None = None) -> dict:
    """Recognise ``x`` with the runtime in a subprocess where torch and the torch side cannot be imported."""
    np.save(tmp_path / "x.npy", x)
    root = Path(speech_runtime.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-c", f"BLOCKED = {BLOCKED!r}\n{SCRIPT}", str(export_dir),
                           str(tmp_path / "x.npy"), json.dumps(overrides or {})], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    return out


CLI = """
import importlib.abc, runpy, sys

class Blocker(importlib.abc.MetaPathFinder):      # as if not installed: the runtime extra alone
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
sys.argv = ["speech-llm", *sys.argv[1:]]
try:
    runpy.run_module("speech_llm", run_name="__main__")
finally:
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print("LOADED", loaded, file=sys.stderr)
"""


def test_transcribe_command_on_an_export_dir_without_torch(torch_rec, export_dir, tmp_path):
    """`speech-llm transcribe --exp-dir EXPORT a.wav` (and with ``--realtime``) with the training stack missing: the
    same text as the torch recognizer; a command that needs torch is listed and fails with a clear message."""
    import soundfile as sf

    x = audio(2.3, 0)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    blocked = (*BLOCKED[:4], "encoders", "data_prep", "soxr")
    root = Path(speech_runtime.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}

    def cli(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", f"BLOCKED = {blocked!r}\n{CLI}", *argv], capture_output=True,
                              text=True, env=env, timeout=600)

    proc = cli("transcribe", "--exp-dir", str(export_dir), str(tmp_path / "a.wav"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "LOADED []" in proc.stderr
    _, results = feed(torch_rec, [x], fixed=1234)
    assert proc.stdout.strip().splitlines()[-1].strip() == results[0].text
    proc = cli("transcribe", "--exp-dir", str(export_dir), "--realtime", str(tmp_path / "a.wav"))   # paced
    assert proc.returncode == 0 and "LOADED []" in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1].strip() == results[0].text
    proc = cli("build-llm", "--text", "t.txt", "--out", str(tmp_path / "llm"))
    assert proc.returncode == 2 and "needs the 'torch' package" in proc.stderr
    proc = cli("train", "--stage", "ctc", "--exp-dir", str(tmp_path / "exp"))   # fails in run(), not at start-up
    assert proc.returncode == 2 and "this command needs the '" in proc.stderr, proc.stderr[-2000:]
