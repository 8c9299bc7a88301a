"""ONNX Runtime backend for ``.onnx`` models (CPU by default; other execution providers on request)."""

from __future__ import annotations

import contextlib
import difflib
import io
from pathlib import Path

import numpy as np

from edgeseg.contract import METADATA_KEY
from edgeseg.errors import UsageError
from edgeseg.io import valid_utf8
from edgeseg.runtime.backends.base import (
    BackendError,
    ClosingBackend,
    TensorSpec,
    in_batches,
    parse_metadata,
)

_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8,
           "tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)
    return TensorSpec(arg.name, shape, np.dtype(_DTYPES.get(arg.type, np.float32)))


class OnnxRuntimeBackend(ClosingBackend):
    """An ``.onnx`` model in an ONNX Runtime session.

    ``providers`` picks execution providers (e.g. ``["CUDAExecutionProvider"]``); CPU is always the
    fallback. Asking for a provider this onnxruntime build lacks is an error that lists the ones it has.
    """

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None, providers: list[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ImportError("running .onnx models needs ONNX Runtime: pip install onnxruntime") from exc
        self.path = Path(path)
        available = ort.get_available_providers()
        wanted = list(providers or [])
        known = ort.get_all_providers()  # every provider onnxruntime has a name for, built here or not
        for name in wanted:
            if name not in known:  # a typo, which no other build would take either
                lower = {p.lower(): p for p in known}  # CUDA, not Cuda: the case that a typo most often gets wrong
                hint = [lower[h] for h in difflib.get_close_matches(name.lower(), lower, n=1, cutoff=0.5)]
                raise UsageError(f"unknown execution provider {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint
                                 else "") + f"; this onnxruntime build has {', '.join(available)}")
        missing = [p for p in wanted if p not in available]
        if missing:
            raise BackendError(f"execution providers {missing} are not in this onnxruntime build; available: {available}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        fallback = [] if "CPUExecutionProvider" in wanted else ["CPUExecutionProvider"]
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # its provider fallback prints "EP Error" banners
                self._session = ort.InferenceSession(_model_source(self.path), options, providers=wanted + fallback)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"ONNX Runtime cannot load {path}: {exc}") from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        self.metadata = parse_metadata(meta.get(METADATA_KEY), self.path)
        self.input = _spec(self._session.get_inputs()[0])
        self.output = _spec(self._session.get_outputs()[0])
        self.num_outputs = len(self._session.get_outputs())
        self.details = {"providers": self._session.get_providers(), "threads": threads}

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.dtype != self.input.dtype:
            batch = batch.astype(self.input.dtype)
        return in_batches(batch, self.input.shape[0], self._run)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = self._session.run([self.output.name], {self.input.name: batch})[0]
        return out.astype(np.float32, copy=False)

    def close(self) -> None:
        self._session = None


def _model_source(path: Path) -> str | bytes:
    """The file name, or the file's bytes where the name is not valid UTF-8 (onnxruntime refuses such a name;
    the name is kept where it can be, for models whose weights live in files beside them)."""
    return str(path) if valid_utf8(path) else path.read_bytes()
