"""The artifact contract: metadata with and without mask weights, written and read through real files."""

import json
import shutil

import numpy as np
import pytest

from edgeseg.contract import (
    CLASS_NAMES,
    FORMATS,
    TRIMAP_MASK_WEIGHTS,
    ArtifactMetadata,
    MetadataError,
    OutputKind,
    format_of,
    parse_foreground,
)
from edgeseg.errors import NotFound
from edgeseg.runtime.backends import BackendError, open_backend
from edgeseg.runtime.packaged import packaged_model
from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions


def test_metadata_round_trips_with_and_without_weights():
    with_weights = ArtifactMetadata("m", "tflite", "int8", (128, 128), "uint8", mask_weights=TRIMAP_MASK_WEIGHTS)
    back = ArtifactMetadata.from_json(with_weights.to_json())
    assert back == with_weights and back.class_weights() == (1.0, 0.0, 0.5)
    plain = json.loads(with_weights.to_json())
    del plain["output"]["mask_weights"]  # an artifact from before weights existed
    old = ArtifactMetadata.from_dict(plain)
    assert old.mask_weights is None and old.class_weights() == (1.0, 0.0, 1.0)  # foreground = pet + border, as before
    assert old.output_kind is OutputKind.LOGITS and old.classes == CLASS_NAMES


@pytest.mark.parametrize("change,message", [
    (lambda d: d.pop("input"), "lacks the field 'input'"),
    (lambda d: d["output"].update(kind="heatmap"), "malformed field"),
    (lambda d: d["output"].update(mask_weights=[1, 0]), "expected 3 weights in"),
    (lambda d: d["output"].update(foreground_classes=[5]), "do not fit 3 classes"),
])
def test_malformed_metadata_names_what_is_wrong(change, message):
    d = ArtifactMetadata("m", "onnx", "fp32", (64, 64)).to_dict()
    change(d)
    with pytest.raises(MetadataError, match=message):
        ArtifactMetadata.from_dict(d)
    with pytest.raises(MetadataError, match="not JSON"):
        ArtifactMetadata.from_json("{oops")


def test_foreground_spec_with_weights():
    assert parse_foreground("0,2:0.5") == {0: 1.0, 2: 0.5}
    assert parse_foreground("8, 12") == {8: 1.0, 12: 1.0}
    for bad in ("", "a", "1:2", "-1"):
        with pytest.raises(ValueError):
            parse_foreground(bad)
    # taken without a word: the last weight of a class named twice won, and all-zero weights made an empty mask
    with pytest.raises(ValueError, match="names class 0 twice"):
        parse_foreground("0:0.5,0")
    with pytest.raises(ValueError, match="every class weighs 0, so the mask would be empty"):
        parse_foreground("0:0,2:0")
    assert parse_foreground("0:0,2:0.5") == {0: 0.0, 2: 0.5}


def test_format_table_picks_the_backend():
    assert format_of("x/model.TFLITE") is FORMATS["tflite"] and FORMATS["onnx"].backend == "onnxruntime"
    with pytest.raises(ValueError, match="unknown model type '.pt'"):
        format_of("model.pt")


def _retagged(tmp_path, weights):
    """The shipped edge model with its metadata rewritten (TFLite metadata is written without TensorFlow)."""
    from edgeseg.export.tflite import add_metadata

    src = packaged_model("edge")
    with open_backend(src) as backend:
        meta = backend.metadata
    path = tmp_path / f"edge_{weights}.tflite"
    fields = {**meta.__dict__, "mask_weights": weights}
    path.write_bytes(add_metadata(src.read_bytes(), ArtifactMetadata(**fields)))
    return path


def test_the_runtime_reads_mask_weights_from_the_file(tmp_path):
    frame = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    alphas = {}
    for weights in ((1.0, 0.0, 1.0), (1.0, 0.0, 0.5), (1.0, 0.0, 0.0)):
        with Segmenter(SegmenterOptions(_retagged(tmp_path, weights), softness=0.5)) as seg:
            assert seg.info.mask_weights == {c: w for c, w in enumerate(weights) if w}
            alphas[weights[2]] = seg.segment(frame)
    # alpha = p(pet) + w * p(border): halfway between the two ends for w = 0.5
    np.testing.assert_allclose(alphas[0.5], (alphas[1.0] + alphas[0.0]) / 2, atol=2e-3)
    assert (alphas[1.0] - alphas[0.0]).max() > 0.05  # the border does carry probability here


def test_malformed_metadata_in_a_file_is_an_error_naming_it(tmp_path):
    from edgeseg.export.tflite import add_metadata

    class Garbage(ArtifactMetadata):
        def to_json(self):
            return '{"model": "x"}'

    path = tmp_path / "bad.tflite"
    meta = Garbage("m", "tflite", "int8", (96, 96))
    path.write_bytes(add_metadata(packaged_model("edge").read_bytes(), meta))
    with pytest.raises(BackendError, match="bad.tflite: edgeseg metadata lacks the field 'input'"):
        open_backend(path)


def test_a_folder_is_not_a_model(tmp_path):
    shutil.copy(packaged_model("edge"), tmp_path / "m.tflite")
    with pytest.raises(NotFound, match="is a folder"):  # the wrong kind of thing named: exit code 2
        open_backend(tmp_path)
