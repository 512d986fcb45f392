"""Numbers from the user (flags, YAML recipes): finite and in range, checked where they are parsed.

A NaN duration, an infinite label range or a zero step otherwise travels until something divides by it or
writes it into a result; refused here, it is one line naming the setting.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def check_number(value: object, name: str, *, minimum: float | None = None, above: float | None = None,
                 below: float | None = None, maximum: float | None = None, integer: bool = False) -> float:
    """``value`` when it is a finite number (an integer with ``integer``) that is >= ``minimum``, > ``above``,
    < ``below`` and <= ``maximum``; a ValueError naming ``name`` otherwise."""
    kind = "an integer" if integer else "a finite number"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or (
            integer and not float(value).is_integer()):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    for bound, ok, words in ((minimum, lambda b: value >= b, "at least"), (above, lambda b: value > b, "above"),
                             (below, lambda b: value < b, "below"), (maximum, lambda b: value <= b, "at most")):
        if bound is not None and not ok(bound):
            raise ValueError(f"{name} must be {words} {bound:g}, got {value:g}")
    return value


def number_type(*, minimum: float | None = None, above: float | None = None, maximum: float | None = None,
                integer: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` that accepts only finite numbers in range (so ``--duration nan`` fails at parse time)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            check_number(value, "it", minimum=minimum, above=above, maximum=maximum, integer=integer)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).replace("it must be", "expected")) from None
        return int(value) if integer else value

    return parse


# the argparse types most flags need
COUNT = number_type(minimum=1, integer=True)  # frames, rounds, faces, epochs: at least one
PIXELS = number_type(minimum=16, integer=True)  # an input or frame side
POSITIVE = number_type(above=0)  # seconds, rates
SHARE = number_type(minimum=0, maximum=1)  # scores, fractions
