"""Errors shown to users without a traceback (``speech-llm`` prints the message and exits with status 2).

The base class of every user-facing error of the toolkit; the packages derive their own (``AudioError``,
``DataError``, ``ConfigError``, ``CheckpointError``, ...) from it. It lives below every package so that
``encoders`` and ``data_prep`` need not import ``speech_llm``.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (a file, a config key, an option): the message says what and where."""


class ConfigError(UserError):
    """A bad config key or value. ``key`` is the full dotted key; ``source`` the file or override at fault.

    The error of ``speech_llm.typed_config`` (a schema's ``validate()`` raises it); it lives here so that the schema
    sections shared with ``speech_runtime`` (``speech_common.endpoint.EndpointConfig``) can raise it too."""

    def __init__(self, key: str | None, problem: str, source: str | None = None):
        self.key = key
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        what = f"config key '{key}': " if key else "config: "
        super().__init__(f"{where}{what}{problem}")

    def under(self, prefix: str) -> ConfigError:
        """The same error with ``prefix.`` put in front of its key."""
        key = join_key(prefix, self.key) if self.key else prefix
        return ConfigError(key, self.problem, self.source)

    def from_source(self, source: str) -> ConfigError:
        return ConfigError(self.key, self.problem, source)


def join_key(prefix: str, key: str) -> str:
    """``prefix.key`` (``prefix[0]`` for an index key ``[0]``; ``key`` alone under no prefix)."""
    if not prefix:
        return key
    return f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"
