"""LibriSpeech: download the standard parts and prepare Kaldi data dirs + JSONL manifests.

Usage (through the console script):
    speech-llm prepare librispeech --parts dev-clean,test-clean --download-dir downloads --out data
    speech-llm prepare librispeech --parts dev-clean --corpus-dir /corpora/LibriSpeech --out data

Corpus layout read (LibriSpeech, and the synthetic corpus of :mod:`data_prep.synth`)::

    <corpus>/<part>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac
    <corpus>/<part>/<spk>/<chapter>/<spk>-<chapter>.trans.txt         <utt-key> <UPPER CASE TEXT>
    optional side files next to it (written by the synthetic corpus):
    <corpus>/<part>/<spk>/<chapter>/<spk>-<chapter>.align.txt         <utt-key> WORD:start:end ...
    <corpus>/<part>/<spk>/<chapter>/<spk>-<chapter>.trans.<lang>.txt  <utt-key> <translation>

Output, one split per part with ``-`` turned into ``_``: ``<out>/<split>/{wav.scp,text,utt2spk,spk2utt,
utt2dur}`` and ``<out>/<split>/manifest.jsonl`` (with ``words`` and ``translation`` when side files exist).
When translations exist, each language also gets ``<out>/<split>/text.<lang>`` (Kaldi format, the same
utterance ids, e.g. ``text.fr``), so a recipe can train an LLM tokenizer on the target language too:
``speech-llm build-llm --text data/train/text --text data/train/text.fr --kaldi-text``.
Audio paths are absolute. Bad records follow the rule of :mod:`data_prep.kaldi_dir`: every problem of
every requested part is reported at once (file, line, utterance) and nothing is written.

Downloads go to ``<download-dir>/<part>.tar.gz`` (resumable, sha256-verified against the checksums
published for torchaudio's LIBRISPEECH dataset) and are extracted to ``<download-dir>/LibriSpeech/<part>``;
a ``.complete`` marker in that directory makes a second run skip the part.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from tqdm import tqdm

from data_prep.audio import AudioError, audio_info, read_audio
from data_prep.download import DownloadError, download_file, extract_tar
from data_prep.fileutil import atomic_write_text, replace_dir
from data_prep.kaldi_dir import Problems, Utterance, write_data_dir
from data_prep.manifest import utterance_to_record, write_manifest
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError

OFFICIAL_URL = "https://www.openslr.org/resources/12"
"""OpenSLR resource 12; mirrors (e.g. https://us.openslr.org/resources/12) serve the same files."""

SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}
"""sha256 of the official archives ``<part>.tar.gz`` (as checked by torchaudio.datasets.LIBRISPEECH)."""

PARTS = tuple(SHA256)
ARCHIVE_ROOT = "LibriSpeech"
"""Top directory inside every official archive."""

_KEY = re.compile(r"(\d+)-(\d+)-(\d+)")
_LANG = re.compile(r"\.trans\.([A-Za-z_-]+)\.txt$")


def split_name(part: str) -> str:
    """Data dir name of a corpus part: ``dev-clean`` -> ``dev_clean``."""
    return part.replace("-", "_")


# ------------------------------------------------------------------------------------------- download

def download_librispeech(parts: list[str], download_dir: str | os.PathLike, base_url: str = OFFICIAL_URL,
                         checksums: dict[str, str] | None = None, retries: int = 3,
                         remove_archive: bool = False, progress: bool = True) -> Path:
    """Download and extract LibriSpeech parts; returns the corpus dir ``<download_dir>/LibriSpeech``.

    Idempotent: a part whose ``.complete`` marker exists is skipped; an interrupted download resumes.

    Args:
        parts: standard part names (:data:`PARTS`), e.g. ``["dev-clean", "test-clean"]``.
        download_dir: where archives are stored and extracted.
        base_url: server directory holding ``<part>.tar.gz`` (a mirror, or a local test server).
        checksums: ``{part or archive name: hex digest}`` overriding :data:`SHA256` (md5/sha1/sha256).
        retries: extra attempts after an interrupted transfer, each resuming.
        remove_archive: delete ``<part>.tar.gz`` once extracted.

    Raises:
        UserError: unknown part; DownloadError: transfer, checksum or extraction failure.
    """
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise UserError(f"unknown LibriSpeech part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    download_dir = Path(download_dir)
    corpus_dir = download_dir / ARCHIVE_ROOT
    checksums = checksums or {}
    for part in parts:
        marker = corpus_dir / part / ".complete"
        if marker.is_file():
            continue
        expected = checksums.get(part) or checksums.get(f"{part}.tar.gz") or SHA256[part]
        archive = download_file(f"{base_url.rstrip('/')}/{part}.tar.gz", download_dir / f"{part}.tar.gz",
                                checksum=expected, retries=retries, progress=progress)
        _install_part(archive, download_dir, part)
        marker.touch()
        if remove_archive:
            archive.unlink()
    return corpus_dir


def _install_part(archive: Path, download_dir: Path, part: str) -> None:
    """Extract ``archive`` and move ``LibriSpeech/<part>`` (and the shared text files) into place."""
    tmp = extract_tar(archive, download_dir)
    try:
        root = tmp / ARCHIVE_ROOT
        if not (root / part).is_dir():
            raise DownloadError(f"archive {archive} does not contain {ARCHIVE_ROOT}/{part}/")
        dest_root = download_dir / ARCHIVE_ROOT
        dest_root.mkdir(parents=True, exist_ok=True)
        for entry in root.iterdir():
            if entry.name == part:
                replace_dir(entry, dest_root / part)
            elif entry.is_file():
                os.replace(entry, dest_root / entry.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------- preparation

def _read_keyed_lines(path: Path, problems: Problems) -> dict[str, tuple[str, int]]:
    """``{key: (rest of line, line number)}`` for a ``<key> <text>`` side file; duplicates are problems."""
    out: dict[str, tuple[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=1)
            key, rest = parts[0], (parts[1] if len(parts) > 1 else "")
            if key in out:
                problems.add(path, f"duplicated key (first at line {out[key][1]})", lineno, key)
                continue
            out[key] = (rest, lineno)
    return out


def _parse_words(path: Path, lineno: int, key: str, rest: str, text: str,
                 problems: Problems) -> list[dict] | None:
    """Word times of one ``.align.txt`` line (``WORD:start:end ...``), checked against the transcript."""
    words = []
    for item in rest.split():
        try:
            word, start, end = item.rsplit(":", 2)
            words.append({"word": word, "start": float(start), "end": float(end)})
        except ValueError:
            problems.add(path, f"bad word entry {item!r} (want WORD:start:end)", lineno, key)
            return None
    if [w["word"] for w in words] != text.split():
        problems.add(path, "aligned words differ from the transcript", lineno, key)
        return None
    return words


def _scan_chapter(chapter_dir: Path, spk: str, chapter: str, problems: Problems,
                  verify_audio: bool) -> list[Utterance]:
    """Utterances of one ``<spk>/<chapter>`` directory; every problem goes to ``problems``."""
    stem = f"{spk}-{chapter}"
    trans = chapter_dir / f"{stem}.trans.txt"
    flacs = {p.name.removesuffix(".flac"): p for p in chapter_dir.glob("*.flac")}
    if not trans.is_file():
        for key in sorted(flacs) or [None]:
            problems.add(trans, "transcript file missing", None, key)
        return []
    align = chapter_dir / f"{stem}.align.txt"
    aligned = _read_keyed_lines(align, problems) if align.is_file() else {}
    translations = {}
    for side in sorted(chapter_dir.glob(f"{stem}.trans.*.txt")):
        translations[_LANG.search(side.name).group(1)] = (side, _read_keyed_lines(side, problems))

    utts: list[Utterance] = []
    first_line: dict[str, int] = {}
    with open(trans, encoding="utf-8") as f:
        lines = list(enumerate(f, start=1))
    for lineno, line in lines:
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        key, text = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        m = _KEY.fullmatch(key)
        if not m or (m.group(1), m.group(2)) != (spk, chapter):
            problems.add(trans, f"key does not match {stem}-<utt>", lineno, key)
            continue
        if key in first_line:
            problems.add(trans, f"duplicated key (first at line {first_line[key]})", lineno, key)
            continue
        first_line[key] = lineno
        if not text:
            problems.add(trans, "empty transcript", lineno, key)
            continue
        flac = flacs.get(key)
        if flac is None:
            problems.add(trans, f"audio file missing: {chapter_dir / (key + '.flac')}", lineno, key)
            continue
        try:
            if verify_audio:
                duration = len(read_audio(flac)) / SAMPLE_RATE
            else:
                frames, sr = audio_info(flac)
                duration = frames / sr
        except AudioError as e:
            problems.add(trans, str(e), lineno, key)
            continue
        utt = Utterance(key=key, wav=str(flac.resolve()), text=text, speaker=spk, duration=duration)
        if key in aligned:
            utt.words = _parse_words(align, aligned[key][1], key, aligned[key][0], text, problems)
        tr = {lang: table[key][0].strip() for lang, (_, table) in translations.items() if key in table}
        utt.translation = tr or None
        utts.append(utt)
    for key in sorted(set(flacs) - set(first_line)):
        problems.add(flacs[key], f"no line for it in {trans.name}", None, key)
    return utts


def scan_part(part_dir: str | os.PathLike, problems: Problems, verify_audio: bool = False) -> list[Utterance]:
    """All utterances of one corpus part (``<part>/<spk>/<chapter>/...``), sorted by key.

    Audio headers are read for the durations; ``verify_audio`` decodes every file completely instead
    (slow on the big parts, catches truncated files). Problems are added to ``problems``.
    """
    part_dir = Path(part_dir)
    chapters = sorted((spk.name, ch.name, ch) for spk in part_dir.iterdir() if spk.is_dir()
                      for ch in spk.iterdir() if ch.is_dir())
    utts: list[Utterance] = []
    for spk, chapter, ch_dir in tqdm(chapters, desc=f"scan {part_dir.name}", unit="chapter", leave=False):
        utts += _scan_chapter(ch_dir, spk, chapter, problems, verify_audio)
    if not chapters:
        problems.add(part_dir, "no <speaker>/<chapter> directories")
    return sorted(utts, key=lambda u: u.key)


def prepare_librispeech(corpus_dir: str | os.PathLike, parts: list[str], out_dir: str | os.PathLike,
                        verify_audio: bool = False) -> dict[str, Path]:
    """Prepare ``<out_dir>/<split>/`` (Kaldi files + ``manifest.jsonl``) for each part of a corpus.

    Args:
        corpus_dir: directory holding the part directories (``.../LibriSpeech``); its parent works too.
        parts: part directory names, e.g. ``["dev-clean"]`` or ``["train", "dev", "test"]`` (synthetic).
        out_dir: parent of the data dirs (``data/``).
        verify_audio: decode every audio file completely (see :func:`scan_part`).

    Returns:
        ``{split name: data dir}``.

    Raises:
        DataError: listing every problem of every part; nothing is written then.
    """
    if not parts:
        raise UserError("no corpus parts given (e.g. dev-clean,test-clean)")
    corpus_dir = Path(corpus_dir)
    if not (corpus_dir / parts[0]).is_dir() and (corpus_dir / ARCHIVE_ROOT / parts[0]).is_dir():
        corpus_dir = corpus_dir / ARCHIVE_ROOT
    problems = Problems()
    by_split: dict[str, list[Utterance]] = {}
    for part in parts:
        part_dir = corpus_dir / part
        if not part_dir.is_dir():
            problems.add(part_dir, "corpus part not found")
            continue
        by_split[split_name(part)] = scan_part(part_dir, problems, verify_audio)
    problems.raise_if_any(f"LibriSpeech preparation of {corpus_dir}")
    out: dict[str, Path] = {}
    for split, utts in by_split.items():
        data_dir = Path(out_dir) / split
        write_data_dir(data_dir, utts)
        write_manifest(data_dir / "manifest.jsonl", [utterance_to_record(u) for u in utts])
        write_translation_texts(data_dir, utts)
        out[split] = data_dir
    return out


def write_translation_texts(data_dir: str | os.PathLike, utts: list[Utterance]) -> dict[str, Path]:
    """Write ``<data_dir>/text.<lang>`` (``<utt> <translation>``, sorted by key) for every language found.

    Utterances without a translation into a language are left out of its file. Returns ``{lang: path}``.
    """
    data_dir = Path(data_dir)
    by_lang: dict[str, list[str]] = {}
    for u in sorted(utts, key=lambda u: u.key):
        for lang, text in (u.translation or {}).items():
            if text.strip():
                by_lang.setdefault(lang, []).append(f"{u.key} {' '.join(text.split())}\n")
    written = {}
    for lang in sorted(by_lang):
        written[lang] = data_dir / f"text.{lang}"
        atomic_write_text(written[lang], "".join(by_lang[lang]))
    return written
