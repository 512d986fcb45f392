"""Progress bars that appear only on a terminal.

A bar redrawn with carriage returns turns a log file or a CI transcript into noise, so every stage asks
here: tqdm on stderr when it is installed, wanted and stderr is a terminal; the bare iterable otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def show_progress(enabled: bool = True) -> bool:
    """Whether a bar would be drawn: wanted, stderr is a terminal, and tqdm is installed."""
    if not enabled or not sys.stderr.isatty():
        return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def progress(iterable: Iterable, desc: str, enabled: bool = True, **options: Any) -> Iterable:
    """``iterable`` wrapped in a tqdm bar on stderr where :func:`show_progress` allows, else unchanged."""
    if not show_progress(enabled):
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, file=sys.stderr, **options)
