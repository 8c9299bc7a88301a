"""A training run folder, as every stage reads it (no TensorFlow).

``edgeseg train`` writes ``model.keras``, ``run.json`` and the rest; ``edgeseg export`` adds
``export/`` with its artifacts and ``export_report.json``.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from edgeseg.contract import CLASS_NAMES, EXPORT_FORMATS, FORMATS

# Which exported artifact a run folder stands for at run time: the fastest that passed its check.
RUNTIME_PREFERENCE = ("int8.tflite", "fp16.tflite", "fp32.tflite", "int8.onnx", "fp32.onnx")
EXPORT_REPORT = "export_report.json"  # in export/: every artifact's check


def keras_runnable() -> bool:
    """Whether a ``model.keras`` can run here: the runtime-only install of an edge device has no TensorFlow."""
    return importlib.util.find_spec("tensorflow") is not None


def training_sources(info: dict) -> list[str]:
    """The dataset locations a run was trained on, from its run.json (absolute where they were folders)."""
    if info.get("sources"):
        return [s["location"] for s in info["sources"]]
    # a run of one source, recorded before runs had several: the resolved path, else the configured one
    source = info.get("data", {}).get("train", {}).get("source") or info.get("config", {}).get("data")
    return [source] if isinstance(source, str) else list(source or [])


def tfds_dir(info: dict) -> str | None:
    """Where the run kept its tfds datasets (``train --data-dir``), from its run.json; None: tfds's default."""
    config = info.get("config")
    return config.get("data_dir") if isinstance(config, dict) else None


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @classmethod
    def at(cls, path: str | Path) -> "RunFolder | None":
        """The run folder at ``path``, or None when ``path`` is not one."""
        p = Path(path)
        if p.is_dir() and ((p / "model.keras").is_file() or (p / "run.json").is_file() or (p / "export").is_dir()):
            return cls(p)
        if p.name == "export" and p.is_dir():  # a run's export/, the folder export reports: the run
            return cls.at(p.parent)
        return None

    @property
    def model(self) -> Path:
        return self.path / "model.keras"

    @property
    def export_dir(self) -> Path:
        return self.path / "export"

    def info(self) -> dict:
        """run.json, or {} when the run has none; a damaged one is an error naming it."""
        path = self.path / "run.json"
        if not path.is_file():
            return {}
        try:
            info = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); it was damaged, or is not edgeseg's") from None
        return info if isinstance(info, dict) else {}

    def classes(self) -> tuple[str, ...]:
        """The classes its model was trained with (run.json), the pet trimap's when it records none."""
        try:
            return tuple(str(c) for c in self.info().get("classes") or CLASS_NAMES)
        except (ValueError, TypeError):
            return CLASS_NAMES

    def training_data(self) -> list[str]:
        """The datasets the run was trained on (:func:`training_sources`)."""
        return training_sources(self.info())

    def tfds_dir(self) -> str | None:
        """Where the run kept its tfds datasets (:func:`tfds_dir`)."""
        return tfds_dir(self.info())

    def split_draw(self) -> dict:
        """How the run drew its validation split from each source's training images (``train --val-fraction`` and
        ``--seed``, from its run.json): keyword arguments of the data readers, {} for their defaults."""
        config = self.info().get("config")
        return {k: config[k] for k in ("val_fraction", "seed") if k in config} if isinstance(config, dict) else {}

    def export_verdicts(self) -> dict[str, bool]:
        """{artifact file name: passed its export check} from export_report.json."""
        report = self.export_dir / EXPORT_REPORT
        if not report.is_file():
            return {}
        return {Path(a["path"]).name: a["passed"] for a in json.loads(report.read_text()).get("artifacts", [])}

    def artifacts(self) -> list[Path]:
        """Exported model files in export/, format by format (failed ones live in export/failed/)."""
        return [p for name in EXPORT_FORMATS for p in sorted(self.export_dir.glob(f"*{FORMATS[name].suffix}"))]

    def runtime_model(self) -> Path:
        """The file the runtime runs for this run: its best passing artifact, else model.keras."""
        verdicts = self.export_verdicts()
        passing = [p for p in self.artifacts() if verdicts.get(p.name, True)]
        for ending in RUNTIME_PREFERENCE:
            for p in passing:
                if p.name.endswith(ending):
                    return p
        if not self.model.is_file():
            raise FileNotFoundError(f"run folder {self.path} holds no exported model and no model.keras")
        if not keras_runnable():
            raise FileNotFoundError(
                f"run folder {self.path} has no exported model (export/ holds none that passed its check), and its "
                f"model.keras needs TensorFlow: export it with `edgeseg export {self.path} --int8` where the training "
                'stack is installed, or install it here: pip install "edgeseg[train]"')
        return self.model
