"""Several datasets in one run: each a :class:`DataSource` with its own layout, label kind and weight.

A source is written ``PATH[:WEIGHT]`` on the command line (``--data oxford-real:3``). The weight says how
often its images are drawn in training relative to a source of weight 1: weight 3 shows each image three
times as often, as three copies would, without the copies. Scores are kept per source, and a run's
overall score is the mean over its sources, so a few hundred real labels count as much as thousands of
pseudo-labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.data.outline import Outline
from edgeseg.data.readers import TFDS_NAME, DataError, SegmentationData, check_source, load_split

MAX_WEIGHT = 1000.0


@dataclass(frozen=True)
class DataSource:
    """One dataset of a run: ``location`` is 'oxford_iiit_pet' (tfds) or a folder."""

    location: str
    weight: float = 1.0

    @classmethod
    def parse(cls, spec: str) -> DataSource:
        """``PATH`` or ``PATH:WEIGHT``; a :class:`DataError` names a weight that is not a positive number."""
        location, weight = spec, 1.0
        head, sep, tail = spec.rpartition(":")
        if sep and head and not Path(spec).exists():
            try:
                weight = float(tail)
            except ValueError:
                raise DataError(f"{spec!r}: the weight after ':' must be a number, e.g. {head}:3") from None
            location = head
        if not (math.isfinite(weight) and 0 < weight <= MAX_WEIGHT):
            raise DataError(f"{spec!r}: a source's weight must be a number above 0 and at most {MAX_WEIGHT:g}")
        check_source(location)
        return cls(location, weight)

    @property
    def name(self) -> str:
        """A short name for reports: the folder's name (or the tfds name)."""
        return TFDS_NAME if self.location == TFDS_NAME else Path(self.location).resolve().name

    @property
    def resolved(self) -> str:
        """The location as an absolute path (the tfds name as it is), valid from any working folder."""
        return self.location if self.location == TFDS_NAME else str(Path(self.location).resolve())

    @property
    def spec(self) -> str:
        return self.location if self.weight == 1 else f"{self.location}:{self.weight:g}"


def parse_sources(specs: list[str] | tuple[str, ...] | str) -> list[DataSource]:
    """The sources of a run, each spec checked; two sources may not share a name (their scores would mix)."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    if not specs:
        raise DataError("no dataset given: pass --data once per source")
    sources = [DataSource.parse(s) for s in specs]
    names = [s.name for s in sources]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"two sources are named {twice[0]!r}: give each dataset once, from folders of different names")
    return sources


def load_sources(sources: list[DataSource], split: str, size: int | tuple[int, int], *, outline: Outline = Outline.NONE,
                 **load) -> list[SegmentationData]:
    """``split`` of every source at ``size``, each named after its source (``load`` goes to :func:`load_split`)."""
    loaded = []
    for source in sources:
        data = load_split(source.location, split, size, outline=outline, **load)
        data.name = source.name
        loaded.append(data)
    return loaded


def concatenate(parts: list[SegmentationData]) -> SegmentationData:
    """Several sources' images of one size as one set (named after the first; ``binary`` if all are)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return SegmentationData(np.concatenate([p.images for p in parts]), np.concatenate([p.masks for p in parts]),
                            sum((p.names for p in parts), []), first.source, first.split,
                            sum((p.skipped for p in parts), []), binary=all(p.binary for p in parts), name=first.name)
