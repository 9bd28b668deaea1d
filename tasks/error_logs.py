"""Errors the user can fix, logged by Prefect's engine as one line each (traceback at DEBUG).

Prefect logs a failing task run and then its failing flow run, each with a full traceback. For a
wrong input (a bad config, a missing bucket, a run folder in use, ...) the message already says
what is wrong and what to do; the tracebacks only bury it. :func:`one_line_input_errors` makes
the engine's records of such errors one line and logs the traceback at DEBUG level instead.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from datasets.errors import S2SRDataError, is_transient

#: Prefect's loggers of task and flow runs, where the engine reports failures.
ENGINE_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")

InputErrorTest = Callable[[BaseException], bool]


def is_data_input_error(err: BaseException) -> bool:
    """A data-layer error that another attempt would only repeat (a scene that cannot be read,
    bad tiling parameters, a store or storage location that cannot be used)."""
    return isinstance(err, S2SRDataError) and not is_transient(err)


class _OneLine(logging.Filter):
    """Drops the traceback from records of input errors; logs it again at DEBUG."""

    def __init__(self) -> None:
        super().__init__()
        self.tests: list[InputErrorTest] = []

    def filter(self, record: logging.LogRecord) -> bool:
        err = record.exc_info[1] if record.exc_info else None
        if err is None or not any(test(err) for test in self.tests):
            return True
        record.exc_info = None
        record.exc_text = None
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("traceback of %r:\n%s", err, "".join(traceback.format_exception(err)))
        return True


_FILTER = _OneLine()


def one_line_input_errors(is_input_error: InputErrorTest) -> None:
    """Log the errors ``is_input_error`` accepts as one line on Prefect's engine loggers.

    Idempotent, and for the whole process: the flow engine logs a flow run's failure after the
    flow function returned.
    """
    if is_input_error not in _FILTER.tests:
        _FILTER.tests.append(is_input_error)
    for name in ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
