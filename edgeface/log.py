"""User messages: one plain line each on stderr, through :mod:`logging`, warnings included.

Modules log to ``logging.getLogger(__name__)`` (all under ``edgeface``); the ``edgeface`` command calls
:func:`setup_logging` once, which gives that tree a handler with a plain one-line format and routes
:mod:`warnings` (the project's and its libraries') there as ``warning: MESSAGE``: no file name, line number or
source line. Results a command prints (tables, metrics) stay on stdout; messages about the run go here.
"""

from __future__ import annotations

import logging
import sys
import warnings

ROOT = "edgeface"


class OneLineFormatter(logging.Formatter):
    """The message alone, its lines joined, so every record is one line of a log."""

    def format(self, record: logging.LogRecord) -> str:
        lines = [line for line in record.getMessage().splitlines() if line.strip()]
        return lines[0].rstrip() if len(lines) == 1 else "; ".join(line.strip() for line in lines)


class StderrHandler(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is at the time of each record (a test's capture, a redirect)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D401 - logging reads and writes this attribute
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file=None,
                 line: str | None = None) -> None:
    """``warnings.showwarning`` replacement: the first line of the message as a ``warning:`` log record."""
    text = str(message).strip().splitlines()
    logging.getLogger(f"{ROOT}.warnings").warning("warning: %s", text[0] if text else category.__name__)


def setup_logging(debug: bool = False) -> logging.Logger:
    """Give the ``edgeface`` loggers their one-line stderr handler (once) and route warnings to it."""
    logger = logging.getLogger(ROOT)
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(OneLineFormatter())
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False
    warnings.showwarning = show_warning
    return logger
