"""The protocol, message by message (no sockets): start checks, audio frames, options, error codes."""

import json

import numpy as np
import pytest

from speech_llm.config import DecodeConfig
from speech_llm.server.options import client_option_limits
from speech_llm.server.protocol import (
    ERRORS,
    PROTOCOL_VERSION,
    ProtocolError,
    decode_audio,
    parse_message,
    parse_start,
)

LIMITS = client_option_limits(DecodeConfig(max_tokens_per_segment=100))


def start(**kw):
    return {"type": "start", "version": PROTOCOL_VERSION, "sample_rate": 16000, "format": "s16le", **kw}


def code_of(fn, *args) -> str:
    with pytest.raises(ProtocolError) as e:
        fn(*args)
    return e.value.code


def test_a_valid_start():
    s = parse_start(start(channels=2, token="t", label="mic", options={"endpoint.silence_s": 0.5,
                                                                         "max_tokens_per_segment": 50}), LIMITS)
    assert (s.sample_rate, s.format, s.channels, s.token, s.label) == (16000, "s16le", 2, "t", "mic")
    assert s.frame_bytes == 4
    assert s.overrides() == ["endpoint.silence_s=0.5", "max_tokens_per_segment=50"]


@pytest.mark.parametrize("change, code", [
    ({"version": 2}, "unsupported_version"), ({"version": None}, "unsupported_version"),
    ({"format": "mulaw"}, "unsupported_format"), ({"format": None}, "unsupported_format"),
    ({"sample_rate": 100}, "bad_sample_rate"), ({"sample_rate": 16000.0}, "bad_sample_rate"),
    ({"sample_rate": True}, "bad_sample_rate"), ({"channels": 0}, "bad_channels"), ({"channels": 9}, "bad_channels"),
    ({"token": 5}, "bad_message"), ({"options": []}, "bad_message"), ({"label": "x" * 101}, "bad_message"),
    ({"options": {"dtype": "bfloat16"}}, "bad_option"),                  # model-wide: not a client's choice
    ({"options": {"endpoint.enabled": False}}, "bad_option"),           # unbounded segments: no
    ({"options": {"max_tokens_per_segment": 101}}, "bad_option"),       # above the server's cap
    ({"options": {"endpoint.silence_s": "0.5"}}, "bad_option"),
    ({"options": {"endpoint.silence_s": float("nan")}}, "bad_option"),
    ({"options": {"context_words": 1.5}}, "bad_option"), ({"options": {"mode": "fast"}}, "bad_option"),
])
def test_bad_starts_name_the_problem(change, code):
    assert code_of(parse_start, start(**change), LIMITS) == code


def test_text_messages_must_be_json_objects_with_a_type():
    assert parse_message('{"type": "end"}') == {"type": "end"}
    assert code_of(parse_message, "not json") == "bad_json"
    assert code_of(parse_message, "[1, 2]") == "bad_json"
    assert code_of(parse_message, '{"kind": "end"}') == "bad_message"
    assert code_of(parse_message, '{"type": "marker", "id": NaN}') == "bad_json"      # Python's json would take it


def test_audio_frames():
    s16 = parse_start(start(), LIMITS)
    x = np.array([1, -2, 32767, -32768], "<i2")
    np.testing.assert_array_equal(decode_audio(x.tobytes(), s16), x)
    assert code_of(decode_audio, x.tobytes()[:3], s16) == "bad_frame"          # half a sample
    assert code_of(decode_audio, b"", s16) == "bad_frame"
    stereo = parse_start(start(channels=2), LIMITS)
    assert decode_audio(x.tobytes(), stereo).shape == (2, 2)
    assert code_of(decode_audio, x[:3].tobytes(), stereo) == "bad_frame"      # not whole frames
    f32 = parse_start(start(format="f32le"), LIMITS)
    y = np.array([0.5, -1.0, 1.2], "<f4")
    np.testing.assert_array_equal(decode_audio(y.tobytes(), f32), y)
    for bad in (np.nan, np.inf, 1e9):
        assert code_of(decode_audio, np.array([0.0, bad], "<f4").tobytes(), f32) == "bad_audio"


def test_every_error_code_has_a_close_code_in_the_documented_classes():
    assert set(ERRORS.values()) <= {1001, 1003, 1008, 1011, 1013}
    assert ERRORS["server_full"] == 1013 and ERRORS["unsupported_format"] == 1003 and ERRORS["not_started"] == 1008
    with pytest.raises(ValueError):
        ProtocolError("no_such_code", "x")
    assert json.loads(json.dumps({"code": ProtocolError("bad_frame", "m").code})) == {"code": "bad_frame"}
