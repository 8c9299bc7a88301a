"""Named settings with a fixed set of values (effects, splits, precisions...)."""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A str Enum that prints as its value, the word the command line takes: ``f"{Split.TEST}"`` is ``test``
    on every Python (3.11's f-strings print a plain str Enum as ``Split.TEST``). The repr stays the Enum's."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)
