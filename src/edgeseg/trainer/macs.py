"""Multiply-accumulate count of a Keras model, per layer group (recorded in artifacts' metadata).

MACs are counted for convolutions, transposed convolutions and dense layers (everything else is
negligible in these models).
"""

from __future__ import annotations

import numpy as np


def keras_macs(model) -> dict[str, int]:
    """MACs per top-level layer group of a Keras model at batch 1: {'encoder': ..., 'decoder': ..., 'total': ...}."""
    import keras

    groups: dict[str, int] = {}

    def visit(layer, group: str):
        if isinstance(layer, keras.Model):
            for sub in layer.layers:
                visit(sub, group)
            return
        macs = 0
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            macs = h * w * c * int(np.prod(layer.kernel_size))
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, cin = layer.input.shape
            macs = h * w * cin * int(np.prod(layer.kernel_size)) * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, cout = layer.output.shape
            macs = h * w * cout * int(np.prod(layer.kernel_size)) * layer.input.shape[-1] // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            macs = int(np.prod(layer.input.shape[1:])) * layer.units
        if macs:
            groups[group] = groups.get(group, 0) + int(macs)

    for layer in model.layers:
        visit(layer, "encoder" if layer.name == "encoder" else "decoder")
    groups["total"] = sum(groups.values())
    return groups
