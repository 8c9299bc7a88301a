"""Training stack (needs the `train` extra: pip install "edgeseg[train]")."""

# The trainable architectures (edgeseg.trainer.models.MODELS builds them), named without importing Keras: the
# CLI lists them in its help.
MODEL_NAMES = ("unet_mobilenetv2", "unet_mobilenetv2_edge", "unet_mobilenetv3_small", "unet_mobilenetv3_large",
               "unet_plain", "conv_deconv")
TRAIN_EXTRA_HINT = 'this needs the training stack: pip install "edgeseg[train]" (TensorFlow, tf2onnx, ...)'


def require_train_extra() -> None:
    """Raise an ImportError that says what to install when TensorFlow is missing."""
    import importlib.util

    missing = [m for m in ("tensorflow", "keras") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"{', '.join(missing)} not installed: {TRAIN_EXTRA_HINT}")
