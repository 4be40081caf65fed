"""Typed experiment configs: YAML files loaded into nested dataclasses, with dotted overrides.

Usage:
    from speech_llm.config import load_config, save_config
    cfg = load_config("conf/mini.yaml", ["train.lr=1e-4", "encoder.num_layers=2"])
    cfg.encoder.d_model                      # typed attribute access
    save_config(cfg, "exp/mini/config.yaml") # the resolved config, loadable again
    state = {"config": config_to_dict(cfg)}  # plain dict, to store inside a checkpoint
    cfg2 = config_from_dict(state["config"]) # == cfg

Rules (nanoGPT's GPTConfig / HF configs, made strict):
- Every key in the YAML file or in an override must be a field of the schema; an unknown key is an
  error naming the full dotted key (``encoder.d_modle``) and suggesting the closest known one.
- Values are checked against the field's type annotation (int, float, str, bool, ``Optional[...]``,
  ``list[...]``, ``dict[...]``, ``Literal[...]``, nested dataclasses); a mismatch is an error naming the
  dotted key and the expected type. Ints are accepted for floats; bools are never accepted for numbers.
  Strings such as ``1e-4`` (which YAML 1.1 reads as text) are accepted for float fields.
- An override is ``dotted.key=value``; the value is parsed with ``yaml.safe_load`` (so ``[a, b]``,
  ``true``, ``null`` work), except for string fields, which take the text as is
  (``llm.prompt.asr=Transcribe: the audio``).
- Missing keys take the dataclass defaults, which describe a tiny CPU setup.

The generic machinery (:func:`from_dict`, :func:`to_dict`, :func:`apply_overrides`) works for any
dataclass tree; the project's schema is :class:`ExperimentConfig`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, TypeVar, Union

import yaml

from encoders.constants import FRAME_SHIFT_MS, NUM_MEL_BINS
from speech_llm.errors import UserError

T = TypeVar("T")


class ConfigError(UserError):
    """A bad config key or value. ``key`` is the full dotted key; ``source`` the file or override at fault."""

    def __init__(self, key: str | None, problem: str, source: str | None = None):
        self.key = key
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        what = f"config key '{key}': " if key else "config: "
        super().__init__(f"{where}{what}{problem}")

    def under(self, prefix: str) -> ConfigError:
        """The same error with ``prefix.`` put in front of its key."""
        key = _join(prefix, self.key) if self.key else prefix
        return ConfigError(key, self.problem, self.source)

    def from_source(self, source: str) -> ConfigError:
        return ConfigError(self.key, self.problem, source)


# ---------------------------------------------------------------------------------------------------
# Generic machinery: any dataclass tree
# ---------------------------------------------------------------------------------------------------


def _join(prefix: str, key: str) -> str:
    if not prefix:
        return key
    return f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"


def _hints(cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _is_optional(tp: Any) -> bool:
    return _is_union(tp) and type(None) in typing.get_args(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def type_name(tp: Any) -> str:
    """A readable name for a type annotation: ``int``, ``list[str]``, ``one of 'char', 'bpe'``."""
    if tp is type(None):
        return "None"
    if tp is Any:
        return "any value"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if _is_union(tp):
        return " or ".join(type_name(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]" if args else origin.__name__
    if dataclasses.is_dataclass(tp):
        return f"a mapping for {tp.__name__}"
    return getattr(tp, "__name__", str(tp))


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _mismatch(key: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(key, f"expected {type_name(tp)}, got {_describe(value)}")


def _coerce(value: Any, tp: Any, key: str, validate: bool = True) -> Any:
    """``value`` checked (and, where harmless, converted) against annotation ``tp``; ``key`` names it."""
    if tp is Any:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _mismatch(key, tp, value)
        return from_dict(tp, value, prefix=key, validate=validate)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _mismatch(key, tp, value)
    if _is_union(tp):
        if value is None:
            if type(None) in args:
                return None
            raise _mismatch(key, tp, value)
        errors = []
        for arm in args:
            if arm is type(None):
                continue
            try:
                return _coerce(value, arm, key, validate)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1 and errors[0].key != key:  # Optional[Section]: the inner error is more precise
            raise errors[0]
        raise _mismatch(key, tp, value)
    if origin is list:
        if not isinstance(value, list):
            raise _mismatch(key, tp, value)
        (item_tp,) = args or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]", validate) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _mismatch(key, tp, value)
        key_tp, val_tp = args or (Any, Any)
        return {_coerce(k, key_tp, _join(key, f"<key {k!r}>")):
                _coerce(v, val_tp, _join(key, str(k)), validate) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _mismatch(key, tp, value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _mismatch(key, tp, value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as text
            try:
                return float(value)
            except ValueError:
                pass
        raise _mismatch(key, tp, value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _mismatch(key, tp, value)
    raise ConfigError(key, f"the schema uses an unsupported type {type_name(tp)}")


def _unknown_key(cls: type, key: str, prefix: str) -> ConfigError:
    known = list(_hints(cls))
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{_join(prefix, close[0])}'?)" if close else ""
    where = f"'{prefix}'" if prefix else "the top level"
    return ConfigError(_join(prefix, key), f"unknown key{hint}; known keys in {where}: {', '.join(known)}")


def from_dict(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "", validate: bool = True) -> T:
    """Build dataclass ``cls`` from a (nested) mapping, strictly; missing keys take the defaults.

    Raises :class:`ConfigError` naming the full dotted key (``prefix`` + field) on an unknown key, a
    value of the wrong type, or (when ``validate``) a value rejected by a dataclass's own ``validate()``.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _mismatch(prefix or "<top level>", cls, data)
    hints = _hints(cls)
    kwargs = {}
    for key, value in data.items():
        if not isinstance(key, str) or key not in hints:
            raise _unknown_key(cls, str(key), prefix)
        kwargs[key] = _coerce(value, hints[key], _join(prefix, key), validate)
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if validate and callable(check):
        try:
            check()
        except ConfigError as e:
            if prefix:
                raise e.under(prefix) from None
            raise
    return obj


def to_dict(obj: Any) -> Any:
    """A dataclass tree as plain dicts/lists/scalars (YAML- and ``torch.save``-safe), in field order."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def field_type(cls: type, dotted: str) -> Any:
    """The annotation of field ``dotted`` (``encoder.d_model``) inside dataclass ``cls``.

    Walks nested dataclasses and ``dict[str, X]`` fields (any key is valid inside a dict).
    Raises :class:`ConfigError` naming the key if a part of the path does not exist.
    """
    tp: Any = cls
    prefix = ""
    for part in dotted.split("."):
        if not part:
            raise ConfigError(dotted, "empty part in dotted key")
        while _is_optional(tp):  # Optional[Section] -> Section
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        if dataclasses.is_dataclass(tp):
            hints = _hints(tp)
            if part not in hints:
                raise _unknown_key(tp, part, prefix)
            tp = hints[part]
        elif typing.get_origin(tp) is dict:
            tp = (typing.get_args(tp) or (Any, Any))[1]
        else:
            raise ConfigError(_join(prefix, part), f"'{prefix}' is a {type_name(tp)}, it has no sub-keys")
        prefix = _join(prefix, part)
    return tp


def _takes_text(tp: Any) -> bool:
    """Whether an override value for ``tp`` is taken as raw text rather than parsed as YAML."""
    if tp is str:
        return True
    if _is_union(tp):
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        return arms == [str]
    return False


_NULL_TEXT = ("null", "~", "None", "none", "")


def parse_override(cls: type, text: str) -> tuple[str, Any]:
    """``"train.lr=1e-4"`` -> ``("train.lr", <value>)``: the key checked against ``cls``, the value parsed.

    String fields take the text after ``=`` verbatim (``Optional[str]`` fields read ``null``/``None``
    as None); every other field parses it with ``yaml.safe_load``. Types are checked later, by
    :func:`from_dict`.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(None, f"override {text!r} is not of the form dotted.key=value")
    tp = field_type(cls, key)
    if _takes_text(tp):
        if tp is not str and raw.strip() in _NULL_TEXT:
            return key, None
        return key, raw
    if _is_optional(tp) and raw.strip() == "None":
        return key, None
    try:
        return key, yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ConfigError(key, f"cannot parse value {raw!r} as YAML: {e}") from None


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def apply_overrides(cfg: T, overrides: Iterable[str], source: str | None = None) -> T:
    """A new config: ``cfg`` with each ``dotted.key=value`` applied in order (``cfg`` is not changed).

    Setting a section to a mapping (``llm.prompt={asr: Transcribe.}``) merges into it key by key.
    Unknown keys and type errors name the override at fault; value checks (``validate()``) run once
    all overrides are in, and name the last override of the key (or of its section) at fault, else
    ``source`` (the file the config came from) and all overrides.
    """
    cls = type(cfg)
    tree = to_dict(cfg)
    applied: list[tuple[str, str]] = []
    for text in overrides:
        try:
            key, value = parse_override(cls, text)
            _set_dotted(tree, key, _merge(_get_dotted(tree, key), value))
            from_dict(cls, tree, validate=False)  # type-check now, so the error names this override
        except ConfigError as e:
            raise e.from_source(f"override {text!r}") from None
        applied.append((key, text))
    try:
        return from_dict(cls, tree)
    except ConfigError as e:
        raise e.from_source(_blame(e.key, applied, source)) from None


def _blame(bad_key: str | None, applied: list[tuple[str, str]], source: str | None) -> str:
    """Where a value error comes from: the last override of that key (or of its section), else the file."""
    def inside(x: str, y: str) -> bool:
        return x == y or x.startswith(y + ".") or x.startswith(y + "[")

    if bad_key:
        section = bad_key.rpartition(".")[0]
        for related in (lambda k: inside(k, bad_key) or inside(bad_key, k),
                        lambda k: bool(section) and k.rpartition(".")[0] == section):
            culprits = [text for key, text in applied if related(key)]
            if culprits:
                return f"override {culprits[-1]!r}"
    where = source or "config"
    if applied:
        where += " with overrides " + " ".join(repr(text) for _, text in applied)
    return where


def _get_dotted(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _merge(old: Any, new: Any) -> Any:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        merged = dict(old)
        for k, v in new.items():
            merged[k] = _merge(old.get(k), v)
        return merged
    return new


def dump_yaml(obj: Any) -> str:
    """A dataclass tree as YAML text (field order kept)."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False, allow_unicode=True, default_flow_style=False)


# ---------------------------------------------------------------------------------------------------
# The project's schema
# ---------------------------------------------------------------------------------------------------


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)


@dataclass
class EncoderConfig:
    """The chunked streaming encoder (a registry name plus its sizes); no free-form extras."""

    name: str = "conformer"
    input_dim: int = NUM_MEL_BINS
    """Feature dimension (fbank bins)."""
    d_model: int = 144
    num_layers: int = 4
    num_heads: int = 4
    ffn_dim: int = 576
    conv_kernel: int = 15
    """Depthwise (causal) convolution kernel size."""
    subsampling: int = 4
    """Frame-rate reduction of the input layer: 10 ms fbank frames -> 40 ms encoder frames at 4."""
    dropout: float = 0.1
    chunk_size: int = 16
    """Attention chunk in encoder frames (after subsampling) for decoding and for static-chunk training."""
    left_chunks: int = -1
    """Chunks of left context each chunk may attend to; -1 = all."""
    dynamic_chunk: bool = True
    """Train with a random chunk size per batch (WeNet U2) so one model serves many chunk sizes."""

    def validate(self) -> None:
        for name in ("input_dim", "d_model", "num_layers", "num_heads", "ffn_dim", "conv_kernel",
                     "subsampling", "chunk_size"):
            _check(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")
        _check(self.d_model % self.num_heads == 0, "d_model",
               f"{self.d_model} is not divisible by encoder.num_heads={self.num_heads}")
        _check(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        _check(self.left_chunks >= -1, "left_chunks", f"must be -1 (all) or >= 0, got {self.left_chunks}")


@dataclass
class CTCConfig:
    """The CTC head on the encoder: output units and loss weight."""

    units: Literal["char", "bpe"] = "char"
    bpe_vocab_size: int = 256
    """Number of BPE units (used when units is 'bpe')."""
    weight: float = 1.0
    """Weight of the CTC loss (in the CTC stage, or as an auxiliary loss when the encoder is fine-tuned)."""

    def validate(self) -> None:
        _check(self.bpe_vocab_size > 1, "bpe_vocab_size", f"must be > 1, got {self.bpe_vocab_size}")
        _check(self.weight >= 0.0, "weight", f"must be >= 0, got {self.weight}")


@dataclass
class ProjectorConfig:
    """Encoder frames -> LLM embeddings: stack ``stack`` frames, then two linear layers."""

    stack: int = 4
    """Encoder frames stacked into one LLM input token (4 x 40 ms = 160 ms per token)."""
    hidden_dim: int = 256

    def validate(self) -> None:
        _check(self.stack > 0, "stack", f"must be positive, got {self.stack}")
        _check(self.hidden_dim > 0, "hidden_dim", f"must be positive, got {self.hidden_dim}")


@dataclass
class PromptConfig:
    """The instruction text put in front of the audio, per task."""

    asr: str = "Transcribe the audio."
    st: str = "Translate the audio into French."


@dataclass
class LLMConfig:
    """The decoder-only LLM (loaded with ``from_pretrained``) and its LoRA adapter."""

    path_or_name: str = "exp/tiny_llm"
    """A local model dir (e.g. from ``speech-llm build-llm``) or a hub name such as Qwen/Qwen2.5-0.5B."""
    phi: int = 0
    """Group position encoding: target position IDs start at phi (DESIGN.md §2)."""
    dtype: Literal["float32", "bfloat16", "auto"] = "float32"
    """Weights dtype; 'auto' keeps the dtype stored with the model (``from_pretrained(dtype='auto')``)."""
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    lora_rank: int = 8
    """LoRA rank r; 0 trains no adapter (only the projector and the new token rows)."""
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    prompt: PromptConfig = field(default_factory=PromptConfig)
    wait_token: str = "<|wait|>"
    """The read/write boundary token added to the tokenizer."""
    task: str = "asr"
    """What the LLM writes: 'asr' (the transcript) or 'st' (the manifest's translation into target_lang).
    Picks the prompt ``llm.prompt.<task>``; saved with the checkpoint, so decoding uses the same one."""
    target_lang: str = "fr"
    """st: the language key of the manifest's ``translation`` field to train on (``llm.prompt.st`` should
    name that language)."""

    def validate(self) -> None:
        _check(self.path_or_name != "", "path_or_name", "must name a model dir or a hub model")
        _check(self.phi >= 0, "phi", f"must be >= 0, got {self.phi}")
        _check(self.lora_rank >= 0, "lora_rank", f"must be >= 0, got {self.lora_rank}")
        _check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", f"must be in [0, 1), got {self.lora_dropout}")
        _check(self.lora_rank == 0 or len(self.lora_target_modules) > 0, "lora_target_modules",
               "must name at least one module when lora_rank > 0")
        _check(self.wait_token != "", "wait_token", "must not be empty")
        tasks = [f.name for f in dataclasses.fields(PromptConfig)]
        _check(self.task in tasks, "task", f"unknown task {self.task!r}; known: {', '.join(tasks)}")
        _check(self.target_lang != "" and not any(c.isspace() for c in self.target_lang), "target_lang",
               f"must be a language key such as 'fr', got {self.target_lang!r}")


@dataclass
class StreamingConfig:
    """How streaming training targets are built (DESIGN.md §2)."""

    chunk_ms: int = 640
    """Source group unit: audio per chunk."""
    lookahead_chunks: int = 0
    """L: a word is written after chunk i when it ends inside chunks 1..i-L."""
    batch_mode_share: float = 0.3
    """Share of training samples in batch mode (no waits, full visibility)."""

    def validate(self) -> None:
        _check(self.chunk_ms > 0, "chunk_ms", f"must be positive, got {self.chunk_ms}")
        _check(self.lookahead_chunks >= 0, "lookahead_chunks", f"must be >= 0, got {self.lookahead_chunks}")
        _check(0.0 <= self.batch_mode_share <= 1.0, "batch_mode_share",
               f"must be in [0, 1], got {self.batch_mode_share}")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping, shared by the training stages."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_steps: int = 0
    """Stop after this many optimizer steps; 0 = run all epochs."""
    epochs: int = 10
    max_frames_per_batch: int = 20000
    """Batch budget in 10 ms fbank frames (padding included)."""
    grad_accum: int = 1
    grad_clip: float = 5.0
    """Max gradient norm; 0 = no clipping."""
    seed: int = 0
    log_every: int = 10
    save_every: int = 500
    """Steps between checkpoints (the last checkpoint is also written at the end of each epoch)."""
    valid_every: int = 0
    """Steps between validations; 0 = at the end of each epoch."""
    num_workers: int = 0
    spec_augment: bool = True
    freeze_encoder: bool = True
    """LLM stage: keep the CTC-trained encoder frozen."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """'auto' = bf16 on a GPU that supports it, fp32 on CPU."""
    silence_share: float = 0.0
    """LLM stage: share of training samples whose audio is replaced by silence or noise of the same length,
    with an empty transcript (so the model learns to write nothing when nobody speaks)."""

    def validate(self) -> None:
        _check(self.lr > 0.0 and math.isfinite(self.lr), "lr", f"must be positive, got {self.lr}")
        _check(0.0 <= self.silence_share < 1.0, "silence_share", f"must be in [0, 1), got {self.silence_share}")
        for name in ("weight_decay", "warmup_steps", "max_steps", "grad_clip", "valid_every", "num_workers"):
            _check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("epochs", "max_frames_per_batch", "grad_accum", "log_every", "save_every"):
            _check(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")


@dataclass
class DataConfig:
    """Where the data lives (JSONL manifests, DESIGN.md §5); paths are relative to the working dir."""

    train_manifest: Optional[str] = None
    valid_manifest: Optional[str] = None
    cmvn_path: Optional[str] = None
    """Global CMVN statistics; None = no normalisation."""
    units_path: Optional[str] = None
    """CTC units: a character list, or a BPE tokenizer file when ctc.units is 'bpe'."""


@dataclass
class DecodeConfig:
    """Decoding defaults (``speech-llm decode`` options override them)."""

    mode: Literal["streaming", "batch"] = "streaming"
    chunk_ms: int = 640
    max_tokens_per_read: int = 20
    """At most this many tokens written after one chunk before a wait is forced."""
    max_total_tokens: int = 200

    def validate(self) -> None:
        for name in ("chunk_ms", "max_tokens_per_read", "max_total_tokens"):
            _check(getattr(self, name) > 0, name, f"must be positive, got {getattr(self, name)}")


@dataclass
class ExperimentConfig:
    """One experiment: model, training and decoding settings. Stored in the exp dir and checkpoints."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    ctc: CTCConfig = field(default_factory=CTCConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    @property
    def llm_token_ms(self) -> float:
        """Audio per LLM input token: fbank shift x encoder subsampling x projector stacking."""
        return FRAME_SHIFT_MS * self.encoder.subsampling * self.projector.stack

    def validate(self) -> None:
        """Cross-section checks: a chunk must hold a whole number of LLM input tokens."""
        for key in ("streaming.chunk_ms", "decode.chunk_ms"):
            section, name = key.split(".")
            chunk_ms = getattr(getattr(self, section), name)
            _check(chunk_ms % self.llm_token_ms == 0, key,
                   f"{chunk_ms} ms is not a multiple of the {self.llm_token_ms:g} ms per LLM input token "
                   f"({FRAME_SHIFT_MS:g} ms x encoder.subsampling={self.encoder.subsampling} "
                   f"x projector.stack={self.projector.stack})")


# ---------------------------------------------------------------------------------------------------
# Files and checkpoints
# ---------------------------------------------------------------------------------------------------


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config as a plain nested dict (to store inside a checkpoint)."""
    return to_dict(cfg)


def config_from_dict(data: Mapping[str, Any]) -> ExperimentConfig:
    """Inverse of :func:`config_to_dict`, with the same strict checks as a YAML file."""
    return from_dict(ExperimentConfig, data)


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Read a YAML config (None = all defaults), then apply ``dotted.key=value`` overrides in order."""
    data: Any = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(None, f"cannot read config file: {e.strerror}", str(path)) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(None, f"not valid YAML: {e}", str(path)) from None
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(None, f"the top level must be a mapping of sections, got {_describe(data)}",
                              str(path))
    source = str(path) if path is not None else None
    try:
        cfg = from_dict(ExperimentConfig, data, validate=False)  # values are checked after the overrides
    except ConfigError as e:
        if source:
            raise e.from_source(source) from None
        raise
    return apply_overrides(cfg, overrides, source=source)


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (creating parent dirs); :func:`load_config` reads it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml(cfg), encoding="utf-8")
