"""Shared export types: errors, gates and reports (the format table is :data:`edgeseg.contract.FORMATS`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from edgeseg import contract
from edgeseg.contract import Format, Precision
from edgeseg.errors import EdgesegError


class ExportError(EdgesegError, ValueError):
    """Bad export input: a missing model, unusable data, an unwritable folder, an unknown format."""


class ToleranceError(EdgesegError, RuntimeError):
    """One or more artifacts failed their accuracy gate (the message lists every failure)."""


class ShapeMismatchError(ExportError):
    """Data whose shape does not fit the model."""


def get_format(name: str) -> Format:
    """Look an exported format up by name, with a did-you-mean for typos."""
    try:
        return contract.get_format(name)
    except ValueError as exc:
        raise ExportError(str(exc)) from None


@dataclass
class Gates:
    """Accuracy gates per precision. Agreement is the fraction of pixels whose argmax equals Keras's;
    mIoU deltas are in points (percentage points) against the Keras model on the same data."""

    fp32_min_agreement: float = 0.999
    fp32_max_abs_prob: float = 1e-3
    fp16_min_delta_miou: float = -0.2
    int8_min_delta_miou: float = -1.0
    int8_min_agreement: float = 0.97

    def check(self, precision: Precision, agreement: float, max_abs_prob: float, delta_miou: float) -> list[str]:
        """Failure messages of one artifact (empty when it passes)."""
        failures = []
        if precision is Precision.FP32:
            if agreement < self.fp32_min_agreement:
                failures.append(f"agreement {agreement:.4%} < {self.fp32_min_agreement:.2%} (fp32_min_agreement)")
            if max_abs_prob > self.fp32_max_abs_prob:
                failures.append(f"max |dprob| {max_abs_prob:.2e} > {self.fp32_max_abs_prob:.0e} (fp32_max_abs_prob)")
        elif precision is Precision.FP16:
            if delta_miou < self.fp16_min_delta_miou:
                failures.append(f"delta mIoU {delta_miou:+.2f} points < {self.fp16_min_delta_miou:+.2f} (fp16_min_delta_miou)")
        else:
            if delta_miou < self.int8_min_delta_miou:
                failures.append(f"delta mIoU {delta_miou:+.2f} points < {self.int8_min_delta_miou:+.2f} (int8_min_delta_miou)")
            if agreement < self.int8_min_agreement:
                failures.append(f"agreement {agreement:.2%} < {self.int8_min_agreement:.0%} (int8_min_agreement)")
        return failures

    @staticmethod
    def check_value(name: str, value: float) -> None:
        """Refuse a value gate ``name`` cannot take (a ValueError saying what it takes): agreements and
        probability differences are fractions, mIoU deltas points."""
        least, most, unit = (-100, 100, "points of mIoU") if "delta_miou" in name else (0, 1, "a fraction")
        if not least <= value <= most:  # NaN too, which would pass every artifact
            example = " (0.95 for 95%)" if unit == "a fraction" else ""
            raise ValueError(f"{name} takes {unit} from {least} to {most}{example}, received {value:g}")


@dataclass
class ArtifactReport:
    """One exported file and how it compares with the Keras model."""

    format: str
    precision: str
    path: str
    size_mb: float = 0.0
    agreement: float = float("nan")
    max_abs_prob_diff: float = float("nan")
    mean_abs_prob_diff: float = float("nan")
    mean_iou: float = float("nan")
    foreground_iou: float = float("nan")
    delta_miou_points: float = float("nan")
    delta_fg_iou_points: float = float("nan")
    passed: bool = False
    failures: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    mask: dict = field(default_factory=dict)  # MaskQuality of the runtime's mask at each image's resolution

    @property
    def name(self) -> str:
        return f"{self.format} {self.precision}"


@dataclass
class ExportReport:
    """Every artifact of one export, the Keras reference and the data the checks used."""

    source: str
    out_dir: str
    eval_images: int
    calib_images: int
    keras_mean_iou: float
    keras_foreground_iou: float
    keras_mask: dict = field(default_factory=dict)  # MaskQuality of the Keras model through the runtime
    artifacts: list[ArtifactReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    subject: str = "pet"  # what the masks show: the subject of the "pet IoU" scores

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.artifacts)

    def failures(self) -> list[str]:
        return [f"{a.name} ({a.path}): {f}" if a.path else f"{a.name}: {f}" for a in self.artifacts for f in a.failures]

    def raise_for_failures(self) -> None:
        if not self.passed:
            failures = self.failures()
            gated = any(f.endswith(f"({gate.name})") for f in failures for gate in fields(Gates))
            hint = "\n  (to accept them, override the gate named in parentheses: --gate NAME=VALUE)" if gated else ""
            raise ToleranceError("accuracy check failed:\n  " + "\n  ".join(failures) + hint)

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}
