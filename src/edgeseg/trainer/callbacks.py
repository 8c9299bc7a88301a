"""Keras callback that scores the validation masks the way users see them, to pick the best checkpoint."""

from __future__ import annotations

import cv2
import keras
import numpy as np

from edgeseg.contract import TRIMAP_MASK_WEIGHTS
from edgeseg.runtime.segmenter import soft_threshold
from edgeseg.trainer.mask_quality import MaskQualityMeter

MONITOR = "val_pet_iou"  # pet IoU with border pixels ignored, at each image's own resolution


class MaskQualityCallback(keras.callbacks.Callback):
    """Adds ``val_pet_iou`` and ``val_boundary_f`` to each epoch's logs.

    The model's class probabilities at its input size are combined with the trimap mask weights, resized
    to each validation image's own size and soft-thresholded as the runtime does with ``--edges bilinear``
    (the guided resize would need the photos at full size in memory too). Place it before the
    callbacks that read these logs (checkpoint, early stopping, CSV logger).

    Args:
        images: validation images at the model's input size (N, S, S, 3), uint8 RGB.
        labels: the same images' 0-based labels at their original sizes.
        batch_size: prediction batch size.
    """

    def __init__(self, images: np.ndarray, labels: list[np.ndarray], batch_size: int = 32):
        super().__init__()
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} validation images but {len(labels)} label maps")
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.weights = np.array(TRIMAP_MASK_WEIGHTS, np.float32)

    def on_epoch_end(self, epoch, logs=None):
        logits = self.model.predict(self.images.astype(np.float32), batch_size=self.batch_size, verbose=0)
        z = logits.astype(np.float32)
        p = np.exp(z - z.max(-1, keepdims=True))
        alpha = (p @ self.weights) / p.sum(-1)
        meter = MaskQualityMeter()
        for a, labels in zip(alpha, self.labels):
            full = cv2.resize(a, (labels.shape[1], labels.shape[0]), interpolation=cv2.INTER_LINEAR)
            meter.add(soft_threshold(full), labels)
        result = meter.result()
        if logs is not None:
            logs[MONITOR] = result.pet_iou
            logs["val_boundary_f"] = result.boundary_f
