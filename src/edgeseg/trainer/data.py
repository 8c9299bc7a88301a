"""The training input pipeline (TensorFlow): per-source sampling, augmentation, batching.

Sources are read by :mod:`edgeseg.data` (no TensorFlow) and held in memory; this module turns them into a
``tf.data`` pipeline that draws from each source by its weight, augments (identical geometry for image and
mask), batches and prefetches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.contract import BACKGROUND, BORDER
from edgeseg.data.outline import IGNORE
from edgeseg.data.readers import SegmentationData, as_hw
from edgeseg.trainer import Augment, choice


def class_frequencies(masks: np.ndarray, num_classes: int = 3) -> np.ndarray:
    """Fraction of pixels of each class."""
    counts = np.bincount(masks.reshape(-1), minlength=num_classes)[:num_classes]
    return counts / max(counts.sum(), 1)


def balanced_class_weights(masks: np.ndarray, num_classes: int = 3) -> np.ndarray:
    """Median-frequency balancing: weight_c = median(freq) / freq_c (absent classes get weight 0)."""
    freq = class_frequencies(masks, num_classes)
    present = freq > 0
    weights = np.zeros(num_classes)
    weights[present] = np.median(freq[present]) / freq[present]
    return weights


def make_dataset(
    data: SegmentationData,
    img_size: int | tuple[int, int],
    batch_size: int,
    training: bool,
    augment: str = "standard",
    class_weights: np.ndarray | None = None,
    seed: int = 0,
):
    """tf.data pipeline over one source in memory: shuffle, augment, batch, prefetch (one pass).

    ``img_size``: the model's input side, or (height, width). Training data should be stored larger (see
    :func:`cache_size`): ``augment`` names an entry of :data:`AUGMENTATIONS`: a random crop of the stored
    shape resized to ``img_size`` (bilinear image, nearest mask), a horizontal flip, colour jitter and, for
    "strong", rotation and sensor noise. Evaluation data is passed through at ``img_size``. Yields
    ``(image float32 0-255, mask int32[, per-pixel weight])``;
    the weight is there with ``class_weights`` or when the masks hold :data:`~edgeseg.data.outline.IGNORE`.
    """
    import tensorflow as tf

    with_weights = class_weights is not None or _has_ignored(data)
    ds = _examples(tf, data, as_hw(img_size), training, augment, class_weights, with_weights, seed)
    return ds.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


def make_mixed_dataset(
    parts: list[SegmentationData],
    weights: list[float],
    img_size: int | tuple[int, int],
    batch_size: int,
    augment: str = "standard",
    class_weights: np.ndarray | None = None,
    seed: int = 0,
    backgrounds: np.ndarray | None = None,
):
    """Endless training batches drawn from several sources, each image as often as its source's weight says.

    Source ``i`` is drawn with probability ``weights[i] * len(parts[i])`` over the total, and an epoch is
    that total in images (weight 3 counts a source's images three times, as copies would). Returns
    ``(dataset, steps_per_epoch)``; each source is reshuffled on every pass through it. ``backgrounds``
    (N, S, S, 3) uint8 RGB photos are what an augmentation with ``zoom_out`` pastes its subjects onto.
    """
    import tensorflow as tf

    if len(parts) != len(weights) or not parts:
        raise ValueError(f"{len(parts)} sources but {len(weights)} weights")
    with_weights = class_weights is not None or any(_has_ignored(p) for p in parts)
    pool = None if backgrounds is None else tf.constant(backgrounds)  # one copy for every source's stream
    streams = [_examples(tf, p, as_hw(img_size), True, augment, class_weights, with_weights, seed + i, pool).repeat()
               for i, p in enumerate(parts)]
    sizes = np.array([w * len(p) for p, w in zip(parts, weights)], np.float64)
    ds = streams[0] if len(streams) == 1 else tf.data.Dataset.sample_from_datasets(
        streams, weights=(sizes / sizes.sum()).tolist(), seed=seed)
    steps = max(1, int(sizes.sum()) // batch_size)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE), steps


def _has_ignored(data: SegmentationData) -> bool:
    return bool(np.any(data.masks == IGNORE))


def _examples(tf, data: SegmentationData, img_size: tuple[int, int], training: bool, augment: str,
              class_weights: np.ndarray | None, with_weights: bool, seed: int, backgrounds=None):
    """One source's examples, shuffled and augmented when ``training``, unbatched."""
    aug = get_augmentation(augment)
    if training and aug is not None and aug.zoom_out and backgrounds is None:
        raise ValueError(f"the {augment!r} augmentation pastes subjects onto other photos: give it --backgrounds")
    pool = tf.convert_to_tensor(backgrounds) if training and aug is not None and aug.zoom_out else None
    stored = tuple(data.images.shape[1:3])
    # Per-pixel weights: the class's weight, 0 where the label says IGNORE. Ignored pixels are then labelled
    # border, which the Dice term leaves out too.
    pixel_weights = np.append(np.ones(3) if class_weights is None else class_weights, 0.0).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((data.images, data.masks))
    if training:
        ds = ds.shuffle(min(len(data), 4096), seed=seed, reshuffle_each_iteration=True)

    def prepare(image, mask):
        if training and aug is not None:
            image, mask = _augment(tf, image, mask, stored, img_size, aug, pool)
        elif stored != tuple(img_size):
            image = tf.image.resize(image, img_size, method="area")
            mask = tf.image.resize(mask[..., None], img_size, method="nearest")[..., 0]
        image = tf.cast(image, tf.float32)
        mask = tf.cast(mask, tf.int32)
        if not with_weights:
            return image, mask
        weight = tf.gather(tf.constant(pixel_weights), mask)
        return image, tf.where(mask == IGNORE, BORDER, mask), weight

    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)


def cache_size(img_size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) at which training images are held, so random crops keep detail: 1.25 x ``img_size``."""
    return tuple(int(round(side * 1.25)) for side in as_hw(img_size))


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to each training image (geometry identical for image and mask)."""

    min_crop: float  # smallest crop (of the stored shape), as a share of the stored sides (1.25 x img_size)
    rotate_deg: float  # largest rotation either way (reflected at the borders)
    brightness: float  # largest shift, in 0-255 levels
    contrast: float  # factor drawn from [1 - contrast, 1 + contrast]
    saturation: float  # likewise
    hue: float  # largest hue shift (fraction of the colour circle)
    noise: float  # largest standard deviation of per-pixel Gaussian noise, in levels (sensor noise)
    stretch: float = 0.0  # largest change of the crop's aspect ratio, either way (0.4: up to 1.4x wider or taller),
    #                       for photos that their source stretched to squares
    zoom_out: float = 0.0  # probability of pasting the subject, smaller, onto another photo (a webcam's framing)
    min_zoom: float = 0.5  # the pasted subject's smallest height, as a share of the frame's
    min_squash: float = 0.45  # its narrowest width relative to its height (in input pixels): a 16:9 frame fed to a
    #                           square input narrows a 3:4 portrait's subject to 3/4 * 9/16 of its own aspect (0.42)
    motion_blur: float = 0.0  # probability of a horizontal motion blur (a camera or subject moving)


AUGMENTATIONS = {
    Augment.NONE: None,
    Augment.STANDARD: Augmentation(min_crop=0.8, rotate_deg=0, brightness=25, contrast=0.2, saturation=0.2, hue=0, noise=0),
    Augment.STRONG: Augmentation(min_crop=0.5, rotate_deg=15, brightness=40, contrast=0.4, saturation=0.4, hue=0.04,
                           noise=6),
    # standard, with crops of another aspect ratio (up to 1.4x wider or taller) stretched to the square input
    Augment.ASPECT: Augmentation(min_crop=0.8, rotate_deg=0, brightness=25, contrast=0.2, saturation=0.2, hue=0,
                                 noise=0, stretch=0.4),
    # Portraits made webcam-like: half pasted smaller, narrower and off-centre onto other photos (--backgrounds),
    # standing on the frame's bottom edge as a seated caller does; lighting, colour, motion blur, sensor noise.
    Augment.WEBCAM: Augmentation(min_crop=0.8, rotate_deg=5, brightness=40, contrast=0.3, saturation=0.3, hue=0.02,
                           noise=6, zoom_out=0.5, motion_blur=0.2),
}


def get_augmentation(name: str) -> Augmentation | None:
    """The augmentation called ``name`` (None for "none"), or a ValueError listing the choices."""
    return AUGMENTATIONS[choice(Augment, name, "augmentation")]


def _rotate(tf, image, mask, degrees: float):
    """Rotate image (bilinear) and mask (nearest) by the same random angle about the centre."""
    angle = tf.random.uniform([], -degrees, degrees) * (np.pi / 180)
    cy = (tf.cast(tf.shape(image)[0], tf.float32) - 1) / 2
    cx = (tf.cast(tf.shape(image)[1], tf.float32) - 1) / 2
    c, s = tf.cos(angle), tf.sin(angle)
    transform = tf.stack([c, -s, cx - cx * c + cy * s, s, c, cy - cx * s - cy * c, 0.0, 0.0])[None]
    shape = tf.shape(image)[:2]

    def warp(x, method):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=x[None], transforms=transform, output_shape=shape, fill_value=0.0,
            interpolation=method, fill_mode="REFLECT")[0]

    return warp(image, "BILINEAR"), tf.cast(warp(tf.cast(mask[..., None], tf.float32), "NEAREST")[..., 0], mask.dtype)


def _zoom_out(tf, image, mask, pool, img_size: tuple[int, int], aug: Augmentation):
    """The subject (every label but background) scaled down, narrowed and pasted onto a random photo of
    ``pool``, standing on the bottom edge at a random place along it."""
    height, width = img_size
    zoom = tf.random.uniform([], aug.min_zoom, 1.0)
    h = tf.cast(tf.round(height * zoom), tf.int32)
    w = tf.minimum(tf.cast(tf.round(height * zoom * tf.random.uniform([], aug.min_squash, 1.0)), tf.int32), width)
    left = tf.random.uniform([], 0, width - w + 1, dtype=tf.int32)
    small = tf.image.resize(image, tf.stack([h, w]), method="bilinear")
    labels = tf.image.resize(tf.cast(mask, tf.int32)[..., None] + 1, tf.stack([h, w]), method="nearest")  # 0: pad
    image = tf.image.pad_to_bounding_box(small, height - h, left, height, width)
    labels = tf.image.pad_to_bounding_box(labels, height - h, left, height, width)[..., 0] - 1
    subject = (labels >= 0) & (labels != BACKGROUND)
    photo = pool[tf.random.uniform([], 0, tf.shape(pool)[0], dtype=tf.int32)]
    photo = tf.image.resize(tf.cast(photo, tf.float32), img_size, method="bilinear")
    image = tf.where(subject[..., None], image, tf.image.random_flip_left_right(photo))
    return image, tf.cast(tf.where(subject, labels, BACKGROUND), mask.dtype)


def _augment(tf, image, mask, stored: tuple[int, int], img_size: tuple[int, int], aug: Augmentation, pool=None):
    share = tf.random.uniform([], aug.min_crop, 1.0)  # a crop of the stored shape, resized to the input's
    ratio = tf.exp(tf.random.uniform([], -np.log1p(aug.stretch), np.log1p(aug.stretch)) / 2) if aug.stretch else 1.0
    # with ``stretch``, a crop of another aspect ratio: the content stretched by the resize
    height = tf.clip_by_value(tf.cast(tf.round(stored[0] * share * ratio), tf.int32), 8, stored[0])
    width = tf.clip_by_value(tf.cast(tf.round(stored[1] * share / ratio), tf.int32), 8, stored[1])
    stacked = tf.concat([image, mask[..., None]], axis=-1)
    stacked = tf.image.random_crop(stacked, tf.stack([height, width, 4]))
    stacked = tf.cond(tf.random.uniform([]) < 0.5, lambda: tf.image.flip_left_right(stacked), lambda: stacked)
    image = tf.image.resize(tf.cast(stacked[..., :3], tf.float32), img_size, method="bilinear")
    mask = tf.image.resize(stacked[..., 3:], img_size, method="nearest")[..., 0]
    if aug.rotate_deg:
        image, mask = _rotate(tf, image, mask, aug.rotate_deg)
    if aug.zoom_out:
        image, mask = tf.cond(tf.random.uniform([]) < aug.zoom_out,
                              lambda: _zoom_out(tf, image, mask, pool, img_size, aug), lambda: (image, mask))
    if aug.motion_blur:  # a 7-px horizontal smear
        image = tf.cond(tf.random.uniform([]) < aug.motion_blur,
                        lambda: tf.nn.avg_pool2d(image[None], (1, 7), 1, "SAME")[0], lambda: image)
    image = tf.image.random_brightness(image, aug.brightness)
    image = tf.image.random_contrast(image, 1 - aug.contrast, 1 + aug.contrast)
    image = tf.image.random_saturation(image, 1 - aug.saturation, 1 + aug.saturation)
    if aug.hue:  # tf's hue shift expects 0-1 images
        image = tf.image.random_hue(tf.clip_by_value(image, 0.0, 255.0) / 255.0, aug.hue) * 255.0
    if aug.noise:
        image += tf.random.normal(tf.shape(image)) * tf.random.uniform([], 0.0, aug.noise)
    return tf.clip_by_value(image, 0.0, 255.0), mask
