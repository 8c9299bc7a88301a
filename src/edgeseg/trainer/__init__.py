"""Training stack (needs the `train` extra: pip install "edgeseg[train]")."""

TRAIN_EXTRA_HINT = 'this needs the training stack: pip install "edgeseg[train]" (TensorFlow, tf2onnx, ...)'


def require_train_extra() -> None:
    """Raise an ImportError that says what to install when TensorFlow is missing."""
    import importlib.util

    missing = [m for m in ("tensorflow", "keras") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"{', '.join(missing)} not installed: {TRAIN_EXTRA_HINT}")
