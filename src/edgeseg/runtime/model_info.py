"""What the runtime needs to know about a model: from its metadata, from flags, or from its tensors.

edgeseg artifacts carry metadata. Third-party models (e.g. MediaPipe selfie, DeepLab) do not: their
input range, output kind and foreground classes are detected from the tensors or given as overrides.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from edgeseg.runtime.backends.base import Backend


class OutputKind(str, Enum):
    LOGITS = "logits"  # (N, H, W, C) class scores: softmax, foreground = sum of foreground classes
    PROBABILITY = "probability"  # (N, H, W, 1) foreground probability (a sigmoid is applied if it is not)
    CLASS_INDEX = "class-index"  # (N, H, W) class ids: foreground = id in the foreground classes


INPUT_RANGES = {"0-255": (0.0, 255.0), "0-1": (0.0, 1.0), "-1-1": (-1.0, 1.0)}


@dataclass(frozen=True)
class ModelInfo:
    input_size: tuple[int, int]  # (height, width)
    input_range: tuple[float, float]
    output_kind: OutputKind
    foreground_classes: tuple[int, ...]  # () with class-index output: every non-zero class
    class_names: tuple[str, ...] = ()
    source: str = "detected"  # "metadata", "detected" or "overrides"


def _parse_range(value: str) -> tuple[float, float]:
    if value not in INPUT_RANGES:
        raise ValueError(f"input range must be one of {', '.join(INPUT_RANGES)}, received {value!r}")
    return INPUT_RANGES[value]


def resolve_model_info(backend: Backend, input_range: str | None = None, output_kind: str | None = None,
                       foreground: list[int] | None = None) -> ModelInfo:
    """Combine the artifact's metadata, explicit overrides (which win) and detection from the tensors."""
    meta = backend.metadata
    shape = backend.input.shape
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"expected an NHWC RGB input, the model's input has shape {shape}")
    size = (shape[1], shape[2])
    out = backend.output
    if meta:
        rng = tuple(float(v) for v in meta["input"]["range"])
        kind = OutputKind(meta["output"]["kind"].replace("_", "-"))
        fg = tuple(meta["output"]["foreground_classes"])
        names = tuple(meta["output"].get("classes", ()))
        source = "metadata"
    else:
        rng = (0.0, 255.0) if backend.input.dtype == np.uint8 else (0.0, 1.0)
        if len(out.shape) == 3 or (np.issubdtype(out.dtype, np.integer) and not out.quantized):
            kind = OutputKind.CLASS_INDEX
        elif out.shape[-1] == 1:
            kind = OutputKind.PROBABILITY
        else:
            kind = OutputKind.LOGITS
        # Without metadata: class 0 is background (PASCAL VOC, COCO conventions); () = every non-zero id.
        fg = {OutputKind.PROBABILITY: (0,), OutputKind.LOGITS: tuple(range(1, out.shape[-1])),
              OutputKind.CLASS_INDEX: ()}[kind]
        names, source = (), "detected"
    if input_range is not None:
        rng, source = _parse_range(input_range), "overrides"
    if output_kind is not None:
        kind, source = OutputKind(output_kind), "overrides"
    if foreground is not None:
        fg, source = tuple(foreground), "overrides"
    if kind is OutputKind.LOGITS and any(not 0 <= c < out.shape[-1] for c in fg):
        raise ValueError(f"foreground classes {list(fg)} do not exist in a model with {out.shape[-1]} classes")
    return ModelInfo(size, rng, kind, fg, names, source)
