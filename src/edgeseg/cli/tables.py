"""Tables of the reports that commands print (rich), one renderer for all."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from edgeseg.benchmarks.runner import EFFECT, FRAME_SIZE
from edgeseg.cli.app import plural


def table(title: str, columns: list[str], rows: list[list[str]], left: int = 1) -> "FittedTable":
    """The one table renderer: the first ``left`` columns are left-aligned (names), the rest right (numbers)."""
    return FittedTable(title, columns, rows, left)


class FittedTable:
    """A table that fits the terminal: where its columns do not fit side by side without cutting a number, they
    are shown as several tables, one under the other, each with the name columns. ``caption`` goes under the
    last."""

    NAME_WIDTH = 20  # the most a name column is given when parts are measured: longer names wrap
    BORDER = 3  # a column's padding and rule

    def __init__(self, title: str, columns: list[str], rows: list[list[str]], left: int = 1):
        self.title, self.caption = title, None
        self._columns, self._rows, self._left = columns, rows, left

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        parts = self._parts(options.max_width)
        for i, part in enumerate(parts):
            t = Table(title=self.title if i == 0 else None, caption=self.caption if i == len(parts) - 1 else None)
            for c in range(self._left):  # a name longer than its column folds onto the next line, never cut
                t.add_column(self._columns[c], justify="left", overflow="fold")
            for c in part:
                t.add_column(self._columns[c], justify="right")
            for row in self._rows:
                t.add_row(*(row[c] for c in [*range(self._left), *part]))
            yield t

    def _parts(self, width: int) -> list[list[int]]:
        """The value columns in groups that fit ``width`` beside the name columns (each at least one column)."""
        names = sum(min(self._width(c), self.NAME_WIDTH) + self.BORDER for c in range(self._left)) + 1
        parts: list[list[int]] = [[]]
        used = names
        for c in range(self._left, len(self._columns)):
            need = self._width(c) + self.BORDER
            if parts[-1] and used + need > width:
                parts.append([])
                used = names
            parts[-1].append(c)
            used += need
        return parts

    def _width(self, c: int) -> int:
        """What column ``c`` needs: its widest cell, and its header's longest word (headers wrap)."""
        words = self._columns[c].split() or [""]
        return max([len(w) for w in words] + [Text.from_markup(row[c]).cell_len for row in self._rows])


def metrics_table(title: str, rows: dict[str, dict]) -> FittedTable:
    """Rows of {name: SegmentationMetrics.to_dict()} (columns follow the classes present)."""
    classes = next(iter(rows.values()))["class_names"] if rows else []
    return table(title, ["", "pixel acc", "mIoU", "fg IoU", *(f"IoU {c}" for c in classes)], [
        [name, *(f"{v:.4f}" for v in (m["pixel_accuracy"], m["mean_iou"], m["foreground_iou"],
                                      *(m["iou"][c] for c in classes)))] for name, m in rows.items()])


MASK_COLUMNS = {"pet_iou": "{} IoU (border ignored)", "fg_iou": "fg IoU ({}+border)", "boundary_f": "boundary F",
                "background_alpha": "bg alpha", "background_leak": "bg leak", "semi_transparent": "semi-transparent"}


def mask_table(title: str, rows: dict[str, dict], subject: str = "pet") -> FittedTable:
    """Rows of {name: MaskQuality.to_dict()}; ``subject`` names what the mask shows (the pet IoU's subject)."""
    return table(title, ["", *(c.format(subject) for c in MASK_COLUMNS.values())],
                 [[name, *(f"{m[k]:.4f}" for k in MASK_COLUMNS)] for name, m in rows.items()])


def by_source(by_source: dict, overall) -> dict[str, dict]:
    """Table rows: each source's scores, then their mean when there are several."""
    rows = {name: q.to_dict() for name, q in by_source.items()}
    if len(rows) > 1:
        rows["mean of sources"] = overall.to_dict()
    return rows


def export_table(report) -> FittedTable:
    title = (f"Export of {report.source} (Keras mIoU {report.keras_mean_iou:.4f}, {report.subject} IoU "
             f"{report.keras_mask.get('pet_iou', float('nan')):.4f}, {plural(report.eval_images, 'image')})")
    rows = []
    for a in report.artifacts:
        status = "[green]pass[/]" if a.passed else "[red]FAIL[/] " + escape("; ".join(a.failures))
        rows.append([Path(a.path).name or a.name, status, f"{a.size_mb:.2f}", f"{a.agreement:.4%}",
                     f"{a.max_abs_prob_diff:.1e}", f"{a.mean_abs_prob_diff:.1e}", f"{a.mean_iou:.4f}",
                     f"{a.delta_miou_points:+.2f}", f"{a.mask.get('pet_iou', float('nan')):.4f}",
                     f"{a.mask.get('boundary_f', float('nan')):.4f}"])
    return table(title, ["artifact", "check", "MB", "agreement", "max |dp|", "mean |dp|", "mIoU", "dmIoU pts",
                         f"{report.subject} IoU", "boundary F"], rows, left=2)


def bench_table(result: dict) -> FittedTable:
    from edgeseg.benchmarks.report import COLUMNS, cells

    device = result["device"]
    rows = []
    for r in result["rows"]:
        status = r["status"] if r["status"] == "ok" else f"[red]{r['status']}[/] {escape(r.get('error', '')[:60])}"
        rows.append([r["model"], status, str(r["threads"]), *cells(r)])
    flags = ", ".join(device.get("cpu_flags") or [])
    t = table(f"{device['name']}: {device['cpu']} ({device['cores']} cores{'; ' + flags if flags else ''})",
              ["model", "status", "thr", *(c.header for c in COLUMNS)], rows, left=2)
    size = "x".join(map(str, result.get("options", {}).get("frame_size") or FRAME_SIZE))
    t.caption = ("x floor: p50 over the time the model's multiply-adds take at this CPU's measured fp32 peak; "
                 f"below 1 is faster than that peak (int8 kernels do more per cycle). pipeline FPS: the whole {size} "
                 "live step. CPU %: average use while timed (100 = one core). IoU: the subject's, border pixels ignored.")
    if not any(r.get("pet_iou") is not None or r.get("miou") is not None for r in result["rows"]):
        t.caption += " No accuracy was measured: pass --data DATASET (a run folder's training data is the default)."
    return t


def stage_table(result: dict) -> FittedTable:
    """The live step per model and thread count: each stage's median, the work around the model, CPU use."""
    stages = ("preprocess", "inference", "postprocess", "effect")
    rows = []
    for r in result["rows"]:
        ms = r.get("pipeline_stage_ms")
        if not ms:
            continue
        around = sum(ms.get(k, 0) for k in stages if k != "inference")
        pipe = r["pipeline_ms"]
        rows.append([r["model"], str(r["threads"]), *(f"{ms.get(k, 0):.2f}" for k in stages), f"{around:.2f}",
                     f"{pipe['p50']:.2f}", f"{pipe.get('p99.9', float('nan')):.2f}", f"{pipe.get('cpu_percent', 0):.0f}"])
    first = next((r for r in result["rows"] if r.get("frame_size")), {})
    size = "x".join(map(str, first.get("frame_size", FRAME_SIZE)))
    path = f", {first['frame_path']} frame path" if first.get("frame_path") else ""
    return table(f"Live step at {size}, {first.get('effect', EFFECT.value)}{path} (medians, ms)",
                 ["model", "thr", "pre", "inference", "post", "effect", "around the model", "step p50", "step p99.9",
                  "CPU %"], rows, left=2)
