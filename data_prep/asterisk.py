"""A real-speech test set: Asterisk's English prompts (one professional voice, 8 kHz), as a Kaldi data dir.

Usage (through the console script):
    speech-llm prepare asterisk --out data/asterisk

Source: Debian's ``asterisk-core-sounds-en-wav`` (the recordings, 16-bit 8 kHz WAV, under
``/usr/share/asterisk/sounds/en_US_f_Allison``) and ``asterisk-core-sounds-en`` (the transcripts,
``/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz``, one ``name: text`` line per prompt).
Recorded by Allison Smith for Digium; licence CC-BY-SA-3.0 (``/usr/share/doc/asterisk-core-sounds-en/
copyright``). Install both with ``apt-get install asterisk-core-sounds-en-wav asterisk-core-sounds-en``.

Written: ``<out>/{wav.scp,text,utt2spk,spk2utt,utt2dur}`` (validated) and ``<out>/manifest.jsonl``; the
utterance ids are ``allison-<prompt name>`` (``/`` becomes ``-``: ``allison-digits-7``), one speaker
``allison``. The audio stays as it is (8 kHz files, absolute paths): the toolkit's readers resample to
16 kHz (:func:`data_prep.audio.read_audio`), and ``utt2dur`` is in seconds, whatever the rate.

Kept: prompts with spoken text and a recording. Dropped, and counted in the returned report: tones,
beeps and other sounds (a transcript that is only ``[...]`` or ``<...>``), the ``silence/`` files,
transcripts that are empty once notes in brackets or parentheses are removed (``IAX (note: does not
say "2")`` keeps ``IAX``), and prompts without a recording or recordings without a transcript. Text is normalised with
:func:`data_prep.normalize.normalize_text`, with the phone keypad's ``*`` read STAR and ``#`` POUND and
acronyms spelled letter by letter (``PBX`` -> ``P B X``) except those the speaker says as a word
(:data:`SPOKEN_ACRONYMS`). A few prompts are read differently from what a text rule gives;
:data:`SPOKEN_FORMS` holds what is said there (checked by listening through Whisper tiny.en).
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.audio import AudioError, audio_info
from data_prep.kaldi_dir import Problems, Utterance, validate_data_dir, write_data_dir
from data_prep.manifest import utterance_to_record, write_manifest
from data_prep.normalize import normalize_text
from speech_common.errors import UserError

SOUNDS_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
APT_PACKAGES = ("asterisk-core-sounds-en-wav", "asterisk-core-sounds-en")
SPEAKER = "allison"
KEYPAD = {"*": "star", "#": "pound"}

SPOKEN_ACRONYMS = ("IAX", "DAHDI", "SIP", "MGCP", "ZAP", "NBS", "MISDN", "UNISTIM", "USBRADIO")
"""Upper case words of the transcripts that are not spelled letter by letter."""

SPOKEN_FORMS: dict[str, list[tuple[str, str]]] = {
    "conf-adminmenu-menu8": [("umute", "unmute")],      # a typo in the transcript file
    "spy-h323": [("H.323", "H 3 2 3")],                 # said digit by digit
    "demo-instruct": [("If you dial 1234", "If you dial 1 2 3 4")],
}
"""``{prompt name: [(text, what is said)]}``: edits of the raw transcript, made before normalisation, where
the recording says something else than the text rules give (heard through Whisper tiny.en: ``H three two
three``, ``dial one two three four``; the other numbers of ``demo-instruct``, ``dial 500``, ``dial 600`` and
``extension 8500``, are kept as the rules read them, FIVE HUNDRED, SIX HUNDRED, EIGHT FIVE ZERO ZERO)."""

_NON_SPEECH = re.compile(r"\[[^\]]*\]|<[^>]*>")
_NOTE = re.compile(r"\([^)]*\)")


@dataclass
class AsteriskReport:
    """What :func:`prepare_asterisk` kept and dropped (``dropped``: ``{reason: [prompt names]}``)."""

    data_dir: Path
    utterances: int = 0
    seconds: float = 0.0
    words: int = 0
    dropped: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        drops = ", ".join(f"{len(v)} {k}" for k, v in sorted(self.dropped.items()))
        return (f"{self.utterances} prompts, {self.seconds / 60:.1f} minutes, {self.words} words in {self.data_dir}"
                + (f" (dropped: {drops})" if drops else ""))


def find_sources(sounds_dir: str | os.PathLike | None = None,
                 transcripts: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The recordings' directory and the transcript file.

    Raises:
        UserError: either is missing; the message names the Debian package that provides it.
    """
    sounds = Path(sounds_dir) if sounds_dir is not None else SOUNDS_DIR
    trans = Path(transcripts) if transcripts is not None else TRANSCRIPTS
    problems = []
    if not sounds.is_dir() or not any(sounds.glob("*.wav")):
        problems.append(f"no WAV recordings in {sounds} (package {APT_PACKAGES[0]})")
    if not trans.is_file():
        problems.append(f"transcript file {trans} not found (package {APT_PACKAGES[1]})")
    if problems:
        raise UserError("Asterisk prompts not available: " + "; ".join(problems)
                        + f"; install them with: apt-get install {' '.join(APT_PACKAGES)}")
    return sounds, trans


def read_transcripts(path: str | os.PathLike) -> dict[str, str]:
    """``{prompt name: raw text}`` of a ``core-sounds-<lang>.txt[.gz]`` file (``;`` comment lines skipped)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    out: dict[str, str] = {}
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip() or line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            out.setdefault(name.strip(), text.strip())
    return out


def prompt_text(name: str, raw: str) -> tuple[str | None, str]:
    """``(normalised transcript, "")`` of a prompt, or ``(None, reason)`` when it is not speech."""
    if name.startswith("silence/"):
        return None, "silence"
    for written, said in SPOKEN_FORMS.get(name, []):
        raw = raw.replace(written, said)
    if _NON_SPEECH.sub("", raw).strip() == "" and raw.strip():
        return None, "non-speech sound"
    text = normalize_text(_NOTE.sub(" ", _NON_SPEECH.sub(" ", raw)), symbols=KEYPAD, spell_acronyms=True,
                          spoken_acronyms=SPOKEN_ACRONYMS)
    return (text, "") if text else (None, "no speech text")


def prepare_asterisk(out_dir: str | os.PathLike, sounds_dir: str | os.PathLike | None = None,
                     transcripts: str | os.PathLike | None = None) -> AsteriskReport:
    """Write the Asterisk prompts as a validated data dir plus ``manifest.jsonl`` in ``out_dir``.

    Raises:
        UserError: the packages are missing; DataError: a recording is unreadable (nothing is written).
    """
    sounds, trans = find_sources(sounds_dir, transcripts)
    out_dir = Path(out_dir)
    report = AsteriskReport(out_dir)
    texts = read_transcripts(trans)
    recordings = {p.relative_to(sounds).with_suffix("").as_posix(): p for p in sounds.rglob("*.wav")}
    problems = Problems()
    utts: list[Utterance] = []
    for name in sorted(texts):
        text, reason = prompt_text(name, texts[name])
        if text is None:
            report.dropped.setdefault(reason, []).append(name)
            continue
        if name not in recordings:
            report.dropped.setdefault("no recording", []).append(name)
            continue
        try:
            frames, sr = audio_info(recordings[name])
        except AudioError as e:
            problems.add(recordings[name], str(e), None, name)
            continue
        utts.append(Utterance(key=f"{SPEAKER}-{name.replace('/', '-')}", wav=str(recordings[name].resolve()),
                              text=text, speaker=SPEAKER, duration=frames / sr))
    for name in sorted(set(recordings) - set(texts)):
        report.dropped.setdefault("no transcript", []).append(name)
    problems.raise_if_any(f"Asterisk prompts in {sounds}")
    write_data_dir(out_dir, utts)
    write_manifest(out_dir / "manifest.jsonl", [utterance_to_record(u) for u in utts])
    validate_data_dir(out_dir, check_audio=False)
    report.utterances = len(utts)
    report.seconds = sum(u.duration for u in utts)
    report.words = sum(len(u.text.split()) for u in utts)
    return report
