"""Endpointing on onnxruntime (speech_runtime) is the torch Recognizer's: with the decoder rules, energy mode, batch
decoding and prompt context across segments, the same segments (bounds, reasons, text), tokens and word times, for
random block sizes and batched streams. The rules themselves are tested in tests/speech_llm/decoding."""

from __future__ import annotations

import pytest
from runtime_testutil import SHORT_RULES, audio, bounds, endpointed, feed, same, with_pauses

import speech_runtime
from speech_llm.export import export_recognizer

ENERGY = {"mode": "energy", "silence_s": 0.4, "max_segment_s": 1.5}


def pair(torch_rec, export_dir, **settings):
    """The torch recognizer and the runtime one over its export, with these settings (:func:`endpointed`)."""
    ref, overrides = endpointed(torch_rec, **settings)
    return ref, speech_runtime.load_recognizer(export_dir, overrides=overrides, threads=1)


def check(ref, rt, xs, seeds=(1, 2)):
    a, b = feed(ref, xs, seed=seeds[0]), feed(rt, xs, seed=seeds[1])
    same(*a, *b)
    for ra, rb in zip(a[1], b[1]):
        assert bounds(ra) == bounds(rb)
    return a[1]


@pytest.mark.parametrize("seed", [0, 1])
def test_decoder_rules_one_stream_random_blocks(torch_rec, export_dir, seed):
    ref, rt = pair(torch_rec, export_dir, **SHORT_RULES)
    results = check(ref, rt, [with_pauses()], seeds=(seed, seed + 50))
    reasons = {g.reason for g in results[0].segments}
    assert len(results[0].segments) >= 3 and reasons - {"end"}, bounds(results[0])   # the rules did end some


def test_decoder_rules_batched_streams(torch_rec, export_dir):
    ref, rt = pair(torch_rec, export_dir, **SHORT_RULES)
    xs = [with_pauses(), audio(2.3, 0), with_pauses(((0.3, 3.1, 3), (0.5, 0.6, 1)))]
    results = check(ref, rt, xs, seeds=(5, 6))
    assert sum(len(r.segments) for r in results) >= 6


def test_context_words_carry_over(torch_rec, export_dir):
    ref, rt = pair(torch_rec, export_dir, context_words=3, **SHORT_RULES)
    check(ref, rt, [with_pauses()], seeds=(3, 4))


@pytest.mark.parametrize("mode", ["streaming", "batch"])
def test_energy_mode_and_batch_decoding(torch_rec, export_dir, mode):
    ref, rt = pair(torch_rec, export_dir, decode_mode=mode, **ENERGY)
    results = check(ref, rt, [with_pauses(), audio(2.3, 1)], seeds=(7, 8))
    assert {"silence", "max_length"} <= {g.reason for r in results for g in r.segments}


def test_the_exported_endpoint_settings_are_the_default(torch_rec, tmp_path):
    """An export of a recognizer with endpointing on decodes with those settings, overrides not needed."""
    ref, _ = endpointed(torch_rec, **SHORT_RULES)
    rt = speech_runtime.load_recognizer(export_recognizer(ref, tmp_path / "export"), threads=1)
    assert rt.config.endpoint == ref.config.endpoint
    check(ref, rt, [with_pauses()])


def test_endpoint_overrides_are_checked(export_dir):
    from speech_common.errors import ConfigError

    with pytest.raises(ValueError, match="endpoint.silence_z"):
        speech_runtime.load_recognizer(export_dir, overrides=["endpoint.silence_z=0.5"])
    with pytest.raises(ConfigError, match="max_segment_s"):
        speech_runtime.load_recognizer(export_dir, overrides=["endpoint.max_segment_s=0"])
