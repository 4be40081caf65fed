"""Errors shown to users without a traceback (``speech-llm`` prints the message and exits with status 2).

The base class of every user-facing error of the toolkit; the packages derive their own (``AudioError``,
``DataError``, ``ConfigError``, ``CheckpointError``, ...) from it. It lives below every package so that
``encoders`` and ``data_prep`` need not import ``speech_llm``.
"""


class UserError(Exception):
    """A problem with the user's input (a file, a config key, an option): the message says what and where."""
