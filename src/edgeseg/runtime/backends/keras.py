"""Keras backend for ``.keras`` models: the reference that benchmarks and checks compare against.

Imports TensorFlow, so it is only loaded when a ``.keras`` file is opened (never by the edge runtime).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np

from edgeseg.contract import CLASS_NAMES, TRIMAP_MASK_WEIGHTS, ArtifactMetadata, is_trimap
from edgeseg.quiet import native_stderr_silenced
from edgeseg.runs import RunFolder
from edgeseg.runtime.backends.base import ClosingBackend, TensorSpec


class KerasBackend(ClosingBackend):
    name = "keras"

    def __init__(self, path: str | Path, threads: int | None = None):
        with native_stderr_silenced():  # TensorFlow's C++ start-up lines (absl, oneDNN, CUDA), unless --verbose
            self._open(path, threads)

    def _open(self, path: str | Path, threads: int | None) -> None:
        import tensorflow as tf

        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # TensorFlow already runs in this process (training, export): its pools stay
                pass
        import keras

        self.path = Path(path)
        self.model = keras.models.load_model(self.path, compile=False)
        _, h, w, c = self.model.input_shape
        self.input = TensorSpec("image", (1, h, w, c), np.dtype(np.float32))
        self.output = TensorSpec("logits", (1, *self.model.output_shape[1:]), np.dtype(np.float32))
        self.num_outputs = len(self.model.outputs)
        classes = RunFolder(self.path.parent).classes()  # an edgeseg run's model: its subject's name
        trimap = self.model.output_shape[-1] == len(CLASS_NAMES) and is_trimap(classes)  # the exporter's rule
        self.metadata = ArtifactMetadata(self.model.name, "keras", "fp32", (h, w), source_model=str(self.path),
                                         classes=classes if trimap else CLASS_NAMES,
                                         mask_weights=TRIMAP_MASK_WEIGHTS if trimap else None)
        self._call = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        self.details = {"threads": threads}
        self._first = True

    def run(self, batch: np.ndarray) -> np.ndarray:
        first, self._first = self._first, False
        with native_stderr_silenced() if first else nullcontext():  # the first call starts TF's devices, which log
            return self._call(batch.astype(np.float32, copy=False)).numpy()

    def close(self) -> None:
        self.model = None

