"""Training curves and prediction grids as PNG files."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from edgeseg.contract import TRIMAP_MASK_WEIGHTS  # noqa: E402
from edgeseg.io import atomic_path  # noqa: E402
from edgeseg.runtime.effects import grayscale_bg  # noqa: E402
from edgeseg.runtime.alpha import alpha_from_probabilities  # noqa: E402

# pet, background, border
MASK_COLORS = np.array([[230, 120, 40], [30, 30, 30], [250, 230, 90]], np.uint8)


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_curves(history: dict[str, list[float]], path: str | Path) -> None:
    """Loss, pixel accuracy and mIoU per epoch, train and validation."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    epochs = [e + 1 for e in history.get("epoch", [])]
    for ax, key, title in zip(axes, ("loss", "accuracy", "miou"), ("loss", "pixel accuracy", "mIoU")):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + key in history:
                ax.plot(epochs, history[prefix + key], style, marker="o", ms=3, label=prefix.rstrip("_") or "train")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, Path(path))


def plot_predictions(images, masks, predicted, probs, path: str | Path) -> None:
    """Grid: input, true mask, predicted mask, grayscale-background effect from the soft mask."""
    n = len(images)
    fig, axes = plt.subplots(n, 4, figsize=(10, 2.5 * n), squeeze=False)
    for row, (image, mask, pred, prob) in enumerate(zip(images, masks, predicted, probs)):
        alpha = alpha_from_probabilities(prob, TRIMAP_MASK_WEIGHTS)  # the mask the runtime shows, not p(pet) + p(border)
        effect = grayscale_bg(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), alpha)
        panels = (image, MASK_COLORS[mask], MASK_COLORS[pred], cv2.cvtColor(effect, cv2.COLOR_BGR2RGB))
        for ax, panel, title in zip(axes[row], panels, ("input", "true mask", "predicted", "grayscale-bg")):
            ax.imshow(panel)
            ax.set_axis_off()
            if row == 0:
                ax.set_title(title)
    _save(fig, Path(path))
