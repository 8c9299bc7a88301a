"""Keras -> TFLite (fp32, fp16, full-integer int8, dynamic-range) with embedded metadata.

Path: Keras 3 ``model.export(format="tf_saved_model")`` with a static input signature, then
``TFLiteConverter.from_saved_model``. (``from_concrete_functions`` with Keras 3 wrote models with
unfrozen weights and NaN outputs.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.contract import METADATA_KEY, ArtifactMetadata, Precision
from edgeseg.export.calibration import tflite_representative_dataset
from edgeseg.io import temporary_directory
from edgeseg.quiet import native_stderr_silenced


def export_saved_model(model, directory: Path, batch_size: int = 1) -> Path:
    """A SavedModel of ``model`` with a ``[batch_size, H, W, 3]`` float input named ``image`` (0: dynamic)."""
    import tensorflow as tf

    _, h, w, c = model.input_shape
    model.export(str(directory), format="tf_saved_model", verbose=False,
                 input_signature=[tf.TensorSpec([batch_size or None, h, w, c], tf.float32, name="image")])
    return directory


def convert(saved_model: Path, precision: Precision, calibration: np.ndarray | None = None,
            uint8_output: bool = False, batch_size: int = 1) -> bytes:
    """Convert a SavedModel (of a ``batch_size`` input, 0: dynamic) to TFLite bytes at ``precision``.

    int8 is full-integer (int8 weights and activations) with a uint8 input, so a camera frame goes in
    without a float conversion; the output is float32 unless ``uint8_output``.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if precision is Precision.FP16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision is Precision.DYNAMIC:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision is Precision.INT8:
        if calibration is None:
            raise ValueError("int8 conversion needs calibration images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = tflite_representative_dataset(calibration, batch_size)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8 if uint8_output else tf.float32
    with native_stderr_silenced():  # the converter prints its own settings ("fully_quantize: 0, ...")
        return converter.convert()


def add_metadata(content: bytes, metadata: ArtifactMetadata) -> bytes:
    """Set the flatbuffer's ``edgeseg`` metadata entry (JSON), replacing any. Needs no TensorFlow."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata.to_json().encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_KEY.encode()] + [entry]
    builder = flatbuffers.Builder(len(content) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def export_tflite(model, precisions: list[Precision], metadata_for, calibration=None, batch_size: int = 1,
                  uint8_output: bool = False) -> dict[Precision, bytes]:
    """TFLite bytes (metadata included) for each precision, from one SavedModel export."""
    with temporary_directory("savedmodel") as tmp:
        saved = export_saved_model(model, Path(tmp) / "saved_model", batch_size)
        return {p: add_metadata(convert(saved, p, calibration, uint8_output, batch_size), metadata_for(p)) for p in precisions}
