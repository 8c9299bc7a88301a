"""Segmentation models: the TensorFlow-tutorial U-Net and the alternatives it is usually compared with.

Every model takes RGB images in the uint8 range [0, 255] (float dtype) and returns per-pixel class
logits at full input resolution. Normalisation is a layer inside the model, so exported artifacts take
camera pixels directly and no caller can get it wrong.

Example:
    >>> model = build_model("unet_mobilenetv2", input_size=128, encoder_weights="none")
    >>> model.output_shape
    (None, 128, 128, 3)
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import keras
from keras import layers

from edgeseg.data import as_hw
from edgeseg.errors import EdgesegError, NotFound, SettingError
from edgeseg.trainer import Upsampling, choice

# Skip connections of the tutorial model, from stride 2 to stride 16, then the bottleneck (stride 32).
MOBILENETV2_SKIPS = (
    "block_1_expand_relu",
    "block_3_expand_relu",
    "block_6_expand_relu",
    "block_13_expand_relu",
    "block_16_project",
)
TUTORIAL_DECODER_FILTERS = (512, 256, 128, 64)
# How the decoder doubles resolution: stride-2 transposed convolutions (the tutorial's; they leave a
# checkerboard in the probabilities, which int8 makes worse) or bilinear resizes followed by convolutions.
ENCODER_WEIGHTS_CHOICES = "'imagenet', 'none' or a path to a .weights.h5 file"


def _initializer() -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def upsample_block(x, filters: int, name: str, dropout: float = 0.0, separable: bool = False,
                   upsampling: str = "transpose"):
    """pix2pix upsample block: 2x transposed conv (no bias), BatchNorm, optional Dropout, ReLU.

    With ``separable=True`` the 3x3 transposed conv is replaced by 2x upsampling (nearest, or bilinear
    with ``upsampling="bilinear"``), a 3x3 depthwise conv and a 1x1 pointwise conv: the same receptive
    field for a fraction of the MACs. ``upsampling="bilinear"`` without ``separable`` resizes, then
    applies a full 3x3 conv.

    Args:
        x: input tensor (NHWC).
        filters: output channels.
        name: prefix for the block's layer names.
        dropout: dropout rate, 0 disables the layer.
        separable: use the depthwise-separable variant.
        upsampling: an :class:`~edgeseg.trainer.Upsampling`.
    """
    if separable:
        interpolation = "bilinear" if upsampling == "bilinear" else "nearest"
        x = layers.UpSampling2D(2, interpolation=interpolation, name=f"{name}_upsample")(x)
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_depthwise")(x)
        x = layers.BatchNormalization(name=f"{name}_depthwise_bn")(x)
        x = layers.ReLU(name=f"{name}_depthwise_relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, kernel_initializer=_initializer(), name=f"{name}_pointwise")(x)
    elif upsampling == "bilinear":
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_upsample")(x)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=_initializer(),
                          name=f"{name}_conv")(x)
    else:
        x = layers.Conv2DTranspose(
            filters, 3, strides=2, padding="same", use_bias=False,
            kernel_initializer=_initializer(), name=f"{name}_deconv",
        )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _check_size(input_size: int | tuple[int, int], multiple: int = 32) -> None:
    if any(side < multiple or side % multiple for side in as_hw(input_size)):
        raise ValueError(f"input_size sides must be positive multiples of {multiple}, received {input_size}")


class EncoderWeightsError(EdgesegError, ValueError):
    """Pretrained encoder weights that cannot be had (offline, or a file that does not fit)."""


@contextmanager
def _imagenet_download(encoder: str):
    """Turn Keras's failed weight download (a bare Exception and a long traceback) into one clear line."""
    try:
        yield
    except Exception as exc:  # keras.utils.get_file raises a plain Exception for any fetch failure
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EncoderWeightsError(
            f"could not download the ImageNet weights of {encoder} (offline?): {first_line}. "
            "Pass --encoder-weights none to train from scratch, or --encoder-weights FILE.weights.h5 for a local copy"
        ) from None


def load_fitting_weights(model: keras.Model, path: str | Path, setting: str, what: str) -> None:
    """``path``'s weights into ``model``; weights that do not fit are one :class:`SettingError` of ``setting``
    naming ``what`` they do not fit, not Keras's warning per layer and its list of the layers it left (with
    their weights: hundreds of lines)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except Exception as exc:  # Keras raises ValueError for layers that do not fit; h5py others for other files
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            detail = next((line for line in lines if line.startswith("Layer ")), lines[0])  # the first layer's
            if detail.endswith(":") and len(lines) > 1:  # "... Example error message for object X:", then it
                detail += " " + lines[1].split(" Target variable")[0]  # less the variable's values
            raise SettingError(setting, f"{path} does not fit {what} ({detail})") from None
    for warning in caught:  # a load that worked: its warnings, as they were
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def _mobilenetv2_base(input_size: int | tuple[int, int], alpha: float, encoder_weights: str | Path) -> keras.Model:
    weights = str(encoder_weights)
    if weights.lower() == "none":
        return keras.applications.MobileNetV2((*as_hw(input_size), 3), alpha=alpha, include_top=False, weights=None)
    if weights.lower() == "imagenet":
        with _imagenet_download("MobileNetV2"):
            return keras.applications.MobileNetV2(
                (*as_hw(input_size), 3), alpha=alpha, include_top=False, weights="imagenet"
            )
    path = Path(weights)
    if not path.is_file():
        raise NotFound(f"encoder weights {path} not found; expected {ENCODER_WEIGHTS_CHOICES}")
    base = keras.applications.MobileNetV2((*as_hw(input_size), 3), alpha=alpha, include_top=False, weights=None)
    load_fitting_weights(base, path, "encoder_weights", f"the encoder MobileNetV2(alpha={alpha}, include_top=False)")
    return base


def _check_upsampling(upsampling: str) -> None:
    choice(Upsampling, upsampling, "upsampling")


def _decoder(x, skips, filters, num_classes: int, dropout: float, separable: bool, upsampling: str = "transpose"):
    for i, (skip, f) in enumerate(zip(skips, filters), start=1):
        x = upsample_block(x, f, name=f"decoder_up{i}", dropout=dropout, separable=separable, upsampling=upsampling)
        x = layers.Concatenate(name=f"decoder_concat{i}")([x, skip])
    if upsampling == "bilinear":
        # Class scores at half resolution, then a bilinear resize: smooth logits at no extra cost.
        x = layers.Conv2D(num_classes, 3, padding="same", name="logits_half", dtype="float32")(x)
        return layers.UpSampling2D(2, interpolation="bilinear", name="logits", dtype="float32")(x)
    return layers.Conv2DTranspose(
        num_classes, 3, strides=2, padding="same", name="logits", dtype="float32"
    )(x)


def _freeze_encoder(encoder: keras.Model, fine_tune: int, block_of: Callable[[str], int | None], n_blocks: int):
    """Freeze the encoder except its top ``fine_tune`` blocks (0 freezes everything).

    BatchNormalization layers stay frozen even in unfrozen blocks: a trainable BatchNormalization
    normalises with batch statistics, which wrecks pretrained features (and BN folded into the
    convolutions, as in the offline weights, entirely).
    """
    if fine_tune < 0 or fine_tune > n_blocks:
        raise ValueError(f"fine_tune must be between 0 and {n_blocks} encoder blocks, received {fine_tune}")
    encoder.trainable = fine_tune > 0
    if fine_tune == 0:
        return
    first_trainable = n_blocks - fine_tune + 1
    for layer in encoder.layers:
        block = block_of(layer.name)
        layer.trainable = (block is not None and block >= first_trainable
                           and not isinstance(layer, layers.BatchNormalization))


def _mobilenetv2_block(name: str) -> int | None:
    if name.startswith("block_"):
        return int(name.split("_")[1])
    return None


def unet_mobilenetv2(
    input_size: int | tuple[int, int] = 128,
    num_classes: int = 3,
    alpha: float = 1.0,
    encoder_weights: str | Path = "imagenet",
    fine_tune: int = 0,
    dropout: float = 0.0,
    decoder_filters: tuple[int, ...] = TUTORIAL_DECODER_FILTERS,
    separable_decoder: bool = False,
    upsampling: str = "transpose",
    name: str = "unet_mobilenetv2",
) -> keras.Model:
    """The U-Net of the TensorFlow segmentation tutorial: MobileNetV2 encoder, pix2pix decoder.

    Args:
        input_size: input side in pixels, or (height, width), multiples of 32 (128 in the tutorial).
        num_classes: number of output classes (3: pet, background, border).
        alpha: MobileNetV2 width multiplier.
        encoder_weights: 'imagenet' (Keras download), 'none', or a path to a ``.weights.h5`` file.
        fine_tune: number of top encoder blocks (of 16) left trainable; 0 freezes the encoder.
        dropout: dropout rate inside each decoder block.
        decoder_filters: widths of the four upsample blocks.
        separable_decoder: use depthwise-separable upsample blocks (the edge variant).
        upsampling: "transpose" (the tutorial) or "bilinear" (resize + conv; no checkerboard).
        name: model name.

    Example:
        >>> m = unet_mobilenetv2(128, encoder_weights="none")
        >>> m.get_layer("encoder").get_layer("block_16_project").output.shape
        (None, 4, 4, 320)
    """
    _check_size(input_size)
    _check_upsampling(upsampling)
    if len(decoder_filters) != 4:
        raise ValueError(f"decoder_filters needs 4 widths (one per skip), received {decoder_filters}")
    base = _mobilenetv2_base(input_size, alpha, encoder_weights)
    encoder = keras.Model(base.input, [base.get_layer(n).output for n in MOBILENETV2_SKIPS], name="encoder")
    _freeze_encoder(encoder, fine_tune, _mobilenetv2_block, n_blocks=16)

    inputs = keras.Input((*as_hw(input_size), 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
    *skips, x = encoder(x)
    logits = _decoder(x, reversed(skips), decoder_filters, num_classes, dropout, separable_decoder, upsampling)
    return keras.Model(inputs, logits, name=name)


def unet_mobilenetv2_edge(input_size: int | tuple[int, int] = 128, num_classes: int = 3, **kwargs) -> keras.Model:
    """Edge variant of :func:`unet_mobilenetv2`: separable upsampling and a 4x narrower decoder."""
    kwargs.setdefault("decoder_filters", (128, 64, 32, 16))
    kwargs.setdefault("separable_decoder", True)
    return unet_mobilenetv2(input_size, num_classes, name="unet_mobilenetv2_edge", **kwargs)


def _last_layer_per_stride(base: keras.Model, input_size: int | tuple[int, int], strides=(2, 4, 8, 16, 32)) -> list[str]:
    """Name of the last activation at each feature stride: the usual U-Net skip points."""
    found: dict[int, str] = {}
    for layer in base.layers:
        shape = layer.output.shape
        if len(shape) != 4 or not isinstance(layer, (layers.Activation, layers.ReLU, layers.Multiply, layers.Add)):
            continue
        stride = as_hw(input_size)[0] // shape[1]
        if stride in strides:
            found[stride] = layer.name
    missing = [s for s in strides if s not in found]
    if missing:
        raise ValueError(f"{base.name} has no activation at strides {missing}")
    return [found[s] for s in strides]


def unet_mobilenetv3(
    input_size: int | tuple[int, int] = 128,
    num_classes: int = 3,
    variant: str = "small",
    encoder_weights: str | Path = "imagenet",
    fine_tune: int = 0,
    dropout: float = 0.0,
    alpha: float = 1.0,
) -> keras.Model:
    """U-Net with a MobileNetV3 (Large or Small) encoder and the tutorial decoder.

    Skips are the last activation at strides 2, 4, 8 and 16; the stride-32 one is the bottleneck.
    ``fine_tune`` > 0 unfreezes the whole encoder (MobileNetV3 has no uniform block naming).
    """
    _check_size(input_size)
    builders = {"small": keras.applications.MobileNetV3Small, "large": keras.applications.MobileNetV3Large}
    if variant not in builders:
        raise ValueError(f"variant must be one of {sorted(builders)}, received {variant!r}")
    weights = str(encoder_weights)
    if weights.lower() not in ("imagenet", "none") and not Path(weights).is_file():
        raise NotFound(f"encoder weights {weights} not found; expected {ENCODER_WEIGHTS_CHOICES}")
    with _imagenet_download(f"MobileNetV3{variant.title()}"):
        base = builders[variant](
            input_shape=(*as_hw(input_size), 3), alpha=alpha, include_top=False,
            weights="imagenet" if weights.lower() == "imagenet" else None, include_preprocessing=False,
        )
    if weights.lower() not in ("imagenet", "none"):  # a local file: not a download that failed
        load_fitting_weights(base, weights, "encoder_weights", f"the encoder MobileNetV3{variant.title()}"
                                                                f"(alpha={alpha}, include_top=False)")
    skip_names = _last_layer_per_stride(base, input_size)
    encoder = keras.Model(base.input, [base.get_layer(n).output for n in skip_names], name="encoder")
    encoder.trainable = fine_tune > 0

    inputs = keras.Input((*as_hw(input_size), 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
    *skips, x = encoder(x)
    logits = _decoder(x, reversed(skips), TUTORIAL_DECODER_FILTERS, num_classes, dropout, separable=False)
    return keras.Model(inputs, logits, name=f"unet_mobilenetv3_{variant}")


def _conv_bn_relu(x, filters: int, name: str, strides: int = 1):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def unet_plain(input_size: int | tuple[int, int] = 128, num_classes: int = 3, base_filters: int = 16,
               depth: int = 4) -> keras.Model:
    """Classic U-Net trained from scratch (no pretrained encoder): double 3x3 convs, max-pool, skips."""
    _check_size(input_size, 2**depth)
    inputs = keras.Input((*as_hw(input_size), 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
    skips = []
    for level in range(depth):
        f = base_filters * 2**level
        x = _conv_bn_relu(_conv_bn_relu(x, f, f"enc{level}a"), f, f"enc{level}b")
        skips.append(x)
        x = layers.MaxPooling2D(name=f"enc{level}_pool")(x)
    x = _conv_bn_relu(x, base_filters * 2**depth, "bottleneck")
    for level in reversed(range(depth)):
        f = base_filters * 2**level
        x = layers.Conv2DTranspose(f, 2, strides=2, name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skips[level]])
        x = _conv_bn_relu(_conv_bn_relu(x, f, f"dec{level}a"), f, f"dec{level}b")
    logits = layers.Conv2D(num_classes, 1, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name="unet_plain")


def conv_deconv(input_size: int | tuple[int, int] = 128, num_classes: int = 3) -> keras.Model:
    """The small conv-deconv baseline (~62k parameters): three strided convs, three transposed convs."""
    _check_size(input_size, 8)
    inputs = keras.Input((*as_hw(input_size), 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inputs)
    for i, f in enumerate((16, 32, 64)):
        x = layers.Conv2D(f, 3, strides=2, padding="same", activation="relu", name=f"conv{i + 1}")(x)
    for i, f in enumerate((52, 16)):
        x = layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu", name=f"deconv{i + 1}")(x)
    logits = layers.Conv2DTranspose(num_classes, 3, strides=2, padding="same", name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name="conv_deconv")


MODELS: dict[str, Callable[..., keras.Model]] = {
    "unet_mobilenetv2": unet_mobilenetv2,
    "unet_mobilenetv2_edge": unet_mobilenetv2_edge,
    "unet_mobilenetv3_small": lambda input_size=128, num_classes=3, **kw: unet_mobilenetv3(
        input_size, num_classes, variant="small", **kw),
    "unet_mobilenetv3_large": lambda input_size=128, num_classes=3, **kw: unet_mobilenetv3(
        input_size, num_classes, variant="large", **kw),
    "unet_plain": unet_plain,
    "conv_deconv": conv_deconv,
}
# The options each architecture takes beyond its input size and classes (train refuses the others when given).
_ENCODER = ("encoder_weights", "fine_tune", "alpha", "dropout")
MODEL_OPTIONS: dict[str, tuple[str, ...]] = {
    "unet_mobilenetv2": (*_ENCODER, "upsampling"), "unet_mobilenetv2_edge": (*_ENCODER, "upsampling"),
    "unet_mobilenetv3_small": _ENCODER, "unet_mobilenetv3_large": _ENCODER, "unet_plain": (), "conv_deconv": (),
}


def float32_copy(model: keras.Model) -> keras.Model:
    """``model`` computing in float32 throughout: a mixed-precision one (``train --mixed-precision``) rebuilt with
    float32 layers and its weights (kept in float32 by mixed precision); a float32 model as it is. The exporters
    take float32 graphs: a mixed one's float16 casts fail TFLite's conversion and ONNX's quantization."""
    def layers(m):  # nested models' layers too (the encoder is one)
        for layer in m.layers:
            yield layer
            yield from layers(layer) if isinstance(layer, keras.Model) else ()

    if all(layer.dtype_policy.name == "float32" for layer in layers(model)):
        return model

    def float32(config):
        if isinstance(config, dict):
            if config.get("class_name") == "DTypePolicy":  # mixed_float16, mixed_bfloat16
                return {**config, "config": {**config["config"], "name": "float32"}}
            return {k: "float32" if k == "dtype" and v in ("float16", "bfloat16") else float32(v)
                    for k, v in config.items()}
        return [float32(v) for v in config] if isinstance(config, list) else config

    copy = model.__class__.from_config(float32(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def check_model_name(name: str) -> None:
    """Raise ValueError with the choices (and the closest one) for a name not in :data:`MODELS`."""
    if name not in MODELS:
        import difflib

        hint = difflib.get_close_matches(name, MODELS, n=1)
        raise ValueError(
            f"unknown model {name!r}; choose one of {', '.join(MODELS)}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )


def build_model(
    name: str,
    input_size: int | tuple[int, int] = 128,
    num_classes: int = 3,
    encoder_weights: str | Path = "imagenet",
    fine_tune: int = 0,
    alpha: float = 1.0,
    dropout: float = 0.0,
    upsampling: str = "transpose",
) -> keras.Model:
    """Build a model from :data:`MODELS` by name, with the options it takes (:data:`MODEL_OPTIONS`); the others
    are ignored."""
    check_model_name(name)
    _check_upsampling(upsampling)
    given = {"encoder_weights": encoder_weights, "fine_tune": fine_tune, "alpha": alpha, "dropout": dropout,
             "upsampling": upsampling}
    return MODELS[name](input_size=input_size, num_classes=num_classes,
                        **{k: v for k, v in given.items() if k in MODEL_OPTIONS[name]})
