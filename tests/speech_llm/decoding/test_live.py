"""Live transcription: the decoding loop, the real PortAudio input path (an ALSA file-backed capture device,
see alsa_file_device.py), Ctrl-C, device errors and the CLI. Endpointing itself is the recognizer's
(test_endpoint.py, test_long_input.py).

The recognizer is the tiny random-weight SpeechLLM: its text is arbitrary but deterministic, which is all
the equivalence tests (live == transcribing the same samples) need."""

import io
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from alsa_file_device import alsa_config, file_capture_device
from endpoint_testutil import EP, bursts, expected_samples
from tiny_speech_llm import decode_in_chunks, make_speech_llm

from encoders.constants import SAMPLE_RATE
from speech_llm.cli import main
from speech_llm.config import DecodeConfig, EndpointConfig
from speech_llm.decoding import live
from speech_llm.decoding.display import format_time
from speech_llm.decoding.recognizer import Recognizer, SegmentResult


def espeak(text: str, path: Path) -> tuple[np.ndarray, int]:
    """Synthetic speech from espeak-ng: int16 samples (N,) and their rate."""
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    samples, rate = sf.read(path, dtype="int16")
    return samples, rate


def reference_text(rec: Recognizer, samples, rate: int) -> str:
    """What `transcribe` gets for these samples (chunk-sized blocks, decode after each, then finish)."""
    return decode_in_chunks(rec, samples, rate).text


def transcribe_segments(rec: Recognizer, samples, rate: int) -> list[tuple[float, float, str]]:
    return [(s.start_s, s.end_s, s.text) for s in decode_in_chunks(rec, samples, rate).segments]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The tiny model runs much faster on one thread (and is not slowed down by a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def rec(tiny_llm_dir):
    """The recognizer under test: its endpointing is EP (endpoint_testutil.py)."""
    model, tok = make_speech_llm(tiny_llm_dir)
    return Recognizer(model, tok, DecodeConfig(max_tokens_per_read=3, max_tokens_per_segment=60, endpoint=EP))


@pytest.fixture(scope="module")
def rec_whole(rec):
    """The same model without endpointing: decodes its whole input as one segment."""
    return Recognizer(rec.model, rec.tokenizer, DecodeConfig(max_tokens_per_read=3, max_tokens_per_segment=60,
                                                             endpoint=EndpointConfig(enabled=False)))


# ------------------------------------------------------------------------------------------ decoding loop
def test_live_segments_equal_transcribing_each_segment(rec, rec_whole):
    x = bursts()
    out = io.StringIO()
    tsv = io.StringIO()
    report = live.run_live(rec, live.ArraySource(x, SAMPLE_RATE, block_ms=37), live.LiveDisplay(out, out),
                           transcript_out=tsv)
    bounds = [(round(s.start_s * SAMPLE_RATE), round(s.end_s * SAMPLE_RATE), s.reason) for s in report.segments]
    assert bounds == expected_samples()
    assert sum(bool(s.text) for s in report.segments) >= 3
    for seg, (start, end, _) in zip(report.segments, bounds):
        # each segment is decoded as its samples alone would be (a fresh context per segment)
        assert seg.text == reference_text(rec_whole, x[start:end], SAMPLE_RATE)
        # word times are session times, inside the segment
        assert all(seg.start_s < w.audio_s <= seg.end_s + 1e-6 for w in seg.words)
    assert [(s.start_s, s.end_s, s.text) for s in report.segments] == transcribe_segments(rec, x, SAMPLE_RATE)
    assert not report.interrupted and report.audio_s == pytest.approx(len(x) / SAMPLE_RATE)
    shown = out.getvalue().splitlines()
    finals = [f"[{format_time(s.start_s)} - {format_time(s.end_s)}] {s.text}" + (" [truncated]" if s.truncated else "")
              for s in report.segments if s.text]
    assert [line for line in shown if " - " in line.split("]")[0]] == finals
    assert len(shown) > len(finals)  # partial results were shown while each segment grew
    assert tsv.getvalue() == "".join(f"{s.start_s:.3f}\t{s.end_s:.3f}\t{s.text}\n"
                                     for s in report.segments if s.text)


class InterruptingSource(live.ArraySource):
    """Gives ``after`` blocks, then acts as if Ctrl-C was pressed (``how``: "raise" or "signal")."""

    def __init__(self, samples, rate, after, how, times=1):
        super().__init__(samples, rate, block_ms=50)
        self.after, self.how, self.times = after, how, times

    def blocks(self, stop=None):
        for i, block in enumerate(super().blocks(stop)):
            if i == self.after:
                for _ in range(self.times):
                    if self.how == "raise":
                        raise KeyboardInterrupt
                    signal.raise_signal(signal.SIGINT)
            yield block


@pytest.mark.parametrize("how", ["raise", "signal"])
def test_ctrl_c_finalises_the_open_segment(rec, rec_whole, how):
    x = bursts()
    src = InterruptingSource(x, SAMPLE_RATE, after=100, how=how)  # 5.0 s: inside the second segment
    out = io.StringIO()
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN when started in the background
    report = live.run_live(rec, src, live.LiveDisplay(out, out))
    assert report.interrupted
    heard = src.block * (101 if how == "signal" else 100)  # a signal stops after the block it came in
    assert report.audio_s * SAMPLE_RATE == heard
    last = report.segments[-1]
    assert (len(report.segments), last.reason, round(last.end_s * SAMPLE_RATE)) == (2, "end", heard)
    start = round(last.start_s * SAMPLE_RATE)
    assert last.text and last.text == reference_text(rec_whole, x[start:heard], SAMPLE_RATE)
    assert ("] " + last.text) in out.getvalue().splitlines()[-1]  # printed as final
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler restored


def test_second_ctrl_c_quits_at_once(rec):
    src = InterruptingSource(bursts(), SAMPLE_RATE, after=30, how="signal", times=2)
    with pytest.raises(KeyboardInterrupt):
        live.run_live(rec, src)


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_display_on_a_terminal_updates_in_place():
    out, err = FakeTerminal(), io.StringIO()
    d = live.LiveDisplay(out, err)
    d.update(1.25, "a", "b")
    d.notice("warning: x")
    d.update(1.25, "a", "b")  # redrawn after the notice
    d.segment(SegmentResult(0, 1.25, 2.5, "", [], "silence"))  # nothing heard: the line is erased
    d.update(3.0, "a", "b")
    d.segment(SegmentResult(1, 3.0, 65.0, "a b", [], "end"))
    d.segment(SegmentResult(2, 66.0, 70.0, "c", [], "end", truncated=True))
    clear = "\r\033[K"
    assert out.getvalue() == (f"{clear}[00:01.2] a [b]{clear}{clear}[00:01.2] a [b]{clear}{clear}[00:03.0] a [b]"
                              f"{clear}[00:03.0 - 01:05.0] a b\n{clear}[01:06.0 - 01:10.0] c [truncated]\n")
    assert err.getvalue() == "warning: x\n"


# ------------------------------------------------------------------------------ real PortAudio input path
def test_live_from_alsa_file_device_equals_transcribe(rec, tmp_path):
    speech, rate0 = espeak("the quick brown fox jumps over the lazy dog", tmp_path / "a.wav")
    import sounddevice as sd

    with file_capture_device(tmp_path / "alsa", np.zeros(1, np.int16)) as name:
        rate = int(sd.query_devices(name)["default_samplerate"])  # the device's native rate
    pcm = np.round(AF.resample(torch.from_numpy(speech / 32768.0), rate0, rate).numpy() * 32768)
    pcm = np.clip(pcm, -32768, 32767).astype(np.int16)
    saved = io.BytesIO()
    with file_capture_device(tmp_path / "alsa", pcm) as name:
        inputs = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
        assert name in inputs  # the real PortAudio device list
        src = live.MicrophoneSource(name, max_seconds=len(pcm) / rate)
        assert src.samplerate == rate
        with sf.SoundFile(saved, "w", samplerate=rate, channels=1, subtype="PCM_16", format="WAV") as audio_out:
            report = live.run_live(rec, src, audio_out=audio_out)
    saved.seek(0)
    np.testing.assert_array_equal(sf.read(saved, dtype="int16")[0], pcm)  # captured bit-exactly
    assert (report.overflows, report.dropped_s) == (0, 0)
    # the same segments and text as `transcribe` of the same audio
    assert [(s.start_s, s.end_s, s.text) for s in report.segments] == transcribe_segments(rec, pcm, rate)
    assert report.segments and all(s.text for s in report.segments)


def test_cli_live_from_alsa_file_device(rec, tmp_path, monkeypatch, capsys):
    """`speech-llm live` on the real PortAudio path gives the segments `transcribe` gives the same audio,
    with the checkpoint's endpointing options (energy rules here, 0.8 s of quiet ends a segment: the random-weight
    model's writes would not end one by the decoder rules)."""
    a, pcm, rate = two_sentences(tmp_path)
    default = Recognizer(rec.model, rec.tokenizer, DecodeConfig(max_tokens_per_read=3, max_tokens_per_segment=60,
                                                                endpoint=EndpointConfig(mode="energy")))
    monkeypatch.setattr("speech_llm.decoding.recognizer.load_recognizer", lambda *args, **kw: default)
    wav, tsv = tmp_path / "out" / "session.wav", tmp_path / "out" / "session.tsv"
    with file_capture_device(tmp_path / "alsa", pcm) as name:
        rc = main(["live", "--exp-dir", str(tmp_path / "exp"), "--device", name, "--samplerate", str(rate),
                   "--duration", str(len(pcm) / rate), "--save-audio", str(wav), "--save-transcript", str(tsv)])
    assert rc == 0
    out, err = capsys.readouterr()
    np.testing.assert_array_equal(sf.read(wav, dtype="int16")[0], pcm)
    rows = [line.split("\t") for line in tsv.read_text().splitlines()]
    assert len(rows) == 2
    gap_start, gap_end = len(a) / rate, len(a) / rate + 1.5  # sentence b starts near gap_end
    assert float(rows[0][0]) == 0 and gap_start < float(rows[0][1]) <= float(rows[1][0]) < gap_end + 0.1
    assert float(rows[1][1]) == pytest.approx(len(pcm) / rate, abs=1e-3)
    expected = transcribe_segments(default, pcm, rate)
    assert [(f"{s:.3f}", f"{e:.3f}", t) for s, e, t in expected] == [tuple(r) for r in rows]
    for _, _, text in rows:
        assert text and f"] {text}" in out
    assert "done: " in err and f"{name!r} at {rate} Hz" in err


def test_cli_live_on_an_export_dir(rec, tmp_path):
    """`speech-llm live --exp-dir EXPORT` (speech_runtime on onnxruntime, nothing replaced) on the real PortAudio
    path: the segments and text that the torch recognizer of the exported model gives the same audio."""
    from speech_llm.export import export_recognizer

    _, pcm, rate = two_sentences(tmp_path)
    export = export_recognizer(rec, tmp_path / "export")          # its decode config (EP) goes with it
    tsv = tmp_path / "session.tsv"
    with file_capture_device(tmp_path / "alsa", pcm) as name:
        rc = main(["live", "--exp-dir", str(export), "--device", name, "--samplerate", str(rate),
                   "--duration", str(len(pcm) / rate), "--save-transcript", str(tsv)])
    assert rc == 0
    rows = [tuple(line.split("\t")) for line in tsv.read_text().splitlines()]
    expected = transcribe_segments(rec, pcm, rate)
    assert len(rows) >= 2 and rows == [(f"{s:.3f}", f"{e:.3f}", t) for s, e, t in expected]


def two_sentences(tmp_path) -> tuple[np.ndarray, np.ndarray, int]:
    """Two espeak-ng sentences with 1.5 s of silence between: the first one's samples, all samples, the rate."""
    a, rate = espeak("the quick brown fox jumps over the lazy dog", tmp_path / "a.wav")
    b, _ = espeak("turn on the light in the kitchen please", tmp_path / "b.wav")
    return a, np.concatenate([a, np.zeros(int(1.5 * rate), np.int16), b]), rate


def test_decoder_falling_behind_drops_are_counted_and_reported(rec, tmp_path):
    pcm = (bursts(rate=22050) * 32767).astype(np.int16)[:22050 * 3]
    with file_capture_device(tmp_path / "alsa", pcm) as name:
        # The file device delivers 3 s at once; a queue of two blocks must overflow.
        src = live.MicrophoneSource(name, samplerate=22050, max_seconds=3.0, max_backlog_s=0.05)
        report = live.run_live(rec, src)
    assert report.dropped_s > 0 and any("dropped" in n for n in report.notices)
    # Nothing lost silently: decoded + dropped = captured.
    assert round((report.audio_s + report.dropped_s) * 22050) == len(pcm)


# ---------------------------------------------------------------------------------------- device errors
DEVICES = [
    {"index": 0, "name": "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "max_input_channels": 2, "default_samplerate": 48e3},
    {"index": 1, "name": "HDMI 0 (hw:0,3)", "max_input_channels": 0, "default_samplerate": 48e3},
    {"index": 2, "name": "USB Audio Device (hw:1,0)", "max_input_channels": 1, "default_samplerate": 44.1e3},
    {"index": 3, "name": "default", "max_input_channels": 32, "default_samplerate": 44.1e3},
    {"index": 4, "name": "sysdefault", "max_input_channels": 32, "default_samplerate": 44.1e3},
]


def test_find_input_device():
    assert live.find_input_device(None, DEVICES, default_index=3)["index"] == 3
    assert live.find_input_device(None, DEVICES, default_index=-1)["index"] == 0  # no default: first input
    assert live.find_input_device("2", DEVICES)["index"] == 2
    assert live.find_input_device("usb", DEVICES)["index"] == 2
    assert live.find_input_device("DEFAULT", DEVICES)["index"] == 3  # exact name beats substring
    with pytest.raises(live.AudioDeviceError, match=r"--device 1: device 1 has no input channels.*USB Audio"):
        live.find_input_device("1", DEVICES)
    with pytest.raises(live.AudioDeviceError, match="device 9 does not exist"):
        live.find_input_device(9, DEVICES)
    with pytest.raises(live.AudioDeviceError, match="'webcam': no input device has this name"):
        live.find_input_device("webcam", DEVICES)
    with pytest.raises(live.AudioDeviceError, match="ambiguous.*give the index"):
        live.find_input_device("hw:", DEVICES)
    with pytest.raises(live.AudioDeviceError, match="no audio input device found"):
        live.find_input_device(None, [DEVICES[1]])


def test_cli_wrong_device_and_list_devices(tmp_path, capsys):
    with file_capture_device(tmp_path / "alsa", np.zeros(100, np.int16)) as name:
        assert main(["live", "--exp-dir", str(tmp_path), "--device", "no such mic"]) == 2
        err = capsys.readouterr().err
        assert "--device 'no such mic': no input device has this name" in err and name in err
        assert main(["live", "--exp-dir", str(tmp_path), "--device", "7"]) == 2
        assert "device 7 does not exist" in capsys.readouterr().err
        assert main(["live", "--list-devices"]) == 0
        assert name in capsys.readouterr().out
        assert main(["live", "--exp-dir", str(tmp_path), "--save-audio", str(tmp_path / "a.xyz")]) == 2
        assert "--save-audio " in capsys.readouterr().err  # before any model is loaded


def test_cli_no_input_device(tmp_path, capsys):
    """PortAudio with the system ALSA config and no sound card (as on CI machines): no input device."""
    with alsa_config(tmp_path / "alsa"):
        assert main(["live", "--exp-dir", str(tmp_path)]) == 2
        assert "no audio input device found" in capsys.readouterr().err
        assert main(["live", "--list-devices"]) == 0
        assert "no audio devices found" in capsys.readouterr().out


def test_cli_option_errors(tmp_path, capsys):
    assert main(["live"]) == 2
    assert "--exp-dir is required" in capsys.readouterr().err
    assert main(["live", "--exp-dir", str(tmp_path), "--endpoint-silence", "0"]) == 2
    assert "config key 'endpoint.silence_s': must be > 0" in capsys.readouterr().err
    assert main(["live", "--exp-dir", str(tmp_path), "--quantize", "int4"]) == 2
    assert "config key 'quantize': expected one of 'none', 'int8'" in capsys.readouterr().err
