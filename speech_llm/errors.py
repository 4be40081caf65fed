"""Deprecated location of :class:`speech_common.errors.UserError` (kept while modules move over)."""

from speech_common.errors import UserError

__all__ = ["UserError"]
