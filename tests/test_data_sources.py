"""Several datasets in one run: source specs, split lists, the outline of binary masks (no TensorFlow)."""

import cv2
import numpy as np
import pytest

from edgeseg.data import DataError, DataSource, Outline, load_folder, parse_sources
from edgeseg.contract import BORDER, PET
from edgeseg.data.outline import IGNORE, band_width, mark_outline
from tests.helpers import write_mask_folder, write_oxford


def test_a_source_spec_carries_an_optional_weight(tmp_path):
    folder = write_mask_folder(tmp_path / "cats", n=4, size=32)
    assert DataSource.parse(str(folder)) == DataSource(str(folder), 1.0)
    assert DataSource.parse(f"{folder}:3") == DataSource(str(folder), 3.0)
    assert DataSource.parse(f"{folder}:0.5").spec == f"{folder}:0.5"
    assert DataSource.parse(f"{folder}:3").name == "cats"
    for bad, why in ((f"{folder}:abc", "must be a number"), (f"{folder}:0", "above 0"), (f"{folder}:-1", "above 0"),
                     (f"{folder}:nan", "above 0"), (f"{folder}:inf", "above 0"), (str(tmp_path / "nowhere"), "not found")):
        with pytest.raises(DataError, match=why):
            DataSource.parse(bad)


def test_two_sources_of_one_name_are_refused(tmp_path):
    a = write_mask_folder(tmp_path / "a" / "cats", n=4, size=32)
    b = write_mask_folder(tmp_path / "b" / "cats", n=4, size=32)
    with pytest.raises(DataError, match="two sources are named 'cats'"):
        parse_sources([str(a), f"{b}:2"])
    with pytest.raises(DataError, match="no dataset"):
        parse_sources([])


def test_a_mask_folder_uses_its_split_lists(tmp_path):
    folder = write_mask_folder(tmp_path / "cats", n=20, size=32)
    names = [f"cat_{i}" for i in range(20)]
    (folder / "trainval.txt").write_text("\n".join(names[:15]) + "\n")
    (folder / "test.txt").write_text("\n".join(names[15:]) + "\n")
    test = load_folder(folder, "test", 32, progress=False)
    assert test.names == names[15:]
    train = load_folder(folder, "train", 32, val_fraction=0.2, progress=False)
    val = load_folder(folder, "val", 32, val_fraction=0.2, progress=False)
    assert sorted(train.names + val.names) == sorted(names[:15]) and len(val) == 3
    (folder / "test.txt").write_text("cat_0\nnot_there\n")
    with pytest.raises(DataError, match="test.txt have no image.*'not_there'"):
        load_folder(folder, "test", 32, progress=False)


def test_without_split_lists_a_seeded_tenth_is_the_test_split(tmp_path):
    folder = write_mask_folder(tmp_path / "cats", n=30, size=32)
    test = load_folder(folder, "test", 32, progress=False)
    rest = load_folder(folder, "train", 32, val_fraction=0.0, progress=False)
    assert len(test) == 3 and not set(test.names) & set(rest.names) and len(rest) == 27


def _disc(size=100, radius=30):
    labels = np.ones((size, size), np.uint8)  # background
    cv2.circle(labels, (size // 2, size // 2), radius, PET, -1)
    return labels


@pytest.mark.parametrize("outline, mark", [(Outline.BAND, BORDER), (Outline.IGNORE, IGNORE)])
def test_the_outline_band_straddles_the_drawn_line(outline, mark):
    labels = _disc()
    marked = mark_outline(labels, outline)
    band = marked == mark
    width = band_width(labels.shape)
    assert width == 3  # 3.06% of 100 px, at least 3
    # as wide as the trimaps' band, half on each side of the line: the pet and background keep their cores
    assert marked[50, 50] == PET and marked[0, 0] == 1
    row = band[50]
    assert row.sum() == pytest.approx(2 * (width + 1), abs=2)
    assert (labels[band] == PET).sum() == pytest.approx((labels[band] != PET).sum(), rel=0.35)
    assert mark_outline(labels, Outline.NONE) is labels


def test_the_band_width_follows_the_longer_side():
    assert band_width((500, 375)) == 15 and band_width((240, 320)) == 10 and band_width((20, 20)) == 3


def test_binary_training_masks_get_the_outline_and_trimaps_keep_theirs(tmp_path):
    binary = write_mask_folder(tmp_path / "cats", n=10, size=64)
    plain = load_folder(binary, "train", 64, progress=False)
    banded = load_folder(binary, "train", 64, progress=False, outline=Outline.BAND)
    ignored = load_folder(binary, "train", 64, progress=False, outline=Outline.IGNORE)
    assert not (plain.masks == BORDER).any() and (banded.masks == BORDER).any() and (ignored.masks == IGNORE).any()
    assert np.array_equal(banded.masks == BORDER, ignored.masks == IGNORE)
    oxford = write_oxford(tmp_path / "pets", n_trainval=6, n_test=2, size=64)
    assert np.array_equal(load_folder(oxford, "train", 64, progress=False).masks,
                          load_folder(oxford, "train", 64, progress=False, outline=Outline.IGNORE).masks)
