"""Live transcription: endpointing, the decoding loop, the real PortAudio input path (an ALSA file-backed
capture device, see alsa_file_device.py), Ctrl-C, bounded memory, device errors and the CLI.

The recognizer is the tiny random-weight SpeechLLM: its text is arbitrary but deterministic, which is all
the equivalence tests (live == streaming the same samples through the recognizer) need."""

import gc
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
from tiny_speech_llm import make_speech_llm

from encoders.constants import SAMPLE_RATE
from speech_llm import live
from speech_llm.cli import main
from speech_llm.recognizer import DecodeOptions, Recognizer, Stream

FRAME = SAMPLE_RATE // 40       # 25 ms endpointing frame at 16 kHz
EP = live.EndpointConfig(silence_s=0.8, max_segment_s=3.0, threshold_db=-40.0, preroll_s=0.3)
# (silence before, speech) in seconds; all multiples of 25 ms so burst edges fall on the frame grid.
LAYOUT = [(1.0, 1.5), (1.2, 1.8), (2.0, 4.5), (1.0, 0.0)]
# What EP must cut LAYOUT into: (start_s, end_s, reason).
EXPECTED = [(0.7, 3.3, "silence"), (3.4, 6.3, "silence"), (7.2, 10.2, "max_length"), (10.2, 12.8, "silence")]


def expected_samples(rate=SAMPLE_RATE) -> list[tuple[int, int, str]]:
    return [(round(s * rate), round(e * rate), r) for s, e, r in EXPECTED]


def bursts(layout=LAYOUT, rate=SAMPLE_RATE, seed=0) -> np.ndarray:
    """Chirp + noise bursts ("speech", about -13 dBFS) between stretches of -70 dBFS noise ("silence")."""
    rng = np.random.default_rng(seed)
    parts = []
    for silence, speech in layout:
        parts.append(3e-4 * rng.standard_normal(round(silence * rate)))
        t = np.arange(round(speech * rate)) / rate
        parts.append(0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.05 * rng.standard_normal(len(t)))
    return np.concatenate(parts).astype(np.float32)


def espeak(text: str, path: Path) -> tuple[np.ndarray, int]:
    """Synthetic speech from espeak-ng: int16 samples (N,) and their rate."""
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    samples, rate = sf.read(path, dtype="int16")
    return samples, rate


def reference_text(rec: Recognizer, samples, rate: int) -> str:
    """What `transcribe` writes for these samples: chunk-sized blocks, decode after each, then finish."""
    s = rec.create_stream()
    block = max(1, int(rate * rec.chunk_s))
    for i in range(0, len(samples), block):
        s.accept_waveform(rate, samples[i:i + block])
        rec.decode(s)
    s.input_finished()
    rec.decode(s)
    return rec.get_result(s).text


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The tiny model runs much faster on one thread (and is not slowed down by a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def rec(tiny_llm_dir):
    model, tok = make_speech_llm(tiny_llm_dir)
    return Recognizer(model, tok, DecodeOptions(max_tokens_per_read=3, max_total_tokens=60))


# ------------------------------------------------------------------------------------------- endpointing
def segments_of(ep: live.Endpointer, x: np.ndarray, sizes) -> list[tuple[int, int, str, np.ndarray]]:
    """Run the endpointer over x in blocks of the given sizes; collect (start, end, reason, audio)."""
    events, pos = [], 0
    for n in sizes:
        events += ep.process(x[pos:pos + n])
        pos += n
    events += ep.flush()
    segs, audio = [], []
    for ev in events:
        if ev[0] == "start":
            start, audio = ev[1], []
        elif ev[0] == "audio":
            audio.append(ev[1])
        else:
            assert ev[1] == start + sum(map(len, audio))  # the audio of a segment is contiguous
            segs.append((start, ev[1], ev[2], np.concatenate(audio)))
    return segs


def test_endpointer_cuts_after_silence_and_at_max_length():
    x = bursts()
    segs = segments_of(live.Endpointer(EP, SAMPLE_RATE), x, [len(x)])
    assert [s[:3] for s in segs] == expected_samples()
    for start, end, _, audio in segs:
        np.testing.assert_array_equal(audio, x[start:end])  # exactly the session samples, nothing lost


def test_endpointer_does_not_depend_on_block_sizes():
    x = bursts()
    whole = segments_of(live.Endpointer(EP, SAMPLE_RATE), x, [len(x)])
    sizes = np.random.default_rng(1).integers(1, 3000, size=len(x) // 1000).tolist()
    assert sum(sizes) >= len(x)
    blocks = segments_of(live.Endpointer(EP, SAMPLE_RATE), x, sizes)
    assert [s[:3] for s in blocks] == [s[:3] for s in whole]
    for a, b in zip(blocks, whole):
        np.testing.assert_array_equal(a[3], b[3])


def test_endpointer_input_end_closes_the_open_segment():
    x = bursts([(0.5, 1.0)])[:-7]  # speech to the very end, which is not on the frame grid
    segs = segments_of(live.Endpointer(EP, SAMPLE_RATE), x, [len(x)])  # the last partial frame waits for flush
    assert [s[:3] for s in segs] == [(round(0.2 * SAMPLE_RATE), len(x), "end")]
    silent = segments_of(live.Endpointer(EP, SAMPLE_RATE), np.zeros(SAMPLE_RATE, np.float32), [SAMPLE_RATE])
    assert silent == []  # no speech, no segment (digital silence is -inf dBFS)


def test_frame_levels_db():
    full_sine = np.sin(2 * np.pi * np.arange(FRAME * 4) / 40).reshape(4, FRAME)
    np.testing.assert_allclose(live.frame_levels_db(full_sine), 20 * np.log10(np.sqrt(0.5)), atol=1e-6)
    assert live.frame_levels_db(np.zeros((1, FRAME)))[0] == -np.inf


# ------------------------------------------------------------------------------------------ decoding loop
def test_live_segments_equal_transcribing_each_segment(rec):
    x = bursts()
    out = io.StringIO()
    tsv = io.StringIO()
    report = live.run_live(rec, live.ArraySource(x, SAMPLE_RATE, block_ms=37), EP, live.LiveDisplay(out, out),
                           transcript_out=tsv)
    assert [(s.start_sample, s.end_sample, s.reason) for s in report.segments] == expected_samples()
    assert sum(bool(s.text) for s in report.segments) >= 3
    for seg in report.segments:
        assert seg.text == reference_text(rec, x[seg.start_sample:seg.end_sample], SAMPLE_RATE)
        # word times are session times, inside the segment
        assert all(seg.start_s < w.audio_s <= seg.end_s + 1e-6 for w in seg.words)
    assert not report.interrupted and report.audio_s == pytest.approx(len(x) / SAMPLE_RATE)
    shown = out.getvalue().splitlines()
    finals = [f"[{live.format_time(s.start_s)} - {live.format_time(s.end_s)}] {s.text}"
              for s in report.segments if s.text]
    assert [line for line in shown if " - " in line.split("]")[0]] == finals
    assert len(shown) > len(finals)  # partial results were shown while each segment grew
    assert tsv.getvalue() == "".join(f"{s.start_s:.3f}\t{s.end_s:.3f}\t{s.text}\n"
                                     for s in report.segments if s.text)


def test_memory_stays_bounded_over_five_minutes_of_looped_input(tiny_llm_dir):
    """~300 s of audio through the loop (as fast as it decodes): every segment gets a fresh context.
    A 640 ms chunk and short writes keep it fast."""
    model, tok = make_speech_llm(tiny_llm_dir, chunk_frames=16)
    rec = Recognizer(model, tok, DecodeOptions(max_tokens_per_read=2, max_total_tokens=16))
    clip = bursts()
    repeat = 24
    tr = None
    kv_max, samples = 0, []

    def on_update(start_s, result):
        nonlocal kv_max
        kv_max = max(kv_max, tr.stream.session.num_forwarded if tr.stream.session else 0)

    def on_segment(seg):
        if seg.index % 10 == 0:
            gc.collect()
            objs = gc.get_objects()
            types = [type(o) for o in objs]  # type(), not isinstance(): no deprecated-attribute warnings
            samples.append((types.count(Stream), sum(issubclass(t, torch.Tensor) for t in types), _rss_mb()))

    tr = live.LiveTranscriber(rec, SAMPLE_RATE, EP, on_update, on_segment)
    for block in live.ArraySource(clip, SAMPLE_RATE, block_ms=100, repeat=repeat).blocks():
        tr.accept(block)
    tr.finish()
    assert tr.num_samples / SAMPLE_RATE >= 300
    assert len(tr.segments) == 4 * repeat
    assert all(streams == 0 for streams, _, _ in samples)  # finished segments release their stream
    tensors = [t for _, t, _ in samples]
    assert max(tensors[1:]) <= tensors[1] + 20, tensors
    rss = [r for _, _, r in samples]
    assert max(rss[2:]) - rss[1] < 40, rss  # MB; a leak of the segments' audio or caches would grow it
    m = rec.model
    tokens_per_segment = int(np.ceil(EP.max_segment_s / rec.token_s)) + rec.tokens_per_chunk + 2
    bound = len(m.tokens.prompt_ids) + tokens_per_segment + len(m.tokens.end_ids) + rec.options.max_total_tokens
    assert 0 < kv_max <= bound  # the KV cache never holds more than one segment


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


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
def test_ctrl_c_finalises_the_open_segment(rec, how):
    x = bursts()
    src = InterruptingSource(x, SAMPLE_RATE, after=100, how=how)  # 5.0 s: inside the second segment
    out = io.StringIO()
    report = live.run_live(rec, src, EP, live.LiveDisplay(out, out))
    assert report.interrupted
    heard = src.block * (101 if how == "signal" else 100)  # a signal stops after the block it came in
    assert report.audio_s * SAMPLE_RATE == heard
    last = report.segments[-1]
    assert (len(report.segments), last.reason, last.end_sample) == (2, "end", heard)
    assert last.text and last.text == reference_text(rec, x[last.start_sample:heard], SAMPLE_RATE)
    assert out.getvalue().splitlines()[-1].endswith("] " + last.text)  # printed as final
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_second_ctrl_c_quits_at_once(rec):
    src = InterruptingSource(bursts(), SAMPLE_RATE, after=30, how="signal", times=2)
    with pytest.raises(KeyboardInterrupt):
        live.run_live(rec, src, EP)


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_display_on_a_terminal_updates_in_place():
    out, err = FakeTerminal(), io.StringIO()
    d = live.LiveDisplay(out, err)
    r = live.Result(text="a b", committed="a", partial="b", words=[], finished=False)
    d.update(1.25, r)
    d.notice("warning: x")
    d.update(1.25, r)  # redrawn after the notice
    d.segment(live.Segment(0, 1.25, 2.5, "", [], "silence", 0, 0))  # nothing heard: the line is erased
    d.update(3.0, r)
    d.segment(live.Segment(1, 3.0, 65.0, "a b", [], "end", 0, 0))
    clear = "\r\033[K"
    assert out.getvalue() == (f"{clear}[00:01.2] a [b]{clear}{clear}[00:01.2] a [b]{clear}{clear}[00:03.0] a [b]"
                              f"{clear}[00:03.0 - 01:05.0] a b\n")
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
            report = live.run_live(rec, src, live.EndpointConfig(silence_s=2.0), audio_out=audio_out)
    saved.seek(0)
    np.testing.assert_array_equal(sf.read(saved, dtype="int16")[0], pcm)  # captured bit-exactly
    assert (report.overflows, report.dropped_s) == (0, 0)
    [seg] = report.segments
    assert (seg.start_sample, seg.end_sample, seg.reason) == (0, len(pcm), "end")
    assert seg.text and seg.text == reference_text(rec, pcm, rate)


def test_cli_live_from_alsa_file_device(rec, tmp_path, monkeypatch, capsys):
    a, rate = espeak("the quick brown fox jumps over the lazy dog", tmp_path / "a.wav")
    b, _ = espeak("turn on the light in the kitchen please", tmp_path / "b.wav")
    pcm = np.concatenate([a, np.zeros(int(1.5 * rate), np.int16), b])
    monkeypatch.setattr("speech_llm.recognizer.load_recognizer", lambda *args, **kw: rec)
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
    for start, end, text in rows:
        piece = pcm[round(float(start) * rate):round(float(end) * rate)]
        assert text and text == reference_text(rec, piece, rate)
        assert f"] {text}" in out
    assert "done: " in err and f"{name!r} at {rate} Hz" in err


def test_decoder_falling_behind_drops_are_counted_and_reported(rec, tmp_path):
    pcm = (bursts(rate=22050) * 32767).astype(np.int16)[:22050 * 3]
    with file_capture_device(tmp_path / "alsa", pcm) as name:
        # The file device delivers 3 s at once; a queue of two blocks must overflow.
        src = live.MicrophoneSource(name, samplerate=22050, max_seconds=3.0, max_backlog_s=0.05)
        report = live.run_live(rec, src, EP)
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
    assert "endpoint silence must be > 0" in capsys.readouterr().err
