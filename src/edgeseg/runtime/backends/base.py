"""The backend interface: input and output specs, ``run(batch)``, ``close()``; one class per backend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

METADATA_KEY = "edgeseg"


class BackendError(RuntimeError):
    """A model file that cannot be loaded or run by its backend."""


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: shape, dtype and (for quantized tensors) scale and zero point."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale > 0 and np.issubdtype(self.dtype, np.integer)


class Backend(Protocol):
    """What the segmenter, the export checks and the benchmarks need from an interpreter."""

    name: str
    input: TensorSpec
    output: TensorSpec
    metadata: dict  # the artifact's edgeseg metadata, {} for third-party models
    details: dict  # backend facts worth reporting (delegate, providers, threads)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a batch in the input's real-valued domain; return the output dequantized to float32."""

    def close(self) -> None: ...


class ClosingBackend:
    """Context-manager plumbing shared by the backend classes: ``with`` closes the interpreter."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def quantize_input(batch: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Bring ``batch`` to the input's dtype.

    A batch already in that dtype passes unchanged: uint8 pixels *are* the quantized input of uint8
    models (their scale and zero point describe the model's own normalisation, as in DeepLab's
    [-1, 1]). Float batches are quantized with the input's scale and zero point, or cast.
    """
    if batch.dtype == spec.dtype:
        return batch
    if spec.quantized:
        info = np.iinfo(spec.dtype)
        q = np.round(batch.astype(np.float32) / spec.scale) + spec.zero_point
        return np.clip(q, info.min, info.max).astype(spec.dtype)
    return batch.astype(spec.dtype)


def dequantize_output(out: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.quantized:
        return (out.astype(np.float32) - spec.zero_point) * np.float32(spec.scale)
    return out.astype(np.float32, copy=False)


def open_backend(path: str | Path, threads: int | None = None, **options) -> Backend:
    """Open ``path`` with the backend its suffix calls for (``.tflite`` LiteRT, ``.onnx`` ONNX Runtime)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from edgeseg.runtime.backends.litert import LiteRTBackend

        return LiteRTBackend(path, threads=threads, **options)
    if suffix == ".onnx":
        from edgeseg.runtime.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, threads=threads, **options)
    if suffix == ".keras":  # the reference model; needs the train extra
        from edgeseg.runtime.backends.keras import KerasBackend

        return KerasBackend(path, threads=threads)
    raise BackendError(f"{path}: unknown model type {suffix!r}; expected .tflite (LiteRT) or .onnx (ONNX Runtime)")
