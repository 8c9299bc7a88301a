"""``edgeseg evaluate``: test metrics of a saved Keras model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from edgeseg.trainer.data import load_split
from edgeseg.trainer.metrics import SegmentationMetrics


@dataclass
class EvalReport:
    model: str
    data: str
    split: str
    images: int
    metrics: SegmentationMetrics

    def to_dict(self) -> dict:
        return {**asdict(self), "metrics": self.metrics.to_dict()}


def load_keras_model(path: str | Path):
    """Load a ``.keras`` model, or a run folder's ``model.keras``, with a clear error for anything else."""
    import keras

    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise FileNotFoundError(f"model {path} not found; expected a .keras file or a run folder holding model.keras")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # keras raises ValueError, OSError, zipfile errors... for a bad file
        raise ValueError(f"{path} is not a Keras model ({type(exc).__name__}: {exc})") from exc


def evaluate(model_path: str | Path, data: str, split: str = "test", limit: int | None = None,
             batch_size: int = 32, progress: bool = True) -> EvalReport:
    """Pixel accuracy, per-class IoU, mIoU and foreground IoU of a Keras model on ``split`` of ``data``."""
    from edgeseg.trainer.train import evaluate_model

    model = load_keras_model(model_path)
    size = model.input_shape[1]
    split_data = load_split(data, split, size, limit=limit, progress=progress)
    metrics = evaluate_model(model, split_data, batch_size)
    return EvalReport(str(model_path), data, split, len(split_data), metrics)
