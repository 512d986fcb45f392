"""Progress bars that appear only on a terminal, and the one ``--no-progress`` flag every long command takes.

A bar redrawn with carriage returns turns a log file or a CI transcript into noise, so every stage asks
here: tqdm on stderr when it is installed, wanted and stderr is a terminal; otherwise a :class:`QuietBar` that
iterates the same items and ignores updates.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any


def add_progress_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--no-progress`` (sets ``args.progress`` False): the same flag on train, eval, bench, convert, run, register,
    pipeline and every experiment."""
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars (they are drawn only when stderr is a terminal anyway)")


def show_progress(enabled: bool = True) -> bool:
    """Whether a bar would be drawn: wanted, stderr is a terminal, and tqdm is installed."""
    if not enabled or not sys.stderr.isatty():
        return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


class QuietBar:
    """What :func:`progress` gives where no bar is drawn: it iterates what it wraps, and its updates do nothing."""

    def __init__(self, iterable: Iterable | None = None):
        self._iterable = iterable if iterable is not None else ()

    def __iter__(self):
        return iter(self._iterable)

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress(iterable: Iterable | None, desc: str, enabled: bool = True, **options: Any) -> Any:
    """``iterable`` in a tqdm bar on stderr where :func:`show_progress` allows, else in a :class:`QuietBar`.

    With ``iterable=None`` (and ``total=``) it is a bar to ``update()`` by hand. Either way the caller may call
    ``update``, ``set_postfix`` and ``close`` without asking whether a bar is drawn.
    """
    if not show_progress(enabled):
        return QuietBar(iterable)
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, file=sys.stderr, **options)
