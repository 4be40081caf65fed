"""Subcommands of the ``speech-llm`` console script, one module each (see :mod:`speech_llm.cli`)."""
