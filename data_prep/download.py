"""HTTP download with resume and checksum verification, and safe tar extraction.

A download goes to ``<dest>.part``. When it is interrupted (connection lost, process killed), the next
attempt (an automatic retry, or the next run) asks the server for the missing bytes only with an HTTP
``Range`` request and appends them; a server that ignores ``Range`` (plain ``200``) makes it start over.
The finished file is checked against its checksum (md5, sha1 or sha256, told apart by length) and only
then renamed to ``dest``; a mismatch removes the bad file and raises :class:`DownloadError`.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from speech_common.errors import UserError
from speech_common.files import file_digest

CHUNK_BYTES = 1 << 20
_ALGORITHMS = {32: "md5", 40: "sha1", 64: "sha256"}
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class DownloadError(UserError):
    """A download failed (network, server, checksum) or an archive could not be extracted."""


def checksum_algorithm(hexdigest: str) -> str:
    """``md5`` / ``sha1`` / ``sha256`` from the length of a hex digest."""
    algo = _ALGORITHMS.get(len(hexdigest))
    if algo is None or not re.fullmatch(r"[0-9a-fA-F]+", hexdigest):
        raise UserError(f"not an md5/sha1/sha256 hex digest: {hexdigest!r}")
    return algo


def read_checksum_file(path: str | os.PathLike) -> dict[str, str]:
    """``{file name: hex digest}`` from an ``md5sum``/``sha256sum`` style file (``<hex>  <name>`` lines)."""
    sums: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise UserError(f"{path}:{lineno}: expected '<hex digest> <file name>', got {line.strip()!r}")
            digest, name = parts
            checksum_algorithm(digest)
            sums[os.path.basename(name.lstrip("*"))] = digest.lower()
    return sums


def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One HTTP request appending to ``part`` (resuming from its size); raises on any incomplete transfer."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "speech-llm-data-prep"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            return  # nothing left to fetch: the partial file is already whole (the checksum decides)
        raise
    with resp:
        mode = "wb"
        if have and resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if m and int(m.group(1)) == have:
                mode = "ab"
        start = have if mode == "ab" else 0
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        with open(part, mode) as f, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                          desc=part.name.removesuffix(".part"), disable=not progress,
                                          leave=False) as bar:
            while block := resp.read(CHUNK_BYTES):
                f.write(block)
                bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size != total:
        raise http.client.IncompleteRead(b"", total - size)


def download_file(url: str, dest: str | os.PathLike, checksum: str | None = None, retries: int = 3,
                  timeout: float = 60.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` with resume and (when ``checksum`` is given) verification.

    An existing ``dest`` is re-verified and kept when it matches. ``retries`` extra attempts are made
    after an interruption, each resuming where the last one stopped.

    Raises:
        DownloadError: the transfer kept failing (the partial file is kept: run again to resume), or
            the checksum does not match (the bad file is removed).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    algo = checksum_algorithm(checksum) if checksum else None
    if dest.exists():
        if algo is None or file_digest(dest, algo) == checksum.lower():
            return dest
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout, progress)
            break
        except urllib.error.HTTPError as e:
            raise DownloadError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            if attempt == retries:
                got = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    f"download of {url} was interrupted after {got} bytes ({e!r}); the partial file "
                    f"{part} is kept: run the same command again to resume") from e
    if algo is not None:
        actual = file_digest(part, algo)
        if actual != checksum.lower():
            part.unlink()
            raise DownloadError(
                f"checksum mismatch for {url}: expected {algo} {checksum.lower()}, got {actual}; the bad "
                f"file was removed, run again to download it afresh (or check --base-url / --checksums)")
    os.replace(part, dest)
    return dest


def extract_tar(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Extract a (gzipped) tar archive into a new temporary directory under ``dest_dir``; returns it.

    Members that would land outside the directory (absolute paths, ``..``, device files) are refused
    (tarfile's ``data`` filter). The caller moves what it needs into place and removes the directory.

    Raises:
        DownloadError: the archive is corrupt or unsafe (nothing is left behind).
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".extract-{Path(archive).name}.", dir=dest_dir))
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(tmp, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DownloadError(f"cannot extract {archive}: {e}; remove it and run again to download it afresh") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp
