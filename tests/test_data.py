import cv2
import numpy as np
import pytest

from edgeseg.data import readers
from edgeseg.data.readers import DataError, load_folder, resize_mask
from edgeseg.trainer import data as data_mod
from tests.helpers import write_mask_folder


def test_resize_mask_keeps_label_set():
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 3, (37, 53)).astype(np.uint8)
    for size in (16, 128, (40, 20)):
        out = resize_mask(mask, size)
        assert set(np.unique(out)) <= {0, 1, 2}
    # bilinear would invent 1 between 0 and 2; nearest must not
    step = np.zeros((8, 8), np.uint8)
    step[:, 4:] = 2
    assert 1 not in np.unique(resize_mask(step, 13))


def test_oxford_folder_loads_splits(oxford_dir):
    train = load_folder(oxford_dir, "train", 32, val_fraction=0.25, progress=False)
    val = load_folder(oxford_dir, "val", 32, val_fraction=0.25, progress=False)
    test = load_folder(oxford_dir, "test", 32, progress=False)
    assert (len(train), len(val), len(test)) == (18, 6, 8)
    assert not set(train.names) & set(val.names)
    assert train.images.shape == (18, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.masks.shape == (18, 32, 32)
    assert set(np.unique(train.masks)) == {0, 1, 2}  # shifted from 1, 2, 3


def test_mask_folder_binary_masks(tmp_path):
    root = write_mask_folder(tmp_path / "cats", n=20)
    train = load_folder(root, "train", 32, val_fraction=0.1, progress=False)
    test = load_folder(root, "test", 32, progress=False)
    assert len(test) == 2 and len(train) == 16
    assert set(np.unique(train.masks)) == {0, 1}


def test_unreadable_image_is_skipped_and_counted(oxford_dir, caplog):
    (oxford_dir / "images" / "Pet_30.jpg").write_bytes(b"garbage")
    jpeg = (oxford_dir / "images" / "Pet_31.jpg").read_bytes()
    (oxford_dir / "images" / "Pet_31.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # OpenCV decodes half a picture
    test = load_folder(oxford_dir, "test", 32, progress=False)
    assert test.skipped == ["Pet_30", "Pet_31"] and len(test) == 6
    assert "Pet_30.jpg is not a readable image" in caplog.text and "Pet_31.jpg is a truncated JPEG" in caplog.text
    full = [name for name, _, _ in readers.iter_full_resolution(str(oxford_dir), "test")]  # what evaluate scores
    assert full == test.names


def test_bad_mask_values_name_the_file(oxford_dir):
    path = oxford_dir / "annotations" / "trimaps" / "Pet_25.png"
    cv2.imwrite(str(path), np.full((64, 64), 7, np.uint8))
    with pytest.raises(DataError, match=r"Pet_25\.png has values \[7\]"):
        load_folder(oxford_dir, "test", 32, progress=False)


def test_mask_size_mismatch_names_the_file(oxford_dir):
    cv2.imwrite(str(oxford_dir / "annotations" / "trimaps" / "Pet_26.png"), np.ones((10, 12), np.uint8))
    with pytest.raises(DataError, match=r"Pet_26\.png is 12x10 but its image .*Pet_26\.jpg is 64x64"):
        load_folder(oxford_dir, "test", 32, progress=False)
    # what evaluate scores said only "alpha (64, 64) and labels (10, 12) differ", naming no file
    with pytest.raises(DataError, match=r"Pet_26\.png is 12x10 but its image .*Pet_26\.jpg is 64x64"):
        list(readers.iter_full_resolution(str(oxford_dir), "test"))


def test_an_oxford_layout_folder_of_png_photos_reads_and_a_listed_name_needs_a_photo(oxford_dir):
    # the reader took every photo to be NAME.jpg: PNG photos were each "cannot read ...jpg: No such file", and a
    # name listed without a photo was skipped as unreadable, where the masks layout refuses it
    for jpeg in (oxford_dir / "images").glob("Pet_2*.jpg"):
        cv2.imwrite(str(jpeg.with_suffix(".png")), cv2.imread(str(jpeg)))
        jpeg.unlink()
    test = load_folder(oxford_dir, "test", 32, progress=False)
    assert len(test) == 8 and not test.skipped
    (oxford_dir / "images" / "Pet_25.png").unlink()
    for read in (lambda: load_folder(oxford_dir, "test", 32, progress=False),
                 lambda: list(readers.iter_full_resolution(str(oxford_dir), "test"))):
        with pytest.raises(DataError, match=r"1 names in .*test\.txt have no image in .*images, e\.g\. 'Pet_25'"):
            read()


def test_a_missing_mask_is_an_error_in_training_and_evaluation_alike(oxford_dir):
    (oxford_dir / "annotations" / "trimaps" / "Pet_26.png").unlink()
    with pytest.raises(DataError, match=r"mask .*Pet_26\.png for image .*Pet_26\.jpg is missing"):
        load_folder(oxford_dir, "test", 32, progress=False)
    with pytest.raises(DataError, match=r"mask .*Pet_26\.png for image .*Pet_26\.jpg is missing"):
        list(readers.iter_full_resolution(str(oxford_dir), "test"))  # evaluate scored the others, with a warning


def test_missing_and_empty_datasets(tmp_path, oxford_dir):
    with pytest.raises(DataError, match="does not exist"):
        load_folder(tmp_path / "nope", "train", 32)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"a photo")  # an image given for a dataset was said not to exist
    with pytest.raises(DataError, match="photo.jpg is a file; expected a dataset folder: images/ with"):
        load_folder(photo, "train", 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a dataset folder"):
        load_folder(tmp_path / "empty", "train", 32)
    (oxford_dir / "annotations" / "test.txt").write_text("")
    with pytest.raises(DataError, match="no images in its test split"):
        load_folder(oxford_dir, "test", 32)
    with pytest.raises(DataError, match="not found"):
        readers.load_split(str(tmp_path / "nowhere"), "train", 32)


def test_binary_mask_with_other_values_is_an_error(tmp_path):
    root = write_mask_folder(tmp_path / "cats", n=4)
    cv2.imwrite(str(root / "masks" / "cat_0.png"), np.full((64, 64), 128, np.uint8))
    with pytest.raises(DataError, match=r"cat_0\.png has values \[128\]"):
        load_folder(root, "train", 32, val_fraction=0.0, progress=False)


def test_tfds_offline_fails_fast(monkeypatch, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")

    class NotPrepared:
        def is_prepared(self):
            return False

    monkeypatch.setattr(tfds, "builder", lambda *a, **k: NotPrepared())
    monkeypatch.setattr(readers, "_can_reach", lambda host, timeout=3.0: False)
    with pytest.raises(DataError, match="Point --data at a local copy"):
        readers.load_tfds("train", 32, data_dir=str(tmp_path))


def test_an_offline_tfds_attempt_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import tempfile

    pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(readers, "_can_reach", lambda host, timeout=3.0: False)
    with pytest.raises(DataError, match="cannot be reached"):
        readers.load_tfds("train", 32, data_dir=str(tmp_path / "tfds"))
    assert list((tmp_path / "tmp").iterdir()) == []  # tfds's own metadata look-up made a tmp*tfds folder here


@pytest.mark.parametrize("size", [(32, 32), (32, 64)])  # square, and (height, width) of a landscape input
@pytest.mark.parametrize("augment", ["standard", "strong", "aspect", "webcam"])
def test_augmentation_moves_image_and_mask_together(oxford_dir, augment, size):
    tf = pytest.importorskip("tensorflow")
    train = load_folder(oxford_dir, "train", data_mod.cache_size(size), progress=False)
    # Paint each pixel with the colour of its class: after augmentation the dominant channel must still
    # be the class wherever geometry was applied identically (photos pasted behind are background's colour).
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    train.images = palette[train.masks]
    backgrounds = np.broadcast_to(palette[1], (3, 40, 40, 3)).copy()
    tf.random.set_seed(1)
    ds = data_mod._examples(tf, train, size, True, augment, None, False, 1, backgrounds).batch(8)
    images, masks = next(iter(ds))
    assert images.shape == (8, *size, 3) and masks.shape == (8, *size)
    assert set(np.unique(masks.numpy())) <= {0, 1, 2}
    agreement = np.mean(np.argmax(images.numpy(), -1) == masks.numpy())
    assert agreement > 0.95


def test_the_aspect_augmentation_stretches_image_and_mask_alike():
    tf = pytest.importorskip("tensorflow")
    from dataclasses import replace

    yy, xx = np.mgrid[:40, :40]
    mask = np.where((yy - 20) ** 2 + (xx - 20) ** 2 < 100, 0, 1).astype(np.uint8)  # a round subject
    image = np.where(mask[..., None] == 0, 250, 10).astype(np.uint8) * np.ones(3, np.uint8)
    aug = replace(data_mod.AUGMENTATIONS["aspect"], min_crop=1.0, brightness=0, contrast=0.01, saturation=0.01)
    shapes = []
    for seed in range(12):
        tf.random.set_seed(seed)
        out, labels = (x.numpy() for x in data_mod._augment(tf, tf.constant(image), tf.constant(mask), (40, 40), (32, 32), aug))
        ys, xs = np.nonzero(labels == 0)
        shapes.append((xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1))
        assert np.mean((out[..., 0] > 128) == (labels == 0)) > 0.97
    assert min(shapes) < 0.9 and max(shapes) > 1.1  # taller and wider than round, both ways


def test_zoom_out_pastes_a_smaller_subject_onto_a_photo_on_the_bottom_edge():
    tf = pytest.importorskip("tensorflow")
    mask = np.ones((32, 32), np.uint8)
    mask[4:, 8:24] = 0  # a caller: cut by the frame's bottom edge
    mask[4:, 7] = mask[4:, 24] = mask[3, 7:25] = 2
    image = np.where(mask[..., None] == 1, 100.0, 250.0).astype(np.float32) * np.ones(3, np.float32)
    pool = np.full((2, 40, 40, 3), 7, np.uint8)
    aug = data_mod.AUGMENTATIONS["webcam"]
    for seed in range(5):
        tf.random.set_seed(seed)
        out, labels = (x.numpy() for x in data_mod._zoom_out(tf, tf.constant(image), tf.constant(mask),
                                                              tf.constant(pool), (32, 32), aug))
        assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2}
        assert 0 < np.sum(labels == 0) < np.sum(mask == 0)  # smaller
        assert np.all(out[labels == 1] == 7)  # everything around the subject comes from the photo
        assert np.any(labels[-1] == 0)  # standing on the bottom edge
    with pytest.raises(ValueError, match="--backgrounds"):
        data_mod._examples(tf, _constant_source(10, 4), (32, 32), True, "webcam", None, False, 0)


def test_class_weights_go_with_pixels(oxford_dir):
    pytest.importorskip("tensorflow")
    test = load_folder(oxford_dir, "test", 32, progress=False)
    weights = data_mod.balanced_class_weights(test.masks)
    assert weights[1] < weights[0] < weights[2]  # background most common, border rarest
    ds = data_mod.make_dataset(test, (32, 32), batch_size=4, training=False, class_weights=weights)
    _, masks, sample_weights = next(iter(ds))
    np.testing.assert_allclose(sample_weights.numpy(), weights[masks.numpy()], rtol=1e-6)


def test_strong_augmentation_rotates_image_and_mask_alike_and_names_are_checked():
    tf = pytest.importorskip("tensorflow")
    mask = np.ones((64, 64), np.int32)
    mask[32:] = 0  # a horizontal outline
    image = np.where(mask[..., None] == 0, 250.0, 10.0).astype(np.float32) * np.ones(3, np.float32)
    tf.random.set_seed(3)
    rotated_image, rotated_mask = data_mod._rotate(tf, tf.constant(image), tf.constant(mask), 15.0)
    rows = rotated_mask.numpy()[24:40]
    assert any(len(set(row)) > 1 for row in rows)  # the outline is tilted now
    assert np.mean((rotated_image.numpy()[..., 0] > 128) == (rotated_mask.numpy() == 0)) > 0.97
    with pytest.raises(ValueError, match="augmentation must be one of none, standard, strong, aspect, webcam, received 'wild'"):
        data_mod.get_augmentation("wild")


def _constant_source(value: int, n: int, size: int = 40):
    from edgeseg.data import SegmentationData

    return SegmentationData(np.full((n, size, size, 3), value, np.uint8), np.ones((n, size, size), np.uint8),
                            [f"{value}_{i}" for i in range(n)], f"source{value}", "train")


def test_sources_are_drawn_by_weight_times_size():
    pytest.importorskip("tensorflow")
    # source A: 40 images, weight 1; source B: 10 images, weight 3 -> B's share is 30 / 70 of the draws
    parts = [_constant_source(10, 40), _constant_source(200, 10)]
    ds, steps = data_mod.make_mixed_dataset(parts, [1.0, 3.0], 32, batch_size=10, augment="none", seed=0)
    assert steps == 7  # (40 * 1 + 10 * 3) / 10: an epoch counts B's images three times
    values = np.concatenate([x.numpy()[:, 0, 0, 0] for x, _ in ds.take(200)])
    assert set(np.unique(values)) == {10.0, 200.0}
    assert np.mean(values == 200) == pytest.approx(30 / 70, abs=0.03)


def test_ignored_outline_pixels_weigh_nothing_and_leave_the_dice_term_too():
    pytest.importorskip("tensorflow")
    from edgeseg.contract import BORDER
    from edgeseg.data.outline import IGNORE

    part = _constant_source(10, 8)
    part.masks[:, :5] = IGNORE
    ds, _ = data_mod.make_mixed_dataset([part], [1.0], 40, batch_size=4, augment="none")
    _, mask, weight = next(iter(ds))
    mask, weight = mask.numpy(), weight.numpy()
    assert np.all(weight[:, :5] == 0) and np.all(mask[:, :5] == BORDER)
    assert np.all(weight[:, 5:] == 1) and np.all(mask[:, 5:] == 1)


def test_a_mask_of_black_and_one_colour_is_a_binary_mask(tmp_path):
    # label tools export binary masks as colour on black (CVAT's class colours, a red overlay): it was refused
    # with "has 3 differing channels"
    grey = write_mask_folder(tmp_path / "grey", n=6)
    colour = write_mask_folder(tmp_path / "colour", n=6)
    for path in (colour / "masks").glob("*.png"):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(path), np.where(mask[..., None] > 0, np.uint8([0, 0, 255]), np.uint8(0)))  # red on black
    want = load_folder(grey, "train", 32, val_fraction=0.0, progress=False).masks
    np.testing.assert_array_equal(load_folder(colour, "train", 32, val_fraction=0.0, progress=False).masks, want)
    two = np.zeros((64, 64, 3), np.uint8)
    two[:10], two[-10:] = (0, 0, 255), (0, 255, 0)  # two classes' colours: not a binary mask
    cv2.imwrite(str(colour / "masks" / "cat_0.png"), two)
    with pytest.raises(DataError, match=r"cat_0\.png has 3 colours;.*black and one colour"):
        load_folder(colour, "train", 32, val_fraction=0.0, progress=False)


def test_a_folders_held_out_test_split_is_the_same_whatever_seed_a_run_trained_with(tmp_path):
    # a folder without split lists held out a tenth drawn with the run's --seed; export, evaluate and bench read the
    # test split with seed 0, so a run trained with --seed 5 was scored on photos it had trained on
    root = write_mask_folder(tmp_path / "cats", n=40)
    tests = [set(load_folder(root, "test", 32, seed=seed, progress=False).names) for seed in (0, 5)]
    assert tests[0] == tests[1] and len(tests[0]) == 4
    for seed in (0, 5):
        trained = set(load_folder(root, "train", 32, seed=seed, progress=False).names)
        validated = set(load_folder(root, "val", 32, seed=seed, progress=False).names)
        assert not (trained | validated) & tests[0] and len(trained | validated | tests[0]) == 40
    vals = [set(load_folder(root, "val", 32, seed=seed, progress=False).names) for seed in (0, 5)]
    assert vals[0] != vals[1]  # the validation split is the run's own draw


def test_a_split_too_small_to_hold_an_image_says_what_to_change(tmp_path):
    # "has no images in its val split", with nothing on why or what to do
    root = write_mask_folder(tmp_path / "cats", n=3)
    with pytest.raises(DataError, match=r"cats has no images in its val split: --val-fraction 0.1 of its training "
                                        r"images rounds to none; raise it, or add images"):
        load_folder(root, "val", 32, val_fraction=0.1, progress=False)
    assert len(load_folder(root, "val", 32, val_fraction=0.5, progress=False)) >= 1
    # evaluate's reader said only "cats has no readable images in its test split" (and none was unreadable)
    with pytest.raises(DataError, match=r"cats has no images in its test split: .*the tenth held out of a small "
                                        r"folder rounds to none"):
        list(readers.iter_full_resolution(str(root), "test"))


def test_a_16_bit_mask_of_0_and_65535_is_a_binary_mask(tmp_path):
    # 16-bit label exports (0 and the type's maximum) were refused: "has values [0, 65535]; expected 0/1 or 0/255"
    grey = write_mask_folder(tmp_path / "grey", n=6)
    deep = write_mask_folder(tmp_path / "deep", n=6)
    for path in (deep / "masks").glob("*.png"):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(path), np.where(mask > 0, 65535, 0).astype(np.uint16))
    want = load_folder(grey, "train", 32, val_fraction=0.0, progress=False).masks
    np.testing.assert_array_equal(load_folder(deep, "train", 32, val_fraction=0.0, progress=False).masks, want)
    cv2.imwrite(str(deep / "masks" / "cat_0.png"), np.array([[0, 300], [65535, 0]], np.uint16).repeat(32, 0).repeat(32, 1))
    with pytest.raises(DataError, match=r"cat_0\.png has values \[0, 300, 65535\]; expected a binary mask of 0/1, "
                       r"0/255 or 0/65535"):
        load_folder(deep, "train", 32, val_fraction=0.0, progress=False)


def test_a_jpeg_mask_says_why_its_values_are_not_binary(tmp_path):
    root = write_mask_folder(tmp_path / "cats", n=4)
    mask = cv2.imread(str(root / "masks" / "cat_0.png"), cv2.IMREAD_GRAYSCALE)
    for path in (root / "masks").glob("*.png"):
        path.unlink()
        cv2.imwrite(str(path.with_suffix(".jpg")), mask)  # lossy: values between 0 and 255 at the edges
    with pytest.raises(DataError, match=r"cat_0\.jpg has values .*JPEG.*save masks as PNG"):
        load_folder(root, "train", 32, val_fraction=0.0, progress=False)
