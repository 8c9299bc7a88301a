"""Latency of artifacts exported with a static batch-1 input against a dynamic batch dimension.

With a dynamic batch the TFLite converter inserts SHAPE/STRIDED_SLICE/PACK before every TRANSPOSE_CONV;
this measures what that costs per format, to choose the export default. Batch-1 inference, medians.

    python experiments/static_vs_dynamic_batch.py runs/unet_mobilenetv2_pets128 --out experiments/results/static_vs_dynamic_batch.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeseg.benchmarks.device import device_info
from edgeseg.export.base import Precision
from edgeseg.export.exporter import ExportOptions, export_model
from edgeseg.io import atomic_write_text
from edgeseg.runtime.backends import open_backend


def median_ms(path: str, threads: int, runs: int) -> float:
    with open_backend(path, threads=threads) as backend:
        shape = (1, *backend.input.shape[1:])
        x = np.random.default_rng(0).integers(0, 256, shape).astype(backend.input.dtype)
        for _ in range(10):
            backend.run(x)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            backend.run(x)
            times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder (model.keras and run.json)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/static_vs_dynamic_batch.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = {}
        for label, batch in (("static batch 1", 1), ("dynamic batch", 0)):
            options = ExportOptions(precisions=[Precision.FP32, Precision.INT8], batch_size=batch,
                                    out=f"{tmp}/{batch}", eval_size=16, calib_size=300)
            artifacts[label] = {f"{a.format} {a.precision}": a.path for a in export_model(args.run, options).artifacts}
        for name in artifacts["static batch 1"]:
            static = median_ms(artifacts["static batch 1"][name], args.threads, args.runs)
            dynamic = median_ms(artifacts["dynamic batch"][name], args.threads, args.runs)
            rows.append({"artifact": name, "static_ms": static, "dynamic_ms": dynamic,
                         "dynamic_over_static": round(dynamic / static, 2)})
            print(rows[-1])
    atomic_write_text(args.out, json.dumps({"device": device_info(), "threads": args.threads, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
