"""Metadata every artifact carries, so the runtime needs no side file."""

from __future__ import annotations

import time

from edgeseg import __version__
from edgeseg.trainer.metrics import CLASS_NAMES, FOREGROUND_CLASSES


def artifact_metadata(model_name: str, input_size: int, input_dtype: str, fmt: str, precision: str,
                      source: str, source_metrics: dict | None, macs: int | None = None) -> dict:
    """The ``edgeseg`` metadata entry: input spec, normalisation, classes, provenance."""
    return {
        "edgeseg_version": __version__,
        "model": model_name,
        "format": fmt,
        "precision": precision,
        "input": {"size": [input_size, input_size], "dtype": input_dtype, "layout": "NHWC", "color": "RGB",
                  "range": [0, 255]},
        "normalization": "inside the model: x / 127.5 - 1",
        "output": {"kind": "logits", "classes": list(CLASS_NAMES), "foreground_classes": list(FOREGROUND_CLASSES)},
        "source_model": source,
        "source_metrics": source_metrics or {},
        "macs": macs,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
