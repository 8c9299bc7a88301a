"""``edgeseg evaluate --sweep``: the mask a user sees under several runtime settings, one row per combination.

What the experiment scripts did once for the default settings (threshold, softness, edges), for any model and
data: ``--sweep threshold=0.4,0.5,0.6 --sweep edges=guided,bilinear`` scores every combination.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from edgeseg.errors import UsageError
from edgeseg.evaluation.evaluate import EvalReport, evaluate
from edgeseg.runtime.segmenter import LIMITS, Edges

SWEEPABLE = {"threshold": float, "softness": float, "edges": Edges, "min_blob": float, "smoothing": float}


def parse_sweep(specs: list[str]) -> dict[str, list]:
    """``NAME=V1,V2,...`` specs as {name: values}; a :class:`UsageError` names an unknown setting or a bad value."""
    grid: dict[str, list] = {}
    for spec in specs:
        name, _, values = spec.partition("=")
        if name not in SWEEPABLE:
            raise UsageError(f"--sweep {spec!r}: expected NAME=V1,V2 with NAME one of {', '.join(SWEEPABLE)}")
        if name in grid:
            raise UsageError(f"--sweep names {name} twice: give its values once, comma-separated")
        try:
            grid[name] = [SWEEPABLE[name](v.strip()) for v in values.split(",") if v.strip()]
        except ValueError:
            raise UsageError(f"--sweep {spec!r}: {name} takes {_kind(name)}") from None
        if not grid[name] or any(isinstance(v, float) and not math.isfinite(v) for v in grid[name]):
            raise UsageError(f"--sweep {spec!r}: {name} takes {_kind(name)}")
        least, most = LIMITS.get(name, (None, None))
        outside = [f"{v:g}" for v in grid[name] if least is not None and not least <= v <= most]
        if outside:
            raise UsageError(f"--sweep {spec!r}: {name} takes {least:g} to {most:g}, received {', '.join(outside)}")
        twice = next((v for i, v in enumerate(grid[name]) if v in grid[name][:i]), None)
        if twice is not None:  # every row of it would be scored twice
            raise UsageError(f"--sweep {spec!r} names {getattr(twice, 'value', twice)} twice")
    return grid


def _kind(name: str) -> str:
    kind = SWEEPABLE[name]
    return f"one or more of {', '.join(e.value for e in kind)}" if kind is Edges else "finite numbers, e.g. 0.4,0.5"


@dataclass
class SweepRow:
    swept: dict  # this row's values of the swept settings (the report's ``settings`` holds all of them)
    report: EvalReport

    def to_dict(self) -> dict:
        return {"swept": self.swept, **self.report.to_dict()}


def sweep(model, data: list[str], split: str, limit: int | None, options: dict, grid: dict[str, list],
          flicker_clips: int = 0, progress: bool = True, data_dir: str | None = None) -> list[SweepRow]:
    """:func:`~edgeseg.evaluation.evaluate.evaluate` at every combination of ``grid``'s values over ``options``."""
    if "smoothing" in grid and not flicker_clips:
        raise UsageError("--sweep smoothing: smoothing changes only the video mask, whose flicker --flicker N "
                         "measures; single photos have no earlier mask to smooth with")
    rows = []
    combos = list(itertools.product(*grid.values()))
    if progress:
        from edgeseg.progress import track

        combos = track(combos, description=f"Sweeping {len(combos)} settings")
    for combo in combos:
        swept = {name: value.value if isinstance(value, Edges) else value for name, value in zip(grid, combo)}
        report = evaluate(model, data, split, limit, progress=False, options={**options, **swept},
                          flicker_clips=flicker_clips, argmax=False, data_dir=data_dir)
        rows.append(SweepRow(swept, report))
    return rows



