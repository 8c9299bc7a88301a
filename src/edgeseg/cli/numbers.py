"""One validation path for the numbers of every command: finite, and within what the machine can hold.

Click's float and int types accept ``nan``, ``inf`` and integers of any size, and its ranges compare NaN
as inside every range; options given such values ran forever, crashed or trained a model of NaN weights.
:func:`finite_numbers` gives every number option of a command tree this one check, exit 2 naming the
option, before any command runs.
"""

from __future__ import annotations

import math

try:  # typer vendors click from 0.26 on
    from typer._click import types as click_types
except ImportError:
    from click import types as click_types

MAX_INT = 2**31 - 1  # what native libraries (thread counts, sizes, seeds) take as an int


def _checked(convert):
    def convert_finite(self, value, param, ctx):
        number = convert(self, value, param, ctx)
        if isinstance(number, float) and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if isinstance(number, int) and not isinstance(number, bool) and abs(number) > MAX_INT:
            self.fail(f"{value!r} is beyond {MAX_INT:,}", param, ctx)
        return number

    return convert_finite


_FINITE: dict[type, type] = {}


def _finite_class(cls: type) -> type:
    """A subclass of a click number type whose values must be finite (isinstance checks, as the help's range
    text uses, still hold)."""
    if cls not in _FINITE:
        _FINITE[cls] = type(f"Finite{cls.__name__}", (cls,), {"convert": _checked(cls.convert)})
    return _FINITE[cls]


def finite_numbers(command) -> None:
    """Give every float and int option and argument of ``command`` and its sub-commands the finite check."""
    for param in getattr(command, "params", []):
        kind = type(param.type)
        if issubclass(kind, (click_types.FloatParamType, click_types.IntParamType)) and kind not in _FINITE.values():
            param.type.__class__ = _finite_class(kind)
    for sub in getattr(command, "commands", {}).values():
        finite_numbers(sub)
