"""A disk cache of a frozen module's output per utterance: computed once, read at every training step.

A frozen encoder gives the same frames for the same audio every epoch, so a training stage that keeps it
frozen should pay for it once (Whisper tiny.en's encoder runs at about 66x real time on one thread; a
training step that re-ran it would spend most of its time there). The cache is keyed so that a stale entry
cannot be read:

* the **module key** names what computed the output: the digest of the module's weights
  (:func:`state_digest`) plus every setting that changes the output (chunk size, left context, ...),
  given by the caller as a string. Each module key gets its own directory ``<root>/<sha256(key)[:16]>/``
  with the key itself in ``key.txt``;
* the **audio key** is the SHA-256 of the audio file's bytes, so a file rewritten in place is a miss.

Entries are ``.pt`` files holding one ``(T, D)`` tensor (stored in float16 by default: half the disk and
I/O; the frames of Whisper tiny.en differ from float32 by about 1e-3 relative), written to a temporary file
and renamed into place, so an interrupted run leaves no half-written entry.

Usage::

    cache = FeatureCache("exp/cache", module_key=f"{state_digest(encoder)} chunk=32 left=-1")
    frames = cache.get(audio_path)            # None on a miss
    cache.put(audio_path, frames)             # (T, D)
    cache.fill(paths, compute, progress=True) # compute(path) -> (T, D) for every miss
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from tqdm import tqdm

from speech_common.files import file_digest


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 (hex, 16 characters) of a module's state dict: names, shapes, dtypes and values."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


class FeatureCache:
    """Per-utterance outputs of one frozen module (see the module docstring).

    Args:
        root: the cache's root directory (shared by every module key).
        module_key: what computed the entries: weights digest + settings.
        dtype: storage dtype (float16 by default); :meth:`get` returns float32.
    """

    def __init__(self, root: str | os.PathLike, module_key: str, dtype: torch.dtype = torch.float16):
        self.module_key = module_key
        self.dir = Path(root) / hashlib.sha256(module_key.encode()).hexdigest()[:16]
        self.dtype = dtype
        self._audio_keys: dict[tuple[str, int, int], str] = {}
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / "key.txt"
        if not key_file.exists():
            key_file.write_text(module_key + "\n", encoding="utf-8")

    def _entry(self, audio: str | os.PathLike) -> Path:
        st = os.stat(audio)
        memo = (str(audio), st.st_size, st.st_mtime_ns)   # the digest is recomputed when the file changes
        if memo not in self._audio_keys:
            self._audio_keys[memo] = file_digest(audio)
        digest = self._audio_keys[memo]
        return self.dir / digest[:2] / f"{digest}.pt"

    def get(self, audio: str | os.PathLike) -> torch.Tensor | None:
        """The cached ``(T, D)`` float32 output for this audio file, or None."""
        entry = self._entry(audio)
        if not entry.is_file():
            return None
        return torch.load(entry, map_location="cpu", weights_only=True).float()

    def put(self, audio: str | os.PathLike, output: torch.Tensor) -> None:
        """Store ``output`` (T, D) for this audio file (atomically)."""
        entry = self._entry(audio)
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
        os.close(fd)
        try:
            torch.save(output.detach().to("cpu", self.dtype).contiguous().clone(), tmp)
            os.replace(tmp, entry)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def missing(self, audios: Iterable[str | os.PathLike]) -> list[str]:
        """The audio files without an entry."""
        return [str(a) for a in audios if not self._entry(a).is_file()]

    def fill(self, audios: Iterable[str | os.PathLike], compute: Callable[[str], torch.Tensor],
             progress: bool = True, desc: str = "cache") -> int:
        """Compute and store the output of every audio file not cached yet; returns how many were computed."""
        todo = self.missing(audios)
        for path in tqdm(todo, desc=desc, unit="utt", disable=not progress or not todo):
            self.put(path, compute(path))
        return len(todo)
