"""Keras -> ONNX fp32 (tf2onnx) and int8 (onnxruntime static quantization, QDQ, per-channel).

tf2onnx 1.17 converts Keras 3 models directly (``tf2onnx.convert.from_keras``); that is the path used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.contract import METADATA_KEY, ArtifactMetadata
from edgeseg.export.calibration import ort_calibration_reader
from edgeseg.io import temporary_directory

OPSET = 17


def set_metadata(model_proto, metadata: ArtifactMetadata) -> None:
    """Store ``metadata`` as JSON under the ``edgeseg`` key of ``metadata_props`` (replacing any)."""
    props = [p for p in model_proto.metadata_props if p.key != METADATA_KEY]
    del model_proto.metadata_props[:]
    model_proto.metadata_props.extend(props)
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata.to_json()


def convert_fp32(model, batch_size: int = 1, opset: int = OPSET):
    """An ``onnx.ModelProto`` of the Keras model with a ``[batch_size, H, W, 3]`` input ``image`` (0: dynamic)."""
    import logging

    import onnx
    import tensorflow as tf
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    _, h, w, c = model.input_shape
    proto, _ = tf2onnx.convert.from_keras(
        model, input_signature=[tf.TensorSpec([batch_size or None, h, w, c], tf.float32, name="image")], opset=opset)
    onnx.checker.check_model(proto)
    return proto


def quantize_int8(fp32_path: Path, calibration: np.ndarray, reduce_range: bool, metadata: ArtifactMetadata) -> bytes:
    """Static QDQ int8 (per-channel weights, uint8 activations) of an fp32 ONNX file.

    ``quant_pre_process`` (shape inference and graph optimisation) runs first, as onnxruntime advises.
    ``reduce_range`` uses 7-bit weights, which keeps accuracy on x86 CPUs without VNNI.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model_input = onnx.load(str(fp32_path), load_external_data=False).graph.input[0]
    input_name, batch = model_input.name, model_input.type.tensor_type.shape.dim[0].dim_value  # 0: dynamic
    with temporary_directory("onnx") as tmp:
        pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(pre))
        quantize_static(
            str(pre), str(out), ort_calibration_reader(calibration, input_name, batch),
            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        proto = onnx.load(str(out))
    set_metadata(proto, metadata)
    return proto.SerializeToString()
