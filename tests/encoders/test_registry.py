"""Encoder registry.

Imports go through ``encoders.registry``: under a plain ``pytest`` run, ``tests/`` is on sys.path and the
top-level name ``encoders`` can resolve to the test folder ``tests/encoders`` (a namespace package).
"""

import importlib.util
from pathlib import Path

import pytest
import torch

from encoders import registry
from encoders.conformer import ConformerEncoder
from encoders.registry import build_encoder, list_encoders, register_encoder
from speech_common.errors import UserError


def test_build_conformer_by_name():
    enc = build_encoder("conformer", input_dim=80, d_model=32, num_layers=2, num_heads=4, subsampling=6)
    assert isinstance(enc, ConformerEncoder)
    assert enc.output_dim == 32 and enc.subsampling_rate == 6
    out, lens = enc.eval()(torch.randn(1, 60, 80), torch.tensor([60]))
    assert out.shape == (1, int(lens[0]), 32)
    assert "conformer" in list_encoders()


def test_unknown_name_and_keys_are_user_errors():
    with pytest.raises(UserError, match="unknown encoder 'zipformer'.*conformer"):
        build_encoder("zipformer", input_dim=80)
    with pytest.raises(UserError, match="unknown config key.*d_modle.*accepted: input_dim"):
        build_encoder("conformer", input_dim=80, d_modle=32, num_layers=2, num_heads=4)
    with pytest.raises(UserError, match="num_heads"):
        build_encoder("conformer", input_dim=80, d_model=32, num_layers=2)
    with pytest.raises(ValueError, match="already registered"):
        register_encoder("conformer", ConformerEncoder)


def test_package_reexports_build_encoder():
    init = Path(registry.__file__).with_name("__init__.py")
    spec = importlib.util.spec_from_file_location("_encoders_init_check", init)
    package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)
    assert package.build_encoder is build_encoder
    assert package.list_encoders is list_encoders
