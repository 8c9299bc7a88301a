"""Keras backend for ``.keras`` models: the reference that benchmarks and checks compare against.

Imports TensorFlow, so it is only loaded when a ``.keras`` file is opened (never by the edge runtime).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.runtime.backends.base import ClosingBackend, TensorSpec


class KerasBackend(ClosingBackend):
    name = "keras"

    def __init__(self, path: str | Path, threads: int | None = None):
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras

        from edgeseg.export.metadata import artifact_metadata

        self.path = Path(path)
        self.model = keras.models.load_model(self.path, compile=False)
        _, h, w, c = self.model.input_shape
        self.input = TensorSpec("image", (1, h, w, c), np.dtype(np.float32))
        self.output = TensorSpec("logits", (1, *self.model.output_shape[1:]), np.dtype(np.float32))
        self.metadata = artifact_metadata(self.model.name, h, "float32", "keras", "fp32", str(self.path), None)
        self._call = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        self.details = {"threads": threads}

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._call(batch.astype(np.float32, copy=False)).numpy()

    def close(self) -> None:
        self.model = None
