import numpy as np
import pytest

from edgeseg.evaluation.metrics import confusion_matrix, segmentation_metrics


def test_confusion_matrix_counts():
    t = np.array([[0, 0, 1], [2, 1, 1]])
    p = np.array([[0, 1, 1], [2, 2, 1]])
    cm = confusion_matrix(t, p, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]


def test_metrics_hand_computed():
    t = np.array([[0, 0, 1], [2, 1, 1]])
    p = np.array([[0, 1, 1], [2, 2, 1]])
    m = segmentation_metrics(t, p)
    assert m.pixel_accuracy == pytest.approx(4 / 6)
    # pet: tp 1, union 2; background: tp 2, union 4; border: tp 1, union 2
    assert m.iou == pytest.approx({"pet": 0.5, "background": 0.5, "border": 0.5})
    assert m.mean_iou == pytest.approx(0.5)
    # foreground = pet|border: true fg at 3 pixels, predicted fg at 3; both fg at 2 -> 2 / 4
    assert m.foreground_iou == pytest.approx(0.5)
    assert m.num_pixels == 6


def test_absent_class_left_out_of_miou():
    t = np.array([0, 0, 1, 1])
    m = segmentation_metrics(t, t)
    assert np.isnan(m.iou["border"])
    assert m.mean_iou == 1.0 and m.foreground_iou == 1.0


def test_bad_labels_are_rejected():
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_matrix(np.zeros(3), np.zeros(4), 3)
    with pytest.raises(ValueError, match=r"in \[0, 2\]"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
