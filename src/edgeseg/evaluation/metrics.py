"""Segmentation metrics on numpy arrays (no TensorFlow needed).

Classes follow Oxford-IIIT Pet trimaps shifted to 0-based: 0 = pet, 1 = background, 2 = border.
Foreground is pet + border, as the border band is the pet's outline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edgeseg.contract import CLASS_NAMES, FOREGROUND_CLASSES


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion matrix ``cm[true, pred]`` of two integer label arrays of the same shape."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"label shapes differ: true {y_true.shape} vs predicted {y_pred.shape}")
    t = y_true.reshape(-1).astype(np.int64)
    p = y_pred.reshape(-1).astype(np.int64)
    for name, a in (("true", t), ("predicted", p)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"{name} labels must be in [0, {num_classes - 1}], found [{a.min()}, {a.max()}]")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


@dataclass
class SegmentationMetrics:
    """Pixel accuracy, per-class IoU, mean IoU and foreground IoU from a confusion matrix."""

    pixel_accuracy: float
    iou: dict[str, float]
    mean_iou: float
    foreground_iou: float
    num_pixels: int
    class_names: tuple[str, ...] = field(default=CLASS_NAMES)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        return d


def metrics_from_confusion(
    cm: np.ndarray,
    class_names: tuple[str, ...] = CLASS_NAMES,
    foreground: tuple[int, ...] = FOREGROUND_CLASSES,
) -> SegmentationMetrics:
    """Metrics from a confusion matrix; classes absent from both truth and prediction are left out of mIoU."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    fg = np.zeros(len(cm), bool)
    fg[list(foreground)] = True
    fg_tp = cm[np.ix_(fg, fg)].sum()
    fg_union = cm[fg].sum() + cm[:, fg].sum() - fg_tp
    total = cm.sum()
    return SegmentationMetrics(
        pixel_accuracy=float(tp.sum() / total) if total else float("nan"),
        iou={name: float(v) for name, v in zip(class_names, iou)},
        mean_iou=float(np.nanmean(iou)) if np.any(union > 0) else float("nan"),
        foreground_iou=float(fg_tp / fg_union) if fg_union else float("nan"),
        num_pixels=int(total),
        class_names=tuple(class_names),
    )


def segmentation_metrics(y_true, y_pred, num_classes: int = 3, **kwargs) -> SegmentationMetrics:
    """Metrics of predicted labels against true labels (any matching shapes)."""
    return metrics_from_confusion(confusion_matrix(y_true, y_pred, num_classes), **kwargs)


def argmax_metrics(logits_of, images: np.ndarray, masks: np.ndarray, binary: bool = False,
                   classes: tuple[str, ...] = CLASS_NAMES, chunk: int = 256) -> SegmentationMetrics:
    """Class-argmax metrics of a model at its input size: ``logits_of(uint8 images) -> (N, H, W, C)`` scores.

    ``binary`` truth (no border class): a predicted border counts as foreground, not as a phantom class.
    ``classes``: the model's class names (a trimap model's, whatever its subject).
    """
    n = 2 if binary else len(CLASS_NAMES)
    cm = np.zeros((n, n), np.int64)
    for i in range(0, len(images), chunk):
        labels = np.argmax(logits_of(images[i:i + chunk]), axis=-1).astype(np.uint8)
        if binary:
            labels[labels == FOREGROUND_CLASSES[1]] = FOREGROUND_CLASSES[0]
        cm += confusion_matrix(masks[i:i + chunk], labels, n)
    if binary:
        return metrics_from_confusion(cm, classes[:2], FOREGROUND_CLASSES[:1])
    return metrics_from_confusion(cm, classes)
