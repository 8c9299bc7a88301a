"""The backend interface: input and output specs, ``run(batch)``, ``close()``; one class per backend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from edgeseg.contract import ArtifactMetadata, MetadataError
from edgeseg.errors import EdgesegError


class BackendError(EdgesegError, RuntimeError):
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

    @property
    def batch(self) -> int:
        """Images per run: the fixed batch, or one for a dynamic batch (-1)."""
        return max(self.shape[0], 1)


class Backend(Protocol):
    """What the segmenter, the export checks and the benchmarks need from an interpreter."""

    name: str
    input: TensorSpec
    output: TensorSpec  # the first output; segmentation models have exactly one
    num_outputs: int
    metadata: ArtifactMetadata | None  # the artifact's edgeseg metadata, None for third-party models
    details: dict  # backend facts worth reporting (delegate, providers, threads)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a batch in the input's real-valued domain; return the output dequantized to float32."""

    def close(self) -> None: ...


def parse_metadata(text: str | bytes | None, path: Path) -> ArtifactMetadata | None:
    """The artifact's metadata entry, parsed; None when it has none. Malformed metadata is an error
    naming the file: a model whose input range or classes are unknown would run into garbage."""
    if text is None:
        return None
    try:
        return ArtifactMetadata.from_json(text)
    except MetadataError as exc:
        raise BackendError(f"{path}: {exc}") from None


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


def in_batches(batch: np.ndarray, size: int, run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``run`` over ``batch`` in batches of the model's fixed batch ``size`` (< 1: any size, one call), the last
    one filled up with copies of its last image and its outputs for them dropped."""
    if size < 1 or batch.shape[0] == size:
        return run(batch)
    outputs = []
    for start in range(0, batch.shape[0], size):
        part = batch[start:start + size]
        outputs.append(run(filled(part, size))[:len(part)])
    return np.concatenate(outputs)


def filled(part: np.ndarray, size: int) -> np.ndarray:
    """``part``, a batch of ``size`` images or fewer, filled up to ``size`` with copies of its last image."""
    if len(part) >= size:
        return part
    return np.concatenate([part, np.repeat(part[-1:], size - len(part), axis=0)])
