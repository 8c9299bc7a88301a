"""Merge benchmark result files of any number of devices into a markdown table and PNG charts."""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Callable, NamedTuple

from edgeseg.io import atomic_path, atomic_write_text
from edgeseg.errors import EdgesegError, NotFound

SUPPORTED_SCHEMAS = (1,)
log = logging.getLogger("edgeseg")


class ResultsError(EdgesegError, ValueError):
    pass


def load_results(path: str | Path) -> dict:
    """A results file of any supported schema version, upgraded to the current one."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path} {'is a folder' if path.is_dir() else 'not found'}: expected a benchmark result file "
                       "(edgeseg bench --out)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not text at all (UnicodeDecodeError)
        raise ResultsError(f"{path} is not a readable benchmark result ({exc})") from exc
    if not isinstance(doc, dict):
        raise ResultsError(f"{path} is a JSON {type(doc).__name__}, not a benchmark result (edgeseg bench --out)")
    if "schema_version" not in doc:
        raise ResultsError(f"{path} is not a benchmark result (edgeseg bench --out): it has no schema_version")
    version = doc["schema_version"]
    if version not in SUPPORTED_SCHEMAS:
        readable = " or ".join(str(v) for v in SUPPORTED_SCHEMAS)
        raise ResultsError(f"{path} has schema_version {version!r}; this edgeseg reads schema_version {readable}")
    missing = _missing(doc)
    if missing:
        raise ResultsError(f"{path} lacks {', '.join(missing)}: not a whole benchmark result (edgeseg bench --out)")
    return doc


# What the report reads of a result file: its device, and each row's identity.
_DEVICE_KEYS = ("cores", "cpu", "date", "edgeseg", "name", "os", "python")
_ROW_KEYS = ("model", "status", "threads")


def _missing(doc: dict) -> list[str]:
    missing = [key for key in ("device", "peak_gflops", "rows") if key not in doc]
    device, rows = doc.get("device"), doc.get("rows")
    if isinstance(device, dict):
        missing += [f"device.{key}" for key in _DEVICE_KEYS if key not in device]
    if isinstance(rows, list):
        missing += sorted({f"rows[].{key}" for row in rows for key in _ROW_KEYS
                           if not isinstance(row, dict) or key not in row})
    return missing


def _fmt(value, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def _latency(key: str):
    return lambda r: (r.get("latency_ms") or {}).get(key)


class Column(NamedTuple):
    """One column of the bench's tables: its header, its key in the report's JSON, the row's value, its format."""

    header: str
    key: str
    get: Callable[[dict], object]
    spec: str


# The bench's columns, for the command's table and the report's alike.
# "IoU" is the subject's ("pet", "person": the subject column) at each test image's own resolution, border ignored.
COLUMNS: tuple[Column, ...] = (
    Column("p50 ms", "p50_ms", _latency("p50"), ".2f"), Column("p90 ms", "p90_ms", _latency("p90"), ".2f"),
    Column("p95 ms", "p95_ms", _latency("p95"), ".2f"), Column("p99 ms", "p99_ms", _latency("p99"), ".2f"),
    Column("p99.9 ms", "p99.9_ms", _latency("p99.9"), ".2f"),
    Column("CPU %", "cpu_percent", _latency("cpu_percent"), ".0f"),
    Column("FPS", "fps", lambda r: r.get("fps"), ".1f"),
    Column("pipeline FPS", "pipeline_fps", lambda r: r.get("pipeline_fps"), ".1f"),
    Column("x floor", "x_floor", lambda r: r.get("x_floor"), ".1f"),
    Column("subject", "subject", lambda r: r.get("subject"), "s"),
    Column("IoU", "pet_iou", lambda r: r.get("pet_iou"), ".3f"), Column("mIoU", "miou", lambda r: r.get("miou"), ".3f"),
    Column("fg IoU 256", "fg_iou_256", lambda r: r.get("fg_iou_256"), ".3f"),
    Column("MB", "size_mb", lambda r: r.get("size_mb"), ".2f"),
    Column("RSS MB", "peak_rss_mb", lambda r: r.get("peak_rss_mb"), ".0f"),
)


def values(row: dict, *more: dict) -> dict[str, object]:
    """A result row's values by :data:`COLUMNS`' keys (None where it has none); with ``more`` rows (repeated runs
    of it), each number is the median over the rows that have it."""
    out = {}
    for column in COLUMNS:
        found = [v for v in map(column.get, (row, *more)) if v is not None]
        out[column.key] = (found[0] if column.spec == "s" else statistics.median(found)) if found else None
    return out


def cells(row: dict, *more: dict) -> list[str]:
    """:func:`values`, formatted, in :data:`COLUMNS`' order."""
    return [_fmt(value, column.spec) for column, value in zip(COLUMNS, values(row, *more).values())]


def merged(results: list[dict]) -> dict:
    """Result files of any devices as one report: ``rows``, one per device, model, thread count and status, sorted
    (deterministic), each value the median over the device's runs (``runs`` of them); ``devices``, each as its
    first run describes it, with its runs and its peak GFLOP/s per thread count (medians over runs)."""
    rows, devices = [], {}
    for name, docs in _runs_by_device(results).items():
        same: dict[tuple, list[dict]] = {}
        for doc in docs:
            for r in doc["rows"]:
                same.setdefault((r["model"], r["threads"], r["status"]), []).append(r)
        for (model, threads, status), repeated in sorted(same.items(), key=lambda item: item[0]):
            rows.append({"device": name, "model": model, "threads": threads, "status": status,
                         **values(*repeated), "runs": len(repeated)})
        device = docs[0]["device"]
        peaks = {t: statistics.median(doc["peak_gflops"][t] for doc in docs if t in doc["peak_gflops"])
                 for t in sorted({t for doc in docs for t in doc["peak_gflops"]}, key=int)}
        devices[name] = {**{k: device.get(k) for k in ("cpu", "cpu_flags", "cores", "os", "python", "edgeseg")},
                         "runs": [{"commit": doc["device"].get("commit"), "date": doc["device"]["date"]}
                                  for doc in docs], "peak_gflops": peaks}
    return {"devices": devices, "rows": rows}


def markdown(results: list[dict]) -> str:
    """:func:`merged` as one Markdown table over all devices, then a line per device."""
    report = merged(results)
    headers = ["device", "model", "threads", "status", *(c.header for c in COLUMNS), "runs"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in report["rows"]:
        lines.append("| " + " | ".join([row["device"], row["model"], str(row["threads"]), row["status"],
                                        *(_fmt(row[c.key], c.spec) for c in COLUMNS), str(row["runs"])]) + " |")
    devices = ["", "Devices:", *(_device_line(name, d) for name, d in report["devices"].items())]
    return "\n".join(lines + devices) + "\n"


def _device_line(name: str, device: dict) -> str:
    """The device, then its runs' commits and dates (x N: as many runs), and the peak GFLOP/s."""
    flags = ", ".join(device.get("cpu_flags") or []) or "flags not recorded"
    counts: dict[str, int] = {}
    for run in device["runs"]:
        said = f"{run['commit'] or 'no commit'} ({run['date']})"
        counts[said] = counts.get(said, 0) + 1
    runs = ", ".join(run + (f" x{n}" if n > 1 else "") for run, n in counts.items())
    peak = ", ".join(f"{gflops:.2f} on {t} thread{'s' if t != '1' else ''}" for t, gflops in device["peak_gflops"].items())
    n = len(device["runs"])
    return (f"- **{name}**: {device['cpu']} ({flags}), {device['cores']} cores, {device['os']}, Python "
            f"{device['python']}, edgeseg {device['edgeseg']}; {n} run{'s' if n > 1 else ''}: {runs}; "
            f"peak fp32 GFLOP/s: {peak}")


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png", metadata={"Software": None})
    plt.close(fig)


# The accuracy the chart plots: the first of these that any row has (older result files lack pet IoU).
ACCURACY_AXES = (("pet_iou", "the subject's IoU, border pixels ignored (test split)"),
                 ("fg_iou_256", "foreground IoU at 256 px (test split)"),
                 ("fg_iou", "foreground IoU (test split)"))


def accuracy_axis(rows: list[dict]) -> tuple[str, str] | None:
    """(row key, axis label) of the accuracy to plot, or None when no row has one."""
    return next(((key, label) for key, label in ACCURACY_AXES if any(r.get(key) is not None for r in rows)), None)


def _runs_by_device(results: list[dict]) -> dict[str, list[dict]]:
    """Result files grouped by device name (one device's repeated runs), the devices in name order."""
    runs: dict[str, list[dict]] = {}
    for doc in sorted(results, key=lambda d: (d["device"]["name"], d["device"]["date"], d["device"].get("commit") or "",
                                              json.dumps(d, sort_keys=True))):
        runs.setdefault(doc["device"]["name"], []).append(doc)
    return runs


def charts(results: list[dict], out: Path, prefix: str = "") -> list[Path]:
    """Into the folder ``out``, each file's name after ``prefix``: latency.png: p50 per model and device (each
    device at its most threads, said in the legend; a device's repeated runs as one bar at their median, a line
    spanning their range); accuracy.png: accuracy (:func:`accuracy_axis`) vs latency, only when some row has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = _runs_by_device(results)
    top = {name: max(r["threads"] for doc in docs for r in doc["rows"]) for name, docs in runs.items()}
    best: dict[tuple[str, str], list[dict]] = {}  # (device, model): its row at the most threads in each run
    for name, docs in runs.items():
        for doc in docs:
            for r in doc["rows"]:
                if r["threads"] == top[name] and "latency_ms" in r:
                    best.setdefault((name, r["model"]), []).append(r)
    p50 = {key: [r["latency_ms"]["p50"] for r in rows] for key, rows in best.items()}
    models = sorted({m for _, m in best})
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(models) * max(1, len(runs)) + 1.5))
    height = 0.8 / max(1, len(runs))
    for i, (name, docs) in enumerate(runs.items()):
        keys = [(j + i * height, (name, m)) for j, m in enumerate(models) if (name, m) in p50]
        ys, xs = [y for y, _ in keys], [statistics.median(p50[k]) for _, k in keys]
        repeated = f", median of {len(docs)} runs" if len(docs) > 1 else ""
        ax.barh(ys, xs, height=height, label=f"{name} ({top[name]} threads{repeated})")
        spread = [(y, x, p50[k]) for y, x, (_, k) in zip(ys, xs, keys) if len(p50[k]) > 1]
        if spread:
            ax.errorbar([x for _, x, _ in spread], [y for y, _, _ in spread], fmt="none", capsize=2, ecolor="0.25",
                        xerr=[[x - min(v) for _, x, v in spread], [max(v) - x for _, x, v in spread]])
    ax.set_yticks([j + 0.4 - height / 2 for j in range(len(models))], models)
    ax.set_xlabel("p50 latency, ms (lower is better)")
    ax.set_xscale("log")
    ax.grid(axis="x", alpha=0.3)
    ax.legend()
    ax.invert_yaxis()
    latency_png, accuracy_png = out / f"{prefix}latency.png", out / f"{prefix}accuracy.png"
    _save(fig, latency_png)
    axis = accuracy_axis([r for rows in best.values() for r in rows])
    if axis is None:
        return [latency_png]  # no accuracy was measured: no empty chart
    key, axis_label = axis

    fig, ax = plt.subplots(figsize=(10, 5.5))
    colors = plt.get_cmap("tab20")
    markers = "osD^v<>P*X"
    for d, name in enumerate(runs):  # colour = model, marker = device
        for i, model in enumerate(models):
            accuracy = [r[key] for r in best.get((name, model), []) if r.get(key) is not None]
            if accuracy:
                label = model if len(runs) == 1 else f"{model} ({name})"
                ax.scatter(statistics.median(p50[(name, model)]), statistics.median(accuracy), color=colors(i % 20),
                           marker=markers[d % len(markers)], s=50, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency, ms")
    ax.set_ylabel(axis_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    _save(fig, accuracy_png)
    return [latency_png, accuracy_png]


def merged_table(paths: list[str | Path]) -> str:
    """The result files' merged table (:func:`markdown`)."""
    return markdown(_load_all(paths))


def merged_report(paths: list[str | Path]) -> dict:
    """The result files' merged report (:func:`merged`)."""
    return merged(_load_all(paths))


def _load_all(paths: list[str | Path]) -> list[dict]:
    results = [load_results(p) for p in paths]
    if not results:
        raise ResultsError("no result files given")
    return results


def write_report(paths: list[str | Path], out: str | Path) -> list[Path]:
    """Merge result files into the folder ``out``: README.md (the table) and the charts; or, for ``out`` a
    Markdown file (``report.md``), into it with the charts beside it (``report-latency.png``). Returns the written
    files."""
    out = Path(out)
    page, folder, prefix = (out, out.parent, f"{out.stem}-") if is_markdown(out) else (out / "README.md", out, "")
    results = _load_all(paths)
    folder.mkdir(parents=True, exist_ok=True)
    table = markdown(results)
    try:
        written = charts(results, folder, prefix)
    except ImportError:  # the runtime install of an edge device has no matplotlib: the table is what matters there
        log.warning("the charts need matplotlib (pip install matplotlib); wrote the table only")
        written = []
    images = "".join(f"\n![{p.stem}]({p.name})\n" for p in written)
    atomic_write_text(page, "# edgeseg benchmarks\n\n" + table + images)
    return [page, *written]


def is_markdown(path: str | Path) -> bool:
    """``path`` names a Markdown file, not a folder: the report goes into it (:func:`write_report`)."""
    return Path(path).suffix.lower() in (".md", ".markdown") and not Path(path).is_dir()
