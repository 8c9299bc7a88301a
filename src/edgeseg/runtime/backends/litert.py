"""LiteRT (``ai-edge-litert``) backend for ``.tflite`` models, XNNPACK by default."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np

from edgeseg.contract import METADATA_KEY, MetadataError
from edgeseg.quiet import native_stderr_silenced
from edgeseg.runtime.backends.probe import crash_in_child
from edgeseg.runtime.backends.base import (
    BackendError,
    ClosingBackend,
    TensorSpec,
    dequantize_output,
    in_batches,
    parse_metadata,
    quantize_input,
)

log = logging.getLogger("edgeseg")


def _import_interpreter():
    try:
        from ai_edge_litert import interpreter
    except ImportError as exc:
        raise ImportError("running .tflite models needs LiteRT: pip install ai-edge-litert") from exc
    return interpreter


def read_tflite_metadata(content: bytes) -> bytes | None:
    """The edgeseg metadata entry of a TFLite flatbuffer (None when absent), read without TensorFlow."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAs(content, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() and entry.Name() == METADATA_KEY.encode():
                data = model.Buffers(entry.Buffer()).DataAsNumpy()
                return bytes(data) if isinstance(data, np.ndarray) else b""
    except (struct.error, IndexError, ValueError, TypeError) as exc:  # offsets of a damaged file point anywhere
        raise MetadataError(f"its metadata table is damaged ({type(exc).__name__})") from None
    return None


def _spec(detail: dict) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    # A dynamic dimension shows as 1 in "shape" and -1 in "shape_signature".
    dims = [-1 if s < 0 else int(d) for d, s in zip(detail["shape"], detail.get("shape_signature", detail["shape"]))]
    return TensorSpec(detail["name"], tuple(dims), np.dtype(detail["dtype"]), float(scale), int(zero_point))


class LiteRTBackend(ClosingBackend):
    """A ``.tflite`` model in a LiteRT interpreter.

    Tries the default op resolver (with the XNNPACK delegate) first, then the builtin resolver without
    default delegates; some models load only with one of them (MediaPipe's selfie models need XNNPACK
    for a custom op, the DeepLab anchor is rejected by XNNPACK). ``details['delegate']`` says which ran.
    """

    name = "litert"

    def __init__(self, path: str | Path, threads: int | None = None, delegate: str = "auto", probe: bool = True):
        interpreter = _import_interpreter()
        self.path = Path(path)
        content = self.path.read_bytes()
        crash = crash_in_child(self.path, content) if probe else None
        if crash:
            raise BackendError(f"LiteRT crashes ({crash}) when it runs {path}: the file is damaged")
        resolvers = {
            "xnnpack": interpreter.OpResolverType.AUTO,
            "none": interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        }
        order = list(resolvers) if delegate == "auto" else [delegate]
        errors = []
        for kind in order:
            try:
                with native_stderr_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
                    self._interp = interpreter.Interpreter(
                        model_content=content, num_threads=threads, experimental_op_resolver_type=resolvers[kind])
                    self._interp.allocate_tensors()
                break
            except (ValueError, RuntimeError) as exc:
                errors.append(f"{kind}: {exc}")
                log.debug("LiteRT could not load %s with %s: %s", path, kind, exc)
        else:
            raise BackendError(f"LiteRT cannot load {path}: " + "; ".join(errors))
        try:
            self.metadata = parse_metadata(read_tflite_metadata(content), self.path)
        except MetadataError as exc:
            raise BackendError(f"{path}: {exc}") from None
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        self._in, self._out = inputs[0]["index"], outputs[0]["index"]
        self.input, self.output = _spec(inputs[0]), _spec(outputs[0])
        self.num_outputs = len(outputs)
        self.details = {"delegate": kind, "threads": threads, "fallback_errors": errors}

    def run(self, batch: np.ndarray) -> np.ndarray:
        # a dynamic batch is allocated as one image: one per call, without reallocating the interpreter
        return in_batches(quantize_input(batch, self.input), self.input.batch, self._invoke)

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        try:
            self._interp.set_tensor(self._in, batch)
            self._interp.invoke()
            output = self._interp.get_tensor(self._out)
        except (ValueError, RuntimeError) as exc:  # e.g. a damaged file whose tensors have no data
            raise BackendError(f"LiteRT cannot run {self.path}: {exc}") from None
        return dequantize_output(output, self.output)

    def close(self) -> None:
        self._interp = None
