"""ALSA capture devices backed by a raw file, to test the real sounddevice/PortAudio input path
(DESIGN.md §6).

An ALSA PCM of ``type file`` with ``infile`` = raw 16-bit little-endian PCM and ``slave.pcm "null"``
shows up in ``sounddevice.query_devices()`` as an input device; recording it mono int16 gives back the
file's samples bit-exactly, at whatever sample rate the stream is opened with, and faster than real time
(the null slave has no clock). After the end of the file it returns stale data, so a test records exactly
the file's length (``MicrophoneSource(max_seconds=...)``).

PortAudio reads the ALSA configuration when it initialises, which sounddevice does at import; these
helpers point ``ALSA_CONFIG_PATH`` at the system ``alsa.conf`` plus our file and re-initialise PortAudio
(``sounddevice._terminate(); sounddevice._initialize()``, the re-scan sounddevice documents), and undo
both on exit. ``HOME`` moves to the temporary dir so a user's ``~/.asoundrc`` does not add devices.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
DEVICE_NAME = "speechllm_file"


@contextlib.contextmanager
def alsa_config(tmp_dir: Path, extra: str = "") -> Iterator[None]:
    """PortAudio re-initialised with the system ALSA config plus ``extra`` (asoundrc text)."""
    if not SYSTEM_ALSA_CONF.exists():
        raise FileNotFoundError(f"{SYSTEM_ALSA_CONF} not found: the ALSA library config (apt install alsa-utils)")
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    conf = tmp_dir / "asoundrc"
    conf.write_text(extra)
    saved = {k: os.environ.get(k) for k in ("ALSA_CONFIG_PATH", "HOME", "XDG_CONFIG_HOME")}
    os.environ.update(ALSA_CONFIG_PATH=f"{SYSTEM_ALSA_CONF}:{conf}", HOME=str(tmp_dir))
    os.environ.pop("XDG_CONFIG_HOME", None)
    _reinit_portaudio()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _reinit_portaudio()


@contextlib.contextmanager
def file_capture_device(tmp_dir: Path, samples: np.ndarray, name: str = DEVICE_NAME) -> Iterator[str]:
    """An input device ``name`` that plays ``samples`` (N,) int16 mono; yields the device name."""
    raw = Path(tmp_dir) / f"{name}.raw"
    raw.parent.mkdir(parents=True, exist_ok=True)
    np.asarray(samples, dtype="<i2").tofile(raw)
    pcm = (f'pcm.{name} {{\n    type file\n    slave.pcm "null"\n    file "/dev/null"\n'
           f'    infile "{raw}"\n    format "raw"\n}}\n')
    with alsa_config(tmp_dir, pcm):
        yield name


def _reinit_portaudio() -> None:
    import sounddevice as sd

    sd._terminate()
    sd._initialize()
