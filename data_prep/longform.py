"""Long-form test sets: the utterances of a data dir joined, with pauses, into files of a given length.

Usage (through the console script):
    speech-llm prepare longform --data data/test --out data/longform --minutes 1,5,20
    speech-llm prepare longform --data data/test --out data/longform --minutes 60 --pause 0.5,1.0 \
        --pause-noise match --seed 0 --num-files 2

For each requested length ``M`` minutes one Kaldi data dir ``<out>/long_<M>min`` is written::

    wav.scp text utt2spk spk2utt utt2dur     one record per long file (key long_<M>min-000, -001, ...)
    segments.jsonl                           per long file: its source utterances with their offsets
    longform.json                            the parameters it was built with (a rerun compares them)
    audio/<key>.flac                         16 kHz, 16-bit mono

A long file is ``pause, u1, pause, u2, ..., pause, uN, pause``: the source utterances in data-dir (key)
order, each preceded by a pause and the last one followed by one. Utterances are added while the file is
shorter than ``M`` minutes, so a file lasts at least ``M`` minutes and overshoots by less than one utterance
plus two pauses. When the source set is shorter than that, it is **cycled**: after its last utterance the
first one comes again (``pass`` 1, 2, ... in ``segments.jsonl``). With ``num_files > 1`` each file of a
length carries on in the cycle where the previous one stopped; every length starts again at the first
utterance, so ``long_1min`` holds the first utterances of ``long_5min``.

Pauses: each length is drawn uniformly from ``pause_s`` (default 0.5-1.0 s) and rounded to a sample, from
a generator seeded with ``(seed, file key)``: the same arguments give the same files, whatever other lengths
are requested. A pause is digital silence plus, with ``pause_noise="match"`` (the default), white Gaussian
noise at the noise floor of the utterance that follows it (the trailing pause: of the last utterance), so
the pauses sound like the corpus' own silences (the mini corpus has white noise at 30 dB SNR, about
-50 dBFS). The noise floor of an utterance is the 10th percentile of the RMS of its 25 ms frames
(:func:`noise_floor`); an utterance with digital silence gets digital-silence pauses. ``pause_noise=None``
gives digital silence everywhere; a number gives noise at that fixed level in dBFS.

``text`` holds the source transcripts joined with single spaces, in order. ``segments.jsonl`` holds one
JSON object per long file::

    {"key": "long_1min-000", "audio": ".../audio/long_1min-000.flac", "duration": 61.87, "sample_rate": 16000,
     "utterances": [{"key": "1001-300-0000", "pass": 0, "start": 0.8125, "end": 4.597, "text": "PAUL ..."}, ...]}

``start``/``end`` are seconds from the start of the long file (exact sample indices: ``start * 16000`` is an
integer); ``end - start`` is the source utterance's length once read at 16 kHz.

Resumable and idempotent: each length's dir is built under a temporary sibling and swapped in whole
(:func:`data_prep.fileutil.staged_dir`), so an interrupted or failed run leaves the previous dir (or none),
never a half-written one. A dir whose ``longform.json`` matches the request (same source utterances,
lengths, seed, pauses, noise) and whose files are all there is skipped; otherwise it is built again. Bad
arguments raise :class:`~speech_common.errors.UserError`, a bad source dir
:class:`~data_prep.kaldi_dir.DataError`, an unreadable source file :class:`~data_prep.audio.AudioError`;
in every case nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.audio import read_audio
from data_prep.fileutil import staged_dir
from data_prep.kaldi_dir import Utterance, read_data_dir, write_data_dir
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError
from speech_common.levels import frame_rms

DEFAULT_PAUSE_S = (0.5, 1.0)
NOISE_FRAME_S = 0.025
NOISE_PERCENTILE = 10.0
FORMAT_VERSION = 1
AUDIO_EXT = ".flac"
SEGMENTS_FILE = "segments.jsonl"
PARAMS_FILE = "longform.json"
_DIR_FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "utt2dur", SEGMENTS_FILE, PARAMS_FILE)


@dataclass
class LongformDir:
    """One length's data dir: ``status`` is ``"built"`` or ``"up to date"`` (skipped)."""

    minutes: float
    path: Path
    status: str
    files: int
    seconds: float
    utterances: int
    passes: int
    """Passes through the source set (1 = no cycling)."""


@dataclass
class LongformReport:
    source: Path
    source_utterances: int
    dirs: list[LongformDir] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"source {self.source}: {self.source_utterances} utterances"]
        for d in self.dirs:
            cyc = f", cycled {d.passes} times through the source" if d.passes > 1 else ""
            lines.append(f"{d.path}: {d.status}; {d.files} file(s), {d.seconds / 60:.2f} min, "
                         f"{d.utterances} utterances{cyc}")
        return "\n".join(lines)


def dir_name(minutes: float) -> str:
    """``long_1min``, ``long_0.5min``, ``long_20min``."""
    return f"long_{minutes:g}min"


def parse_minutes(value: str | Sequence[float]) -> list[float]:
    """``"1,5,20"`` (or a list) -> ``[1.0, 5.0, 20.0]``: positive, finite, no duplicates.

    Raises:
        UserError: naming the bad value.
    """
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    if not items:
        raise UserError("--minutes: give at least one length in minutes, e.g. 1,5,20")
    out: list[float] = []
    for v in items:
        try:
            m = float(v)
        except (TypeError, ValueError):
            raise UserError(f"--minutes: {v!r} is not a number of minutes") from None
        if not math.isfinite(m) or m <= 0:
            raise UserError(f"--minutes: lengths must be > 0 minutes, got {v!r}")
        if dir_name(m) in {dir_name(x) for x in out}:
            raise UserError(f"--minutes: {v!r} is given twice")
        out.append(m)
    return out


def parse_pause(value: str | Sequence[float]) -> tuple[float, float]:
    """``"0.5,1.0"`` (or a pair; one number = a fixed pause) -> ``(0.5, 1.0)`` seconds, ``0 <= lo <= hi``.

    Raises:
        UserError: naming the bad value.
    """
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    try:
        nums = [float(v) for v in items]
    except (TypeError, ValueError):
        raise UserError(f"--pause: want MIN,MAX seconds (e.g. 0.5,1.0), got {value!r}") from None
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or not all(math.isfinite(x) for x in nums):
        raise UserError(f"--pause: want MIN,MAX seconds (e.g. 0.5,1.0), got {value!r}")
    lo, hi = nums
    if lo < 0 or hi < lo:
        raise UserError(f"--pause: want 0 <= MIN <= MAX seconds, got {lo:g},{hi:g}")
    return lo, hi


def parse_pause_noise(value: str | float | None) -> str | float | None:
    """``"match"`` -> ``"match"``; ``"none"``/None -> None (digital silence); ``"-60"`` -> -60.0 dBFS (<= 0).

    Raises:
        UserError: naming the bad value.
    """
    if value is None:
        return None
    if isinstance(value, str):
        v = value.strip().lower()
        if v == "match":
            return "match"
        if v in ("none", "silence"):
            return None
        try:
            value = float(v)
        except ValueError:
            raise UserError(f"--pause-noise: want 'match', 'none' or a level in dBFS (e.g. -60), got {value!r}") \
                from None
    if not math.isfinite(value) or value > 0:
        raise UserError(f"--pause-noise: a level in dBFS must be finite and <= 0, got {value!r}")
    return float(value)


def noise_floor(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Noise floor of a float waveform ``(N,)``: the 10th percentile of the RMS of its 25 ms frames (linear,
    full scale 1.0; 0.0 for digital silence)."""
    frame = max(1, round(NOISE_FRAME_S * sample_rate))
    n = len(samples) // frame * frame
    if n == 0:
        return float(frame_rms(samples[None])[0]) if len(samples) else 0.0
    return float(np.percentile(frame_rms(samples[:n].reshape(-1, frame)), NOISE_PERCENTILE))


def db_to_amplitude(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def _source_digest(utts: list[Utterance]) -> str:
    h = hashlib.sha256()
    for u in utts:
        h.update(f"{u.key}\t{u.wav}\t{' '.join(u.text.split())}\n".encode())
    return h.hexdigest()


def _file_rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(key.encode())])


def build_longform(data_dir: str | os.PathLike, out_dir: str | os.PathLike, minutes: Sequence[float] | str,
                   seed: int = 0, pause_s: Sequence[float] | str = DEFAULT_PAUSE_S,
                   pause_noise: str | float | None = "match", num_files: int = 1,
                   progress: bool = False) -> LongformReport:
    """Write ``<out_dir>/long_<M>min`` for every ``M`` in ``minutes`` (see the module docstring).

    Raises:
        UserError: bad arguments. DataError: a bad source data dir. AudioError: an unreadable source file.
    """
    mins = parse_minutes(minutes)
    lo, hi = parse_pause(pause_s)
    noise = parse_pause_noise(pause_noise)
    if int(num_files) != num_files or num_files < 1:
        raise UserError(f"--num-files must be a whole number >= 1, got {num_files!r}")
    src = Path(data_dir)
    utts = list(read_data_dir(src).values())          # key order; DataError lists every problem
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    report = LongformReport(source=src, source_utterances=len(utts))
    digest = _source_digest(utts)
    for m in mins:
        params = {"version": FORMAT_VERSION, "source": str(src.resolve()), "source_sha256": digest,
                  "source_utterances": len(utts), "minutes": m, "seed": int(seed), "pause_s": [lo, hi],
                  "pause_noise": noise, "num_files": int(num_files), "sample_rate": SAMPLE_RATE}
        final = out / dir_name(m)
        if _up_to_date(final, params):
            report.dirs.append(_describe(final, m, "up to date"))
            continue
        with staged_dir(final) as tmp:
            os.chmod(tmp, _dir_mode())          # mkdtemp makes it 0700; give it a plain mkdir's mode
            _write_length(tmp, final, utts, m, params, (lo, hi), noise, int(seed), int(num_files), progress)
        report.dirs.append(_describe(final, m, "built"))
    return report


def _dir_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def _up_to_date(d: Path, params: dict) -> bool:
    if not all((d / f).is_file() for f in _DIR_FILES):
        return False
    try:
        old = json.loads((d / PARAMS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if old != json.loads(json.dumps(params)):
        return False
    return all(Path(r["audio"]).is_file() for r in read_segments(d))


def _describe(d: Path, minutes: float, status: str) -> LongformDir:
    records = read_segments(d)
    return LongformDir(minutes=minutes, path=d, status=status, files=len(records),
                       seconds=sum(r["duration"] for r in records),
                       utterances=sum(len(r["utterances"]) for r in records),
                       passes=1 + max((u["pass"] for r in records for u in r["utterances"]), default=0))


def read_segments(long_dir: str | os.PathLike) -> list[dict]:
    """The records of ``<long_dir>/segments.jsonl`` (one per long file, see the module docstring)."""
    path = Path(long_dir) / SEGMENTS_FILE
    if not path.is_file():
        raise UserError(f"{long_dir}: no {SEGMENTS_FILE} (not a long-form dir from 'speech-llm prepare longform')")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _write_length(tmp: Path, final: Path, utts: list[Utterance], minutes: float, params: dict,
                  pause_s: tuple[float, float], noise: str | float | None, seed: int, num_files: int,
                  progress: bool) -> None:
    name = dir_name(minutes)
    target = round(minutes * 60 * SAMPLE_RATE)
    records, long_utts = [], []
    pos = 0                                   # position in the cycle through the source set
    for i in range(num_files):
        key = f"{name}-{i:03d}"
        audio_final = (final / "audio" / f"{key}{AUDIO_EXT}").resolve()
        rng = _file_rng(seed, key)
        placed, total, texts = [], 0, []
        (tmp / "audio").mkdir(exist_ok=True)
        with sf.SoundFile(str(tmp / "audio" / f"{key}{AUDIO_EXT}"), "w", samplerate=SAMPLE_RATE, channels=1,
                          subtype="PCM_16") as f:
            floor = 0.0
            while total < target:
                u = utts[pos % len(utts)]
                x = read_audio(u.wav)
                floor = _pause_level(noise, x)
                total += _write_pause(f, rng, pause_s, floor)
                start = total
                f.write(np.clip(x, -1.0, 1.0))
                total += len(x)
                placed.append({"key": u.key, "pass": pos // len(utts), "start": start / SAMPLE_RATE,
                               "end": total / SAMPLE_RATE, "text": " ".join(u.text.split())})
                texts.append(placed[-1]["text"])
                pos += 1
            total += _write_pause(f, rng, pause_s, floor)
        if progress:
            print(f"{key}: {total / SAMPLE_RATE / 60:.2f} min, {len(placed)} utterances", flush=True)
        records.append({"key": key, "audio": str(audio_final), "duration": total / SAMPLE_RATE,
                        "sample_rate": SAMPLE_RATE, "utterances": placed})
        long_utts.append(Utterance(key=key, wav=str(audio_final), text=" ".join(texts), speaker=key,
                                   duration=total / SAMPLE_RATE))
    write_data_dir(tmp, long_utts)
    (tmp / SEGMENTS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (tmp / PARAMS_FILE).write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")


def _pause_level(noise: str | float | None, utterance: np.ndarray) -> float:
    if noise is None:
        return 0.0
    if noise == "match":
        return noise_floor(utterance)
    return db_to_amplitude(float(noise))


def _write_pause(f: sf.SoundFile, rng: np.random.Generator, pause_s: tuple[float, float], level: float) -> int:
    """Draw a pause length (seconds, rounded to a sample) and write it: noise at RMS ``level`` (0: zeros)."""
    n = round(rng.uniform(*pause_s) * SAMPLE_RATE) if pause_s[1] > pause_s[0] else round(pause_s[0] * SAMPLE_RATE)
    x = (level * rng.standard_normal(n)).astype(np.float32) if level > 0 else np.zeros(n, np.float32)
    f.write(np.clip(x, -1.0, 1.0))
    return n
