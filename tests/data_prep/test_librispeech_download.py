"""LibriSpeech download against a local HTTP server: complete, resumed, checksum failure; the CLI."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from data_prep_testutil import make_tiny_corpus

from data_prep.download import DownloadError
from data_prep.kaldi_dir import validate_data_dir
from data_prep.librispeech import SHA256, download_librispeech, prepare_librispeech
from speech_common.errors import UserError
from speech_llm.cli import main


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-``; cuts the first ``server.cuts`` responses."""

    timeout = 10

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        data = srv.files.get(self.path)
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        if data is None:
            self.send_error(404)
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and srv.honour_range:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cuts > 0:
            srv.cuts -= 1
            self.wfile.write(body[: srv.cut_at])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    """A local server on 127.0.0.1 (random port) that stops after the test, or by itself after 60 s."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.files, srv.requests, srv.cuts, srv.cut_at, srv.honour_range = {}, [], 0, 0, True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(60, srv.shutdown)
    watchdog.daemon = True
    watchdog.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/resources/12"
    yield srv
    watchdog.cancel()
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _archive(tmp_path: Path, part: str = "dev-clean") -> bytes:
    """A ``<part>.tar.gz`` laid out like the official ones (``LibriSpeech/<part>/...`` + README.TXT)."""
    src = tmp_path / "archive-src"
    make_tiny_corpus(src / "LibriSpeech", part)
    (src / "LibriSpeech" / "README.TXT").write_text("test corpus\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "LibriSpeech", arcname="LibriSpeech")
    return buf.getvalue()


@pytest.fixture
def served(server, tmp_path):
    data = _archive(tmp_path)
    server.files["/resources/12/dev-clean.tar.gz"] = data
    return server, data, {"dev-clean": hashlib.sha256(data).hexdigest()}


def test_complete_download_extracts_prepares_and_is_idempotent(served, tmp_path):
    server, data, sums = served
    dl = tmp_path / "downloads"
    corpus = download_librispeech(["dev-clean"], dl, base_url=server.url, checksums=sums, progress=False)
    assert corpus == dl / "LibriSpeech"
    assert (corpus / "dev-clean" / ".complete").is_file() and (corpus / "README.TXT").is_file()
    assert (dl / "dev-clean.tar.gz").read_bytes() == data
    assert not list(dl.glob(".extract-*")) and not list(dl.glob("*.part"))
    utts = validate_data_dir(prepare_librispeech(corpus, ["dev-clean"], tmp_path / "data")["dev_clean"])
    assert len(utts) == 5
    assert not list((tmp_path / "data" / "dev_clean").glob("text.*"))   # no translations, no text.<lang>
    n = len(server.requests)
    download_librispeech(["dev-clean"], dl, base_url=server.url, checksums=sums, progress=False)
    assert len(server.requests) == n   # already there: no request


def test_interrupted_download_resumes_with_range(served, tmp_path):
    server, data, sums = served
    dl = tmp_path / "downloads"
    server.cuts, server.cut_at = 1, len(data) // 3
    with pytest.raises(DownloadError, match="interrupted after .* run the same command again to resume"):
        download_librispeech(["dev-clean"], dl, base_url=server.url, checksums=sums, retries=0, progress=False)
    part = dl / "dev-clean.tar.gz.part"
    assert part.stat().st_size == len(data) // 3
    assert not (dl / "LibriSpeech").exists()
    download_librispeech(["dev-clean"], dl, base_url=server.url, checksums=sums, retries=0, progress=False)
    assert server.requests[-1] == ("/resources/12/dev-clean.tar.gz", f"bytes={len(data) // 3}-")
    assert (dl / "dev-clean.tar.gz").read_bytes() == data and not part.exists()
    assert (dl / "LibriSpeech" / "dev-clean" / ".complete").is_file()


def test_retry_resumes_within_one_call_and_server_without_range(served, tmp_path):
    server, data, sums = served
    server.cuts, server.cut_at = 2, 1000
    download_librispeech(["dev-clean"], tmp_path / "a", base_url=server.url, checksums=sums, retries=2,
                         progress=False)
    assert [r for _, r in server.requests] == [None, "bytes=1000-", "bytes=2000-"]
    server.requests.clear()
    server.cuts, server.honour_range = 1, False   # a server that ignores Range: start over, still correct
    download_librispeech(["dev-clean"], tmp_path / "b", base_url=server.url, checksums=sums, retries=1,
                         progress=False)
    assert (tmp_path / "b" / "dev-clean.tar.gz").read_bytes() == data


def test_checksum_failure_is_clear_and_leaves_nothing(served, tmp_path):
    server, data, _ = served
    dl = tmp_path / "downloads"
    # no override: the built-in sha256 of the official dev-clean archive cannot match the test archive
    with pytest.raises(DownloadError) as err:
        download_librispeech(["dev-clean"], dl, base_url=server.url, progress=False)
    msg = str(err.value)
    assert "checksum mismatch" in msg and "dev-clean.tar.gz" in msg
    assert f"expected sha256 {SHA256['dev-clean']}, got {hashlib.sha256(data).hexdigest()}" in msg
    assert sorted(p.name for p in dl.iterdir()) == []     # bad download removed, nothing extracted
    with pytest.raises(DownloadError, match="expected md5 0{32}"):
        download_librispeech(["dev-clean"], dl, base_url=server.url, checksums={"dev-clean": "0" * 32},
                             progress=False)


def test_unknown_part_and_missing_file(server, tmp_path):
    with pytest.raises(UserError, match="unknown LibriSpeech part.*dev-cleen"):
        download_librispeech(["dev-cleen"], tmp_path, base_url=server.url)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_librispeech(["test-other"], tmp_path, base_url=server.url, progress=False)


def test_cli_prepare_librispeech(served, tmp_path, capsys):
    server, data, sums = served
    (tmp_path / "sums.txt").write_text(f"{sums['dev-clean']}  dev-clean.tar.gz\n")
    rc = main(["prepare", "librispeech", "--parts", "dev-clean", "--download-dir", str(tmp_path / "dl"),
               "--out", str(tmp_path / "data"), "--base-url", server.url, "--checksums", str(tmp_path / "sums.txt")])
    assert rc == 0
    assert "dev_clean" in capsys.readouterr().out
    assert len(validate_data_dir(tmp_path / "data" / "dev_clean")) == 5
    trans = tmp_path / "dl/LibriSpeech/dev-clean/26/495/26-495.trans.txt"
    trans.write_text(trans.read_text() + "26-495-0001 AGAIN\n")
    rc = main(["prepare", "librispeech", "--parts", "dev-clean", "--corpus-dir", str(tmp_path / "dl/LibriSpeech"),
               "--out", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"{trans}:3: utterance 26-495-0001: duplicated key (first at line 2)" in err
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", "synth", "--help"])
    assert exit_.value.code == 0 and "--num-utts" in capsys.readouterr().out
