"""Training stack (needs the `train` extra: pip install "edgeseg[train]").

This package's own module holds what the command line needs without TensorFlow: the architectures' names and
the training choices as Enums (each keys the table that implements it: models.MODELS, losses.make_loss,
data.AUGMENTATIONS).
"""

from edgeseg.choice import Choice

# The trainable architectures (edgeseg.trainer.models.MODELS builds them), named without importing Keras: the
# CLI lists them in its help.
MODEL_NAMES = ("unet_mobilenetv2", "unet_mobilenetv2_edge", "unet_mobilenetv3_small", "unet_mobilenetv3_large",
               "unet_plain", "conv_deconv")


class Upsampling(Choice):
    """How the decoder doubles its resolution."""

    TRANSPOSE = "transpose"  # transposed convolutions, as the tutorial
    BILINEAR = "bilinear"  # a bilinear resize and a convolution: no checkerboard


class Loss(Choice):
    CE = "ce"  # cross-entropy
    CE_DICE = "ce+dice"  # plus a Dice term on the subject, border ignored


class LrSchedule(Choice):
    CONSTANT = "constant"
    COSINE = "cosine"


class Strategy(Choice):
    """The tf.distribute strategy (auto: multi-worker with TF_CONFIG, mirrored over several GPUs, else one device)."""

    AUTO = "auto"
    DEFAULT = "default"
    MIRRORED = "mirrored"
    MULTIWORKER = "multiworker"


class Augment(Choice):
    """Named augmentations (data.AUGMENTATIONS holds what each does)."""

    NONE = "none"
    STANDARD = "standard"
    STRONG = "strong"
    ASPECT = "aspect"
    WEBCAM = "webcam"


def choice(enum: type[Choice], value, setting: str):
    """``value`` as a member of ``enum``, or a ValueError naming the setting and its choices."""
    try:
        return enum(value)
    except ValueError:
        raise ValueError(f"{setting} must be one of {', '.join(e.value for e in enum)}, received {value!r}") from None


TRAIN_EXTRA_HINT = 'this needs the training stack: pip install "edgeseg[train]" (TensorFlow, tf2onnx, ...)'


def require_train_extra() -> None:
    """Raise an ImportError that says what to install when TensorFlow is missing."""
    import importlib.util

    missing = [m for m in ("tensorflow", "keras") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"{', '.join(missing)} not installed: {TRAIN_EXTRA_HINT}")
