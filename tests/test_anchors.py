"""Third-party models (../shared/anchors) through the same runtime; skipped without ../shared."""

import cv2
import numpy as np
import pytest

from edgeseg.runtime.model_info import OutputKind
from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions


@pytest.fixture
def anchors(shared_dir):
    return shared_dir / "anchors"


@pytest.mark.parametrize("name,delegate,kind", [
    ("selfie_segmentation.tflite", "xnnpack", OutputKind.PROBABILITY),  # needs XNNPACK's custom op
    ("selfie_segmentation_landscape.tflite", "xnnpack", OutputKind.PROBABILITY),
    ("deeplabv3_mnv2_pascal_quant.tflite", "none", OutputKind.CLASS_INDEX),  # XNNPACK rejects a resize
])
def test_anchor_loads_with_the_right_resolver(anchors, name, delegate, kind):
    with Segmenter(SegmenterOptions(anchors / name)) as seg:
        assert seg.backend.details["delegate"] == delegate
        assert seg.info.output_kind is kind and seg.info.source == "detected"
        alpha = seg.segment(np.zeros((120, 160, 3), np.uint8))
    assert alpha.shape == (120, 160)


def test_deeplab_finds_the_pets(anchors, shared_dir):
    data = shared_dir / "data" / "pets-pseudo"
    names = [line.split()[0] for line in (data / "annotations" / "test.txt").read_text().splitlines()[:8]]
    ious = []
    with Segmenter(SegmenterOptions(anchors / "deeplabv3_mnv2_pascal_quant.tflite", foreground=[8, 12])) as seg:
        for name in names:
            image = cv2.imread(str(data / "images" / f"{name}.jpg"))
            truth = cv2.imread(str(data / "annotations" / "trimaps" / f"{name}.png"), cv2.IMREAD_GRAYSCALE) != 2
            pred = seg.segment(image) > 0.5
            ious.append((truth & pred).sum() / (truth | pred).sum())
    assert np.mean(ious) > 0.7  # these labels were made by this teacher, so agreement is high
