"""Drive headless Chromium over the Chrome DevTools Protocol, to check the browser page end to end.

    with HeadlessChromium(fake_audio="utt.wav") as browser:           # a fake microphone playing the file
        page = browser.open("http://127.0.0.1:8000/?autostart=1")
        page.wait_for("document.body.dataset.state === 'done'", timeout=60)
        text = page.evaluate("document.getElementById('final-text').textContent")
        page.screenshot("page.png")

Chromium (Debian's ``chromium`` package) is started with a fresh profile, no sandbox (it runs as root in
CI), no GPU, and none of its background network traffic (on a closed network those connections are
refused and slow it down); ``--remote-debugging-port=0`` makes it print the browser's DevTools WebSocket
address, which this module talks to with the websockets library (no Playwright, no npm). The fake
microphone loops the file; the page's ``sync_ms``/``seconds`` parameters cut exactly one pass out of it.
Used by the tests and bench/server_browser.py; nothing in the server depends on it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from websockets.sync.client import connect

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--autoplay-policy=no-user-gesture-required")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevToolsError(RuntimeError):
    pass


class Page:
    """One tab, attached through a flat DevTools session."""

    def __init__(self, browser: HeadlessChromium, session_id: str):
        self.browser, self.session_id = browser, session_id

    def call(self, method: str, params: dict | None = None) -> dict:
        return self.browser.call(method, params, self.session_id)

    def navigate(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", {"url": url})

    def evaluate(self, expression: str):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise DevToolsError(f"{expression}: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0, interval: float = 0.2):
        """Poll ``expression`` until it is truthy (returns its value) or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except DevToolsError:
                value = None       # the page is still loading
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still false after {timeout:g} s")
            time.sleep(interval)

    def screenshot(self, path: str | os.PathLike, width: int = 1000, height: int = 420) -> Path:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path


class HeadlessChromium:
    """A headless Chromium process and its DevTools connection (a context manager)."""

    def __init__(self, fake_audio: str | os.PathLike | None = None, executable: str | None = None,
                 extra_flags: tuple[str, ...] = (), start_timeout: float = 30.0):
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise DevToolsError("no Chromium found (Debian: apt-get install chromium)")
        self.fake_audio = fake_audio
        self.extra_flags = extra_flags
        self.start_timeout = start_timeout
        self._ids = 0
        self._proc: subprocess.Popen | None = None
        self._profile: str | None = None
        self._log: Path | None = None
        self._ctx = None
        self._ws = None

    def __enter__(self) -> HeadlessChromium:
        self._profile = tempfile.mkdtemp(prefix="chromium-")
        self._log = Path(self._profile) / "stderr.log"
        flags = [*FLAGS, f"--user-data-dir={Path(self._profile) / 'profile'}", "--remote-debugging-port=0",
                 *self.extra_flags]
        if self.fake_audio is not None:
            flags += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                      f"--use-file-for-fake-audio-capture={self.fake_audio}"]
        with open(self._log, "wb") as log:     # a file, not a pipe: nobody has to keep reading it
            self._proc = subprocess.Popen([self.executable, *flags, "about:blank"], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=log)
        try:
            url = self._devtools_url()
            self._ctx = connect(url, max_size=None, open_timeout=self.start_timeout)
            self._ws = self._ctx.__enter__()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._ctx is not None:
            try:
                self._ctx.__exit__(None, None, None)
            except Exception:
                pass
            self._ctx = self._ws = None
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    def _devtools_url(self) -> str:
        """The address Chromium prints on stderr at start-up."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and self._proc.poll() is None:
            m = re.search(r"DevTools listening on (ws://\S+)", self.log_text())
            if m:
                return m.group(1)
            time.sleep(0.05)
        raise DevToolsError("Chromium did not start: " + self.log_text()[-2000:])

    def log_text(self) -> str:
        """What Chromium wrote on stderr so far."""
        try:
            return self._log.read_text(errors="replace") if self._log is not None else ""
        except OSError:
            return ""

    def call(self, method: str, params: dict | None = None, session_id: str | None = None) -> dict:
        self._ids += 1
        msg = {"id": self._ids, "method": method, "params": params or {}}
        if session_id:
            msg["sessionId"] = session_id
        self._ws.send(json.dumps(msg))
        while True:        # events of other methods arrive in between: skip them
            reply = json.loads(self._ws.recv(timeout=60))
            if reply.get("id") == self._ids:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error'].get('message')}")
                return reply["result"]

    def open(self, url: str) -> Page:
        """The first tab, navigated to ``url``."""
        targets = self.call("Target.getTargets")["targetInfos"]
        target = next((t["targetId"] for t in targets if t["type"] == "page"), None)
        if target is None:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        page = Page(self, self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"])
        page.navigate(url)
        return page
