"""The server gives every session exactly the in-process transcript (one Stream, the same Recognizer), alone,
batched with others, in either sample format, at any rate, with per-session options; partial results only
ever extend the committed text; markers; the page and /healthz over HTTP; the `client` command."""

import asyncio
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from server_testutil import reference, start_message
from websockets.asyncio.client import connect

from data_prep.audio import resample
from speech_llm.cli import main
from speech_llm.decoding.recognizer import Recognizer
from speech_llm.server.app import ServerConfig, ServerThread
from speech_llm.server.client import Audio, run_clients, stream_audio
from speech_llm.typed_config import apply_overrides


def assert_same(result, ref):
    """A client's result equals the in-process one: segments (times, reason, words) and text."""
    assert result.error is None and result.close_code == 1000
    got = [(f["segment"], f["start_s"], f["end_s"], f["text"], f["reason"], f["truncated"],
            [(w["word"], w["time_s"]) for w in f["words"]]) for f in result.finals]
    want = [(s.index, round(s.start_s, 3), round(s.end_s, 3), s.text, s.reason, s.truncated,
             [(w.word, round(w.audio_s, 3)) for w in s.words]) for s in ref.segments]
    assert got == want
    assert result.done["text"] == ref.text == result.text


def assert_committed_only_grows(result):
    """Per segment, each partial's committed words start with the previous ones, and the final's words
    start with the last committed ones: committed text is never revised."""
    last: dict[int, list[str]] = {}
    for m in result.messages:
        if m["type"] not in ("partial", "final"):
            continue
        words = (m["committed"] if m["type"] == "partial" else m["text"]).split()
        prev = last.get(m["segment"], [])
        assert words[:len(prev)] == prev, (prev, words)
        last[m["segment"]] = words


def test_one_client_gets_the_in_process_transcript(server, utterances, references):
    for i in (0, 6):                      # one segment; two segments with a pause
        r = run_clients(server.ws_url, [utterances[i].audio()])[0]
        assert_same(r, references[i])
        assert_committed_only_grows(r)
        assert [m["type"] for m in r.messages][0] == "ready" and r.messages[-1]["type"] == "done"
    assert len(references[6].segments) == 2 and references[6].text


def test_concurrent_real_time_clients_are_batched_and_get_their_own_transcripts(server_rec, utterances, references):
    """Eight clients 13 ms apart, 100 ms frames; a step waits up to 50 ms for more streams, so steps hold
    several streams, and each still gets its own in-process transcript."""
    with ServerThread(server_rec, ServerConfig(port=0, max_wait_ms=50, max_batch_size=4)) as server:
        results = run_clients(server.ws_url, [u.audio() for u in utterances], realtime=True, stagger_s=0.013)
        stats = server.call(server.server.health)["decoder"]
    for r, ref in zip(results, references):
        assert_same(r, ref)
        assert_committed_only_grows(r)
    assert len({r.text for r in results}) > 1               # different audio, different text
    assert stats["max_batch"] == 4 and stats["mean_batch"] > 1.5, stats    # decoded together, not one by one
    assert all(r.latencies_s and max(r.latencies_s) < 5 for r in results)


def test_sample_formats_and_rates_give_the_in_process_transcript(server, server_rec, utterances):
    u = utterances[1]
    ref = reference(server_rec, u.samples, u.rate)
    f32 = run_clients(server.ws_url, [u.audio()], fmt="f32le")[0]  # the same samples as float32 (x / 32768)
    assert_same(f32, ref)
    x48 = resample(u.samples / 32768, u.rate, 48000)              # another rate: the recognizer resamples
    assert_same(run_clients(server.ws_url, [Audio("48k", x48, 48000)], fmt="f32le")[0],
                reference(server_rec, x48, 48000))
    stereo = np.stack([u.samples, u.samples], axis=1)              # channels are averaged
    assert_same(run_clients(server.ws_url, [Audio("stereo", stereo, u.rate)])[0], ref)


def test_session_options_decode_like_a_recognizer_with_those_options(server, server_rec, utterances):
    options = {"endpoint.silence_s": 0.3, "max_tokens_per_segment": 12, "context_words": 2}
    u = utterances[7]
    config = apply_overrides(server_rec.config, [f"{k}={v}" for k, v in options.items()])
    own = Recognizer(server_rec.model, server_rec.tokenizer, config)
    r = run_clients(server.ws_url, [u.audio()], options=options)[0]
    assert r.messages[0]["config"]["max_tokens_per_segment"] == 12
    assert_same(r, reference(own, u.samples, u.rate))
    assert r.text != reference(server_rec, u.samples, u.rate).text     # the options did change something
    assert server.call(lambda: server.server.pool.num_configs) == 0    # that recognizer is gone with its session


def test_a_marker_is_answered_once_the_audio_before_it_is_decoded(server, server_rec, utterances):
    u = utterances[0]
    half = len(u.samples) // 2
    s = server_rec.create_stream()              # what the server must have sent by the marker reply
    s.accept_waveform(u.rate, u.samples[:half])
    server_rec.decode(s)
    expected = server_rec.get_result(s)

    async def session():
        async with connect(server.ws_url) as ws:
            await ws.send(json.dumps(start_message(u.rate)))
            for i in range(0, half, 1000):
                await ws.send(u.samples[i:min(i + 1000, half)].tobytes())
            await ws.send(json.dumps({"type": "marker", "id": "half"}))
            before = []
            while (m := json.loads(await ws.recv()))["type"] != "marker":
                before.append(m)
            await ws.send(u.samples[half:].tobytes())
            await ws.send(json.dumps({"type": "end"}))
            rest = [json.loads(x) async for x in ws]
            return m, before, rest, ws.close_code

    marker, before, rest, code = asyncio.run(session())
    assert marker == {"type": "marker", "id": "half"}
    partials = [m for m in before if m["type"] == "partial"]
    assert expected.committed and partials[-1]["committed"] == expected.committed
    assert rest[-1]["type"] == "done" and rest[-1]["text"] == reference(server_rec, u.samples, u.rate).text
    assert code == 1000


def test_the_page_and_health_are_served_over_http(server):
    def get(path):
        try:
            with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=10) as r:
                return r.status, r.headers["Content-Type"], r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers["Content-Type"], e.read()

    status, ctype, body = get("/")
    assert status == 200 and ctype.startswith("text/html") and b"/static/app.js" in body
    for name in ("app.js", "capture-worklet.js", "style.css"):
        status, ctype, body = get(f"/static/{name}")
        assert status == 200 and body
    assert b"registerProcessor('capture'" in get("/static/capture-worklet.js")[2]
    status, ctype, body = get("/healthz")
    health = json.loads(body)
    assert status == 200 and ctype == "application/json" and health["status"] == "ok" and health["protocol"] == 1
    for path in ("/static/../__init__.py", "/static/", "/nothing", "/ws"):
        assert get(path)[0] == 404


def test_client_command(server, utterances, references, capsys):
    paths = [str(utterances[i].path) for i in (0, 6)]
    assert main(["client", *paths, "--url", server.ws_url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{p}: {references[i].text}" for p, i in zip(paths, (0, 6))]
    assert main(["client", paths[1], "--url", server.ws_url, "--json", "--frame-ms", "50"]) == 0
    data = json.loads(capsys.readouterr().out)["results"][0]
    assert data["text"] == references[6].text and data["segments"] == 2 and data["latency_p90_s"] is not None
    assert data["finish_s"] >= 0 and data["close_code"] == 1000
    assert main(["client", paths[0], "--url", server.ws_url, "--segments"]) == 0
    assert f"] {references[0].text}" in capsys.readouterr().out


def test_client_errors_are_user_errors(server, utterances, capsys):
    assert main(["client", str(utterances[0].path), "--url", "ws://127.0.0.1:9/ws"]) == 2
    assert "cannot connect" in capsys.readouterr().err
    assert main(["client", str(utterances[0].path), "--url", server.ws_url, "--option", "dtype=bfloat16"]) == 1
    assert "error bad_option" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["s16le", "f32le"])
def test_stream_audio_reports_latency_per_word(server, utterances, fmt):
    r = asyncio.run(stream_audio(server.ws_url, utterances[2].audio(), fmt=fmt))
    assert len(r.latencies_s) == sum(len(f["words"]) for f in r.finals) > 0
    assert all(x >= 0 for x in r.latencies_s)
