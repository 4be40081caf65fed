"""Errors shown to users without a traceback."""


class UserError(Exception):
    """A problem with the user's input (a file, a config key, an option): the message says what and where."""
