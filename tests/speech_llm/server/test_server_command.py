"""`speech-llm serve` as users run it: a subprocess with real options, a token, decode options, one log
line per session, and a clean stop on SIGINT; its option checks."""

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from server_testutil import reference

from speech_llm.cli import main
from speech_llm.server.client import run_clients
from speech_llm.typed_config import apply_overrides

RUNNER = Path(__file__).with_name("serve_tiny.py")


@contextlib.contextmanager
def serving(argv: list[str], ready: str, **env):
    """Run ``python ARGV`` (a serve command) until it prints its ready line (matching ``ready``, whose group 1 is
    the WebSocket URL); yield that URL and a dict that gets the stderr after the clean stop (SIGINT, status 0)."""
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, HF_HUB_OFFLINE="1", **env))
    out: dict = {}
    try:
        line = proc.stdout.readline()
        m = re.search(ready, line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        yield m.group(1), out
        proc.send_signal(signal.SIGINT)
        _, out["err"] = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out.get("err")


def test_serve_command_serves_and_stops_cleanly(tiny_llm_dir, server_rec, utterances):
    with serving([str(RUNNER), str(tiny_llm_dir), "--port", "0", "--max-batch-size", "4", "--endpoint-silence", "0.5",
                  "--threads", "1"], r"WebSocket (ws://127\.0\.0\.1:\d+/ws)\) on cpu, max batch 4, .*token required",
                 SPEECH_LLM_SERVER_TOKEN="from-env") as (url, out):
        u = utterances[6]
        r = run_clients(url, [u.audio()], token="from-env")[0]
        assert r.messages[0]["config"]["endpoint"]["silence_s"] == 0.5      # --endpoint-silence reached it
        own = server_rec.with_config(apply_overrides(server_rec.config, ["endpoint.silence_s=0.5"]))
        assert r.text == reference(own, u.samples, u.rate).text
    err = out["err"]
    sessions = [x for x in err.splitlines() if " session 1 " in x]
    assert len(sessions) == 1 and ": done, close 1000" in sessions[0] and "RTF" in sessions[0], err
    assert err.rstrip().endswith("stopped")


def test_serve_command_on_an_export_dir(server_rec, utterances, tmp_path):
    """`speech-llm serve --exp-dir EXPORT` (the real command, nothing replaced): onnxruntime serves the torch
    recognizer's text, with the exported decode config and with a session's own options (a recognizer of its
    own config over the same models)."""
    from speech_llm.export import export_recognizer

    export = export_recognizer(server_rec, tmp_path / "export")
    with serving(["-m", "speech_llm", "serve", "--exp-dir", str(export), "--port", "0", "--threads", "1",
                  "--endpoint-silence", "0.5"], r"WebSocket (ws://127\.0\.0\.1:\d+/ws)\) on onnxruntime",
                 PYTHONPATH=str(Path(__file__).resolve().parents[3])) as (url, _):
        u, v = utterances[6], utterances[7]         # two segments each
        r = run_clients(url, [u.audio()])[0]
        q = run_clients(url, [v.audio()], options={"max_tokens_per_read": 2})[0]
        own = server_rec.with_config(apply_overrides(server_rec.config, ["endpoint.silence_s=0.5"]))
        assert r.messages[0]["config"]["endpoint"]["silence_s"] == 0.5
        ref = reference(own, u.samples, u.rate)
        assert r.text == ref.text and len(ref.segments) == 2
        assert q.messages[0]["config"]["max_tokens_per_read"] == 2
        lower = own.with_config(apply_overrides(own.config, ["max_tokens_per_read=2"]))
        assert q.text == reference(lower, v.samples, v.rate).text


def test_serve_option_errors(capsys):
    for argv, problem in ((["--max-batch-size", "0"], "--max-batch-size must be >= 1"),
                          (["--port", "70000"], "--port must be in"),
                          (["--idle-timeout", "0"], "--idle-timeout > 0"),
                          (["--chunk-ms", "-5"], "chunk_ms"),
                          (["--no-endpoint"], "the server needs endpointing")):
        assert main(["serve", "--exp-dir", "nowhere", *argv]) == 2
        assert problem in capsys.readouterr().err
