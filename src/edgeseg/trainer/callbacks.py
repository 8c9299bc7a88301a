"""Keras callbacks of a training run: fresh BatchNormalization statistics, and validation masks scored the way
users see them, to pick the best checkpoint."""

from __future__ import annotations

import cv2
import keras
import numpy as np

from edgeseg.contract import TRIMAP_MASK_WEIGHTS
from edgeseg.runtime.alpha import alpha_from_logits, soft_threshold
from edgeseg.evaluation.mask_quality import MaskQuality, MaskQualityMeter, mean_quality

MONITOR = "val_pet_iou"  # pet IoU with border pixels ignored, at each image's own resolution; mean of sources


def runtime_mask_quality(model, images: np.ndarray, labels: list[np.ndarray], batch_size: int = 32) -> MaskQuality:
    """The quality of the mask the runtime would show, scored at each label's own resolution.

    The model's class probabilities at its input size are combined with the trimap mask weights, resized
    to each image's own size and soft-thresholded as the runtime does with ``--edges bilinear`` (the
    guided resize would need the photos at full size in memory too).

    Args:
        model: a Keras model that outputs class logits.
        images: images at the model's input size (N, S, S, 3), uint8 RGB.
        labels: the same images' 0-based labels at their original sizes.
        batch_size: prediction batch size.
    """
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} label maps")
    alpha = alpha_from_logits(model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0),
                              TRIMAP_MASK_WEIGHTS)
    meter = MaskQualityMeter()
    for a, truth in zip(alpha, labels):
        full = cv2.resize(a, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_LINEAR)
        meter.add(soft_threshold(full), truth)
    return meter.result()


class MaskQualityCallback(keras.callbacks.Callback):
    """Adds ``val_pet_iou`` and ``val_boundary_f`` (:func:`runtime_mask_quality`, the mean over the sources)
    and each source's ``val_pet_iou_<source>`` to each epoch's logs.

    Place it before the callbacks that read these logs (checkpoint, early stopping, CSV logger).

    Args:
        sources: per source name, its validation images at the model's input size (N, S, S, 3), uint8 RGB,
            and the same images' 0-based labels at their original sizes.
        batch_size: prediction batch size.
    """

    def __init__(self, sources: dict[str, tuple[np.ndarray, list[np.ndarray]]], batch_size: int = 32):
        super().__init__()
        for name, (images, labels) in sources.items():
            if len(images) != len(labels):
                raise ValueError(f"{name}: {len(images)} validation images but {len(labels)} label maps")
        self.sources, self.batch_size = sources, batch_size

    def on_epoch_end(self, epoch, logs=None):
        results = {name: runtime_mask_quality(self.model, images, labels, self.batch_size)
                   for name, (images, labels) in self.sources.items()}
        overall = mean_quality(list(results.values()))
        if logs is not None:
            logs[MONITOR] = overall.pet_iou
            logs["val_boundary_f"] = overall.boundary_f
            if len(results) > 1:
                logs.update({f"{MONITOR}_{name}": r.pet_iou for name, r in results.items()})


class BatchNormRefresh(keras.callbacks.Callback):
    """Re-estimates the trainable BatchNormalization layers' moving statistics at the end of each epoch.

    Keras keeps an exponential average of the batch statistics (momentum 0.99), which lags behind weights
    that move faster than it: in short runs and fine-tunes the checkpoint metric and the exported model read
    stale statistics (``experiments/results/bn_statistics.json``). This sets them to the plain mean over
    ``batches`` training batches of the current weights, before the callbacks after it score and save the
    model (Keras's own ``val_loss``/``val_miou`` are computed earlier, with the averaged statistics). Frozen
    layers, such as the pretrained encoder's, keep theirs.

    Args:
        dataset: training batches, ``(images, masks[, weights])``.
        batches: how many batches to average over.
    """

    def __init__(self, dataset, batches: int = 8):
        super().__init__()
        self.dataset, self.batches = dataset, batches

    def on_epoch_end(self, epoch, logs=None):
        layers = [layer for layer in _sublayers(self.model)
                  if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
        if not layers:
            return
        momentum = [layer.momentum for layer in layers]
        try:
            for k, batch in enumerate(self.dataset.take(self.batches)):
                for layer in layers:  # moving = (k * moving + this batch's) / (k + 1): the running mean
                    layer.momentum = k / (k + 1)
                self.model(batch[0], training=True)
        finally:
            for layer, m in zip(layers, momentum):
                layer.momentum = m


def _sublayers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _sublayers(layer)
