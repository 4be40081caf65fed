"""The browser page with a trained checkpoint: headless Chromium, a fake microphone playing test utterances,
screenshots while it listens and when it is done, and the page's text against the in-process transcript.

Usage:
    python bench/server_browser.py --exp-dir recipes/mini/exp/mini --audio-dir recipes/mini/data/corpus/test
    python bench/server_browser.py --exp-dir EXP --utterances 4 --out docs/server_page.png

The server runs in this process (``ServerThread``); Chromium is Debian's ``chromium`` driven over the
DevTools protocol (the test tool tests/speech_llm/server/devtools.py). The fake microphone file is ``--utterances`` test
utterances at 44.1 kHz (the fake device's rate) with pauses of faint noise, then 1 s of digital silence:
the page's ``sync_ms`` starts on the first sample of one pass and ``seconds`` stops after it, so the server
receives the file's samples exactly (see tests/speech_llm/server/test_server_browser.py). Writes OUT (done)
and OUT with ``_live`` before the suffix (taken mid-way, with a segment still open); prints both texts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.audio import read_audio
from speech_llm.decoding.recognizer import load_recognizer
from speech_llm.server.app import ServerConfig, ServerThread

# the Chromium driver is a test tool (tests/speech_llm/server/devtools.py), not part of the product
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "speech_llm" / "server"))
from devtools import HeadlessChromium  # noqa: E402

RATE = 44100


def microphone_file(files: list[Path], path: Path) -> np.ndarray:
    rng = np.random.default_rng(0)
    parts = []
    for i, f in enumerate(files):
        x = np.round(read_audio(f, RATE) * 32767).astype(np.int16)
        nz = np.flatnonzero(x)
        parts.append(x[nz[0]:nz[-1] + 1] if i == 0 else x)
        pause = rng.choice(np.array([-3, -2, -1, 1, 2, 3], np.int16), size=int(1.2 * RATE))
        parts.append(pause if i < len(files) - 1 else np.zeros(RATE, np.int16))
    pcm = np.concatenate(parts)
    sf.write(path, pcm, RATE, subtype="PCM_16")
    return pcm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--exp-dir", default="recipes/mini/exp/mini")
    p.add_argument("--audio-dir", default="recipes/mini/data/corpus/test")
    p.add_argument("--utterances", type=int, default=3)
    p.add_argument("--out", default="docs/server_page.png")
    p.add_argument("--work", default="/tmp/server_browser")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    files = sorted(Path(args.audio_dir).rglob("*.flac"))[:args.utterances]
    pcm = microphone_file(files, work / "mic.wav")
    rec = load_recognizer(args.exp_dir)
    s = rec.create_stream()
    s.accept_waveform(RATE, pcm)
    s.input_finished()
    rec.decode(s)
    ref = rec.get_result(s).text
    out = Path(args.out)
    live = out.with_name(out.stem + "_live" + out.suffix)
    with ServerThread(rec, ServerConfig(port=0)) as srv, HeadlessChromium(fake_audio=work / "mic.wav") as browser:
        page = browser.open(f"{srv.url}?autostart=1&sync_ms=500&seconds={len(pcm) / RATE:.9f}")
        page.wait_for("document.body.dataset.state === 'listening' && "
                      "document.querySelectorAll('#segments .segment').length >= 1 && "
                      "document.getElementById('committed').textContent.length > 0", timeout=120, interval=0.05)
        page.screenshot(live)
        t = time.monotonic()
        state = page.wait_for("['done', 'error'].includes(document.body.dataset.state) && "
                              "document.body.dataset.state", timeout=120)
        page.screenshot(out)
        text = page.evaluate("document.getElementById('final-text').textContent")
        status = page.evaluate("document.getElementById('status').textContent")
    print(f"page state: {state} ({status}); done {time.monotonic() - t:.1f} s after the live screenshot")
    print(f"page text:      {text}")
    print(f"in-process ref: {ref}")
    print(f"equal: {text == ref}; screenshots: {live}, {out}")


if __name__ == "__main__":
    main()
