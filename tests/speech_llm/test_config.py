"""Typed configs: YAML loading, dotted overrides, strict keys and types, round trips."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import torch
import yaml

from speech_common.errors import UserError
from speech_llm.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    config_from_dict,
    config_from_saved,
    config_to_dict,
    from_dict,
    load_config,
    save_config,
    to_dict,
)

CONF = Path(__file__).resolve().parents[2] / "conf"


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


# --- loading --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mini.yaml", "librispeech_qwen2.5_0.5b.yaml"])
def test_shipped_configs_load_with_typed_values(name):
    cfg = load_config(CONF / name)
    assert isinstance(cfg.train.llm.lr, float) and isinstance(cfg.train.ctc.lr, float)  # "1.0e-3" in YAML
    assert isinstance(cfg.encoder.d_model, int)
    assert cfg.streaming.chunk_ms == 640
    assert cfg.encoder.d_model % cfg.encoder.num_heads == 0


def test_realistic_config_values():
    cfg = load_config(CONF / "librispeech_qwen2.5_0.5b.yaml")
    assert (cfg.encoder.d_model, cfg.encoder.num_layers, cfg.encoder.num_heads) == (512, 12, 8)
    assert cfg.llm.path_or_name == "Qwen/Qwen2.5-0.5B-Instruct"
    assert cfg.llm.lora_rank == 16
    assert cfg.llm.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert (cfg.llm.dtype, cfg.train.llm.precision, cfg.train.ctc.precision) == ("bfloat16", "bf16", "bf16")


def test_partial_yaml_keeps_defaults(tmp_path):
    cfg = load_config(write_yaml(tmp_path, "encoder:\n  d_model: 96\n  num_heads: 4\ntrain:\n  llm:\n    lr: 2e-4\n"))
    assert cfg.encoder.d_model == 96
    assert cfg.train.llm.lr == pytest.approx(2e-4)
    assert cfg.train.ctc == ExperimentConfig().train.ctc
    assert cfg.encoder.num_layers == ExperimentConfig().encoder.num_layers
    assert cfg.llm == ExperimentConfig().llm


def test_empty_yaml_and_no_file_give_defaults(tmp_path):
    assert load_config(write_yaml(tmp_path, "")) == ExperimentConfig()
    assert load_config(None) == ExperimentConfig()


# --- overrides ------------------------------------------------------------------------------------------


def test_dotted_overrides_of_nested_typed_fields():
    base = load_config(CONF / "mini.yaml")
    cfg = apply_overrides(base, [
        "train.llm.lr=1e-4",
        "encoder.d_model=256",
        "encoder.dropout=0",
        "train.ctc.spec_augment=false",
        "llm.lora_target_modules=[q_proj, v_proj]",
        "data.cmvn_path=null",
        "ctc.units=bpe",
        "llm.prompt.asr=Transcribe: the audio, please.",
        "data.train_manifest=123",
    ])
    assert cfg.train.llm.lr == pytest.approx(1e-4) and isinstance(cfg.train.llm.lr, float)
    assert cfg.encoder.d_model == 256
    assert cfg.encoder.dropout == 0.0 and isinstance(cfg.encoder.dropout, float)
    assert cfg.train.ctc.spec_augment is False
    assert cfg.llm.lora_target_modules == ["q_proj", "v_proj"]
    assert cfg.data.cmvn_path is None
    assert cfg.ctc.units == "bpe"
    assert cfg.llm.prompt.asr == "Transcribe: the audio, please."  # text fields are not parsed as YAML
    assert cfg.data.train_manifest == "123"
    # the base config is untouched
    assert base.train.llm.lr == pytest.approx(2e-3) and base.encoder.d_model == 144


def test_load_config_applies_overrides_in_order():
    cfg = load_config(CONF / "mini.yaml", ["train.llm.epochs=3", "train.llm.epochs=5", "encoder.num_layers=2"])
    assert cfg.train.llm.epochs == 5
    assert cfg.encoder.num_layers == 2


def test_section_override_merges_into_it():
    cfg = apply_overrides(ExperimentConfig(), ["llm.prompt={asr: Write down what is said.}"])
    assert cfg.llm.prompt.asr == "Write down what is said."
    assert cfg.llm.prompt.st == ExperimentConfig().llm.prompt.st


def test_value_checks_run_after_all_overrides():
    # 480 ms is not a multiple of 4 x 40 ms = 160 ms ... but it is of 3 x 40 ms = 120 ms.
    cfg = apply_overrides(ExperimentConfig(),
                          ["streaming.chunk_ms=480", "decode.chunk_ms=480", "projector.stack=3"])
    assert cfg.streaming.chunk_ms == 480 and cfg.projector.stack == 3


# --- errors: unknown keys, wrong types, bad values --------------------------------------------------------


def test_unknown_key_in_yaml_names_full_key_and_file(tmp_path):
    path = write_yaml(tmp_path, "encoder:\n  d_modle: 256\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "encoder.d_modle" in msg
    assert "did you mean 'encoder.d_model'" in msg
    assert str(path) in msg
    assert info.value.key == "encoder.d_modle"


def test_unknown_section_in_yaml(tmp_path):
    with pytest.raises(ConfigError, match="'trian'.*did you mean 'train'"):
        load_config(write_yaml(tmp_path, "trian:\n  lr: 0.1\n"))


def test_unknown_key_in_override_names_key():
    with pytest.raises(ConfigError) as info:
        load_config(CONF / "mini.yaml", ["train.llm.lr=1e-4", "llm.lora.rank=4"])
    assert info.value.key == "llm.lora"
    assert "override 'llm.lora.rank=4'" in str(info.value)
    with pytest.raises(ConfigError, match="'encoder.extra'"):
        apply_overrides(ExperimentConfig(), ["encoder.extra={foo: 1}"])  # no free-form extras


def test_override_below_a_scalar_is_an_error():
    with pytest.raises(ConfigError, match="'train.ctc.lr' is a float, it has no sub-keys"):
        apply_overrides(ExperimentConfig(), ["train.ctc.lr.x=1"])


def test_override_syntax_error():
    with pytest.raises(ConfigError, match="not of the form dotted.key=value"):
        apply_overrides(ExperimentConfig(), ["train.ctc.lr"])


@pytest.mark.parametrize("yaml_text, key, expected", [
    ("encoder:\n  num_layers: four\n", "encoder.num_layers", "expected int, got str 'four'"),
    ("encoder:\n  num_layers: 4.5\n", "encoder.num_layers", "expected int, got float"),
    ("encoder:\n  num_layers: true\n", "encoder.num_layers", "expected int, got bool"),
    ("train:\n  llm:\n    lr: fast\n", "train.llm.lr", "expected float"),
    ("train:\n  ctc:\n    spec_augment: 1\n", "train.ctc.spec_augment", "expected bool, got int"),
    ("train:\n  lr: 1e-3\n", "train.lr", "unknown key"),             # the sections are per stage
    ("ctc:\n  units: word\n", "ctc.units", "expected one of 'char', 'bpe'"),
    ("llm:\n  lora_target_modules: q_proj\n", "llm.lora_target_modules", "expected list[str]"),
    ("llm:\n  lora_target_modules: [q_proj, 3]\n", "llm.lora_target_modules[1]", "expected str, got int"),
    ("data:\n  cmvn_path: 5\n", "data.cmvn_path", "expected str or None"),
    ("llm:\n  prompt: hello\n", "llm.prompt", "expected a mapping for PromptConfig"),
])
def test_wrong_type_in_yaml_names_key_and_type(tmp_path, yaml_text, key, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write_yaml(tmp_path, yaml_text))
    assert info.value.key == key
    assert f"'{key}'" in str(info.value)
    assert expected in str(info.value)


def test_wrong_type_in_override_names_key_and_type():
    with pytest.raises(ConfigError) as info:
        apply_overrides(ExperimentConfig(), ["train.ctc.spec_augment=maybe"])
    assert "'train.ctc.spec_augment'" in str(info.value) and "expected bool" in str(info.value)
    assert "override 'train.ctc.spec_augment=maybe'" in str(info.value)


@pytest.mark.parametrize("override, key", [
    ("encoder.num_heads=5", "encoder.d_model"),          # 144 % 5
    ("encoder.num_layers=0", "encoder.num_layers"),
    ("streaming.batch_mode_share=1.5", "streaming.batch_mode_share"),
    ("streaming.chunk_ms=600", "streaming.chunk_ms"),     # not a whole number of 160 ms LLM tokens
    ("train.llm.lr=0", "train.llm.lr"),
    ("train.mt.k=[0, 2]", "train.mt.k"),
])
def test_bad_values_name_the_key_and_the_override(override, key):
    with pytest.raises(ConfigError) as info:
        apply_overrides(ExperimentConfig(), ["train.llm.epochs=2", override])
    assert info.value.key == key
    assert str(info.value).startswith(f"override {override!r}: config key '{key}'")


def test_bad_value_in_yaml_names_key_and_file(tmp_path):
    path = write_yaml(tmp_path, "encoder:\n  dropout: 1.5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: config key 'encoder.dropout': must be in [0, 1)")


def test_config_error_is_a_user_error(tmp_path):
    assert issubclass(ConfigError, UserError)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write_yaml(tmp_path, "encoder: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write_yaml(tmp_path, "- a\n- b\n"))


# --- round trips ----------------------------------------------------------------------------------------


def non_default_config() -> ExperimentConfig:
    return load_config(CONF / "mini.yaml", [
        "train.llm.lr=3e-4", "llm.lora_target_modules=[q_proj]", "data.cmvn_path=null",
        "llm.prompt.st=Traduis: « l'audio »", "decode.mode=batch", "encoder.left_chunks=4",
    ])


def test_dict_round_trip_is_identical_and_plain():
    cfg = non_default_config()
    d = config_to_dict(cfg)
    assert config_from_dict(d) == cfg
    assert d["llm"]["prompt"]["st"] == "Traduis: « l'audio »"
    assert type(d["encoder"]) is dict and type(d["llm"]["lora_target_modules"]) is list
    assert yaml.safe_load(yaml.safe_dump(d)) == d  # plain types only


def test_dict_survives_a_weights_only_checkpoint(tmp_path):
    cfg = non_default_config()
    torch.save({"config": config_to_dict(cfg)}, tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert config_from_dict(state["config"]) == cfg


def test_yaml_round_trip_is_identical(tmp_path):
    cfg = non_default_config()
    save_config(cfg, tmp_path / "exp" / "config.yaml")
    assert load_config(tmp_path / "exp" / "config.yaml") == cfg
    # and the saved file lists every key, in schema order
    saved = yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())
    assert list(saved) == ["encoder", "ctc", "projector", "llm", "streaming", "train", "data", "decode"]
    assert list(saved["encoder"])[:3] == ["name", "path_or_name", "adapt"]


def test_config_from_dict_rejects_unknown_keys():
    d = config_to_dict(ExperimentConfig())
    d["projector"]["stak"] = 2
    with pytest.raises(ConfigError, match="'projector.stak'"):
        config_from_dict(d)


# --- the generic machinery on another dataclass tree ----------------------------------------------------


@dataclass
class Inner:
    k: Literal[1, 2] = 1
    tags: dict[str, int] = field(default_factory=dict)


@dataclass
class Outer:
    x: float = 0.5
    inner: Optional[Inner] = None
    names: list[str] = field(default_factory=lambda: ["a"])


def test_generic_from_dict_and_to_dict():
    obj = from_dict(Outer, {"x": 2, "inner": {"k": 2, "tags": {"a": 1}}})
    assert obj == Outer(x=2.0, inner=Inner(k=2, tags={"a": 1}))
    assert isinstance(obj.x, float)
    assert from_dict(Outer, to_dict(obj)) == obj
    assert from_dict(Outer, {"inner": None}).inner is None
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, {"inner": {"tags": {"a": "one"}}})
    assert info.value.key == "inner.tags.a"
    with pytest.raises(ConfigError, match="'inner.k': expected one of 1, 2"):
        from_dict(Outer, {"inner": {"k": 3}})


def test_generic_overrides_into_dict_and_optional_section():
    obj = apply_overrides(Outer(), ["inner.tags.b=7", "inner.k=2"])
    assert obj.inner == Inner(k=2, tags={"b": 7})
    assert apply_overrides(obj, ["inner=null"]).inner is None


def test_endpoint_rules_are_checked_and_old_checkpoint_sections_still_load():
    """decode.endpoint: the decoder rules' defaults, strict values; a decode section saved before the rules
    existed (no mode, no rule keys) loads with the decoder rules."""
    ep = load_config(None).decode.endpoint
    assert (ep.mode, ep.rule1_silence_s, ep.rule2_silence_s, ep.max_segment_s) == ("decoder", 2.4, 1.2, 20.0)
    assert load_config(None, ["decode.endpoint.rule2_silence_s=0.6"]).decode.endpoint.rule2_silence_s == 0.6
    with pytest.raises(ConfigError, match="rule1_silence_s"):
        load_config(None, ["decode.endpoint.rule1_silence_s=0"])
    with pytest.raises(ConfigError, match="endpoint.mode"):
        load_config(None, ["decode.endpoint.mode=vad"])
    old = config_to_dict(ExperimentConfig())
    for key in ("mode", "rule1_silence_s", "rule2_silence_s"):
        del old["decode"]["endpoint"][key]
    assert config_from_dict(old).decode.endpoint == ExperimentConfig().decode.endpoint
    assert ep.energy_ends("batch") and not ep.energy_ends("streaming")


# --- the chunk has one unit (ms): encoder.chunk_size is gone ---------------------------------------------


def _saved_with_chunk_size(frames, subsampling=4, chunk_ms=640):
    old = config_to_dict(ExperimentConfig())
    old["encoder"].update(chunk_size=frames, subsampling=subsampling)
    if chunk_ms is None:
        del old["streaming"]["chunk_ms"]
    else:
        old["streaming"]["chunk_ms"] = chunk_ms
    return old


def test_a_saved_config_with_the_old_chunk_size_loads_with_one_warning_line(caplog):
    """A checkpoint's config.yaml from before: encoder.chunk_size that equals streaming.chunk_ms is dropped
    (16 x 40 ms; Whisper's 32 x 20 ms), and one without streaming.chunk_ms takes it from chunk_size."""
    with caplog.at_level("WARNING", logger="speech_llm.config"):
        cfg = config_from_saved(_saved_with_chunk_size(16), "exp/x/llm/best/config.yaml")
    assert cfg == ExperimentConfig()
    (line,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and "exp/x/llm/best/config.yaml" in line and "encoder.chunk_size=16" in line
    assert config_from_saved(_saved_with_chunk_size(32, subsampling=2)).encoder.subsampling == 2
    assert config_from_saved(_saved_with_chunk_size(8, chunk_ms=None)).streaming.chunk_ms == 320
    assert config_from_saved(config_to_dict(ExperimentConfig())) == ExperimentConfig()  # new style: as is


def test_a_saved_config_whose_chunk_size_contradicts_chunk_ms_is_refused():
    """conf/librispeech_tiny_test.yaml had chunk_size 4 (160 ms) beside chunk_ms 320."""
    with pytest.raises(ConfigError, match=r"encoder.chunk_size.*160 ms disagrees with streaming.chunk_ms=320") as e:
        config_from_saved(_saved_with_chunk_size(4, chunk_ms=320), "exp/t/ctc/last/config.yaml")
    assert "exp/t/ctc/last/config.yaml" in str(e.value)


def test_the_removed_chunk_size_in_a_users_yaml_or_override_says_to_use_chunk_ms(tmp_path):
    with pytest.raises(ConfigError, match=r"'encoder.chunk_size': this key was removed: .*streaming.chunk_ms"):
        load_config(write_yaml(tmp_path, "encoder:\n  chunk_size: 16\n"))
    with pytest.raises(ConfigError, match=r"override 'encoder.chunk_size=16'.*removed.*streaming.chunk_ms"):
        load_config(None, ["encoder.chunk_size=16"])
    with pytest.raises(ConfigError, match="removed"):  # a plain dict is a user's config too: no migration
        config_from_dict(_saved_with_chunk_size(16))
