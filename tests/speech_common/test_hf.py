"""The one switch that quiets transformers (speech_common.hf.quiet_transformers): set inside, restored after."""

from transformers.utils import logging as hf_logging

from speech_common.hf import quiet_transformers


def test_quiet_transformers_sets_and_restores_bars_and_log_level():
    hf_logging.enable_progress_bar()
    hf_logging.set_verbosity_warning()
    with quiet_transformers():
        assert not hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == hf_logging.ERROR
    assert hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == hf_logging.WARNING
    with quiet_transformers(errors_only=False):   # model loads: the bars only, the log level untouched
        assert not hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == hf_logging.WARNING
    assert hf_logging.is_progress_bar_enabled()
