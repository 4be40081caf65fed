"""Typed configs: YAML-like nested mappings loaded into nested dataclasses, strictly, with dotted overrides.

The generic machinery for any dataclass tree; the project's schema lives in :mod:`speech_llm.config`.

Rules (nanoGPT's GPTConfig / HF configs, made strict):
- Every key in the mapping or in an override must be a field of the schema; an unknown key is an error
  naming the full dotted key (``encoder.d_modle``) and suggesting the closest known one.
- Values are checked against the field's type annotation (int, float, str, bool, ``Optional[...]``,
  ``list[...]``, ``dict[...]``, ``Literal[...]``, nested dataclasses); a mismatch is an error naming the
  dotted key and the expected type. Ints are accepted for floats; bools are never accepted for numbers.
  Strings such as ``1e-4`` (which YAML 1.1 reads as text) are accepted for float fields.
- An override is ``dotted.key=value``; the value is parsed with ``yaml.safe_load`` (so ``[a, b]``,
  ``true``, ``null`` work), except for string fields, which take the text as is
  (``llm.prompt.asr=Transcribe: the audio``).
- A dataclass may name keys it no longer has in a class attribute ``removed_keys`` (key -> what to use
  instead); such a key in a mapping or an override is an error that says so, not "unknown key".
- A dataclass may define ``validate()`` (raising :class:`ConfigError` with its own field name); it runs
  after construction, and the error is reported under the full dotted key.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, Union

import yaml

from speech_common.errors import ConfigError
from speech_common.errors import join_key as _join

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------
# Generic machinery: any dataclass tree
# ---------------------------------------------------------------------------------------------------


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
    removed = getattr(cls, "removed_keys", {})
    if key in removed:
        return ConfigError(_join(prefix, key), f"this key was removed: {removed[key]}")
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
    """``"train.llm.lr=1e-4"`` -> ``("train.llm.lr", <value>)``: the key checked against ``cls``, the value parsed.

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
