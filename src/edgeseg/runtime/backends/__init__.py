"""Model backends, one class per interpreter, picked through the format table (:data:`edgeseg.contract.FORMATS`)."""

from __future__ import annotations

import importlib
from pathlib import Path

from edgeseg.contract import format_of
from edgeseg.errors import NotFound
from edgeseg.runs import keras_runnable
from edgeseg.runtime.backends.base import Backend, BackendError, TensorSpec
from edgeseg.runtime.cores import usable_cores

# Format.backend -> the class that runs it, imported only when a model of that format is opened.
BACKENDS = {
    "litert": "edgeseg.runtime.backends.litert:LiteRTBackend",
    "onnxruntime": "edgeseg.runtime.backends.onnxruntime:OnnxRuntimeBackend",
    "keras": "edgeseg.runtime.backends.keras:KerasBackend",  # the reference model; needs the train extra
}


def default_threads() -> int:
    """Every core the process may use (:func:`~edgeseg.runtime.cores.usable_cores`): LiteRT alone would use one
    thread, half the speed on two cores."""
    return usable_cores()


def open_backend(path: str | Path, threads: int | None = None, **options) -> Backend:
    """Open ``path`` with the backend its format names; ``threads`` defaults to :func:`default_threads`."""
    path = Path(path)
    if path.is_dir():
        raise NotFound(f"model {path} is a folder; expected a .tflite or .onnx file")
    if not path.is_file():
        raise NotFound(f"model {path} not found")
    fmt = format_of(path)  # a file of another kind: a usage error
    if path.stat().st_size == 0:
        raise BackendError(f"model {path} is empty (0 bytes): an interrupted download or copy?")
    if fmt.backend == "keras" and not keras_runnable():  # the runtime-only install of an edge device
        raise BackendError(f"{path} is a Keras model, which needs TensorFlow: export it with `edgeseg export {path} "
                           '--int8` where the training stack is installed, or install it here: pip install "edgeseg[train]"')
    module, _, cls = BACKENDS[fmt.backend].partition(":")
    backend_class = getattr(importlib.import_module(module), cls)
    return backend_class(path, threads=threads or default_threads(), **options)


__all__ = ["BACKENDS", "Backend", "BackendError", "TensorSpec", "default_threads", "open_backend"]
