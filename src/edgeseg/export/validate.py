"""Accuracy checks: every artifact, run through its runtime backend, against the Keras model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.export.base import ArtifactReport, Gates, Precision
from edgeseg.runtime.alpha import softmax
from edgeseg.runtime.backends import BackendError, open_backend
from edgeseg.evaluation.metrics import (
    CLASS_NAMES,
    SegmentationMetrics,
    confusion_matrix,
    metrics_from_confusion,
)


@dataclass
class Reference:
    """The Keras model's probabilities and metrics on the evaluation images."""

    images: np.ndarray  # (N, S, S, 3) uint8 RGB
    masks: np.ndarray  # (N, S, S) ground truth
    probs: np.ndarray  # (N, S, S, C) float32
    metrics: SegmentationMetrics


def _metrics(masks: np.ndarray, labels: np.ndarray) -> SegmentationMetrics:
    return metrics_from_confusion(confusion_matrix(masks, labels, len(CLASS_NAMES)))


def keras_reference(model, images: np.ndarray, masks: np.ndarray, batch_size: int = 16) -> Reference:
    logits = model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    probs = softmax(logits)
    return Reference(images, masks, probs, _metrics(masks, probs.argmax(-1)))


def artifact_probs(path: str | Path, images: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Class probabilities of an exported model on uint8 images, through the runtime backend."""
    with open_backend(path, threads=threads) as backend:
        batch = images if backend.input.dtype == np.uint8 else images.astype(np.float32)
        return softmax(backend.run(batch))


def compare(report: ArtifactReport, reference: Reference, gates: Gates, threads: int | None = None) -> ArtifactReport:
    """Fill ``report`` with agreement, probability differences, metrics, deltas and the gate verdict; an artifact
    its runtime cannot run fails, and is dropped as a failed conversion is (``path`` emptied)."""
    try:
        probs = artifact_probs(report.path, reference.images, threads)
    except BackendError as exc:  # one broken artifact must not end the export of the others
        report.failures.append(f"its runtime cannot run it: {exc}")
        Path(report.path).unlink(missing_ok=True)
        report.path = ""
        return report
    if probs.shape != reference.probs.shape:
        report.failures.append(f"output shape {probs.shape} differs from Keras {reference.probs.shape}")
        return report
    diff = np.abs(probs - reference.probs)
    labels = probs.argmax(-1)
    metrics = _metrics(reference.masks, labels)
    report.agreement = float(np.mean(labels == reference.probs.argmax(-1)))
    report.max_abs_prob_diff = float(diff.max())
    report.mean_abs_prob_diff = float(diff.mean())
    report.mean_iou = metrics.mean_iou
    report.foreground_iou = metrics.foreground_iou
    report.delta_miou_points = 100 * (metrics.mean_iou - reference.metrics.mean_iou)
    report.delta_fg_iou_points = 100 * (metrics.foreground_iou - reference.metrics.foreground_iou)
    report.failures += gates.check(Precision(report.precision), report.agreement, report.max_abs_prob_diff,
                                   report.delta_miou_points)
    report.passed = not report.failures
    return report
