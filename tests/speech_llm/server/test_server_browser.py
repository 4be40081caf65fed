"""The browser page in a real browser: headless Chromium (Debian's package) opens the page with a fake
microphone playing a test utterance, and the page's final text equals the in-process transcript of the same
file by the same Recognizer.

Why the equality is exact: Chromium's fake capture device (44.1 kHz) delivers the file's int16 samples as
x / 32767 floats and the page sends them back as round(f * 32767) (s16le), so the server receives the file's
samples bit for bit; the page's ``sync_ms`` starts sending on the first sample of a pass of the looping file
and ``seconds`` stops after exactly one pass. The recognizer's text does not depend on block sizes."""

import numpy as np
import pytest
import soundfile as sf
from devtools import HeadlessChromium, find_chromium
from server_testutil import espeak, reference

from data_prep.audio import resample

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (apt-get install chromium)")
DEVICE_RATE = 44100     # the rate of Chromium's fake audio input device


def fake_microphone_file(tmp_path) -> np.ndarray:
    """Two sentences with a pause of faint noise between them, at the device rate, starting on a non-zero
    sample and ending with 1 s of digital silence (the only run of zeros: the page's sync point)."""
    parts = []
    rng = np.random.default_rng(0)
    for i, text in enumerate(["turn on the light in the kitchen please", "alice and bob meet at noon"]):
        u = espeak(text, tmp_path / f"s{i}.wav")
        x = np.round(resample(u.samples / 32768, u.rate, DEVICE_RATE) * 32767).astype(np.int16)
        nz = np.flatnonzero(x)
        parts.append(x[nz[0]:nz[-1] + 1])
        if i == 0:   # -80 dBFS: silence to the endpointer, but not digital zeros
            parts.append(rng.choice(np.array([-3, -2, -1, 1, 2, 3], np.int16), size=int(1.2 * DEVICE_RATE)))
    pcm = np.concatenate([*parts, np.zeros(DEVICE_RATE, np.int16)])
    sf.write(tmp_path / "mic.wav", pcm, DEVICE_RATE, subtype="PCM_16")
    return pcm


@pytest.mark.timeout(180)
def test_the_page_transcribes_a_fake_microphone_like_the_recognizer(server, server_rec, tmp_path):
    pcm = fake_microphone_file(tmp_path)
    ref = reference(server_rec, pcm, DEVICE_RATE)
    assert len(ref.segments) == 2 and ref.text
    url = f"{server.url}?autostart=1&sync_ms=500&seconds={len(pcm) / DEVICE_RATE:.9f}"
    with HeadlessChromium(fake_audio=tmp_path / "mic.wav") as browser:
        page = browser.open(url)
        state = page.wait_for("['done', 'error'].includes(document.body.dataset.state) && "
                              "document.body.dataset.state", timeout=50)
        status = page.evaluate("document.getElementById('status').textContent")
        assert state == "done", status
        assert page.evaluate("document.body.dataset.sampleRate") == str(DEVICE_RATE), "the fake device's rate changed"
        assert page.evaluate("Number(document.body.dataset.sentSamples)") == len(pcm)
        assert page.evaluate("document.getElementById('final-text').textContent") == ref.text
        shown = page.evaluate("Array.from(document.querySelectorAll('#segments .segment'), d => d.textContent)")
        assert len(shown) == 2 and all(seg.text in line for seg, line in zip(ref.segments, shown))
        shot = page.screenshot(tmp_path / "page.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
