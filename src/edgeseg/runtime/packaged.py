"""The model shipped inside the package (``edgeseg/models``), described by ``manifest.json``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edgeseg.runs import RunFolder
from edgeseg.errors import NotFound

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class NoPackagedModel(NotFound):
    pass


def manifest() -> dict:
    path = MODELS_DIR / "manifest.json"
    if not path.is_file():
        raise NoPackagedModel("this edgeseg install ships no model: pass --model PATH (a .tflite or .onnx file, "
                              "e.g. one written by 'edgeseg export')")
    return json.loads(path.read_text())


def packaged_model(name: str | None = None) -> Path:
    """Path of a shipped model file: the default, a file name from the manifest, or an alias ('edge')."""
    info = manifest()
    name = info.get("aliases", {}).get(name, name) or info["default"]
    if name not in info["files"]:
        choices = [*info["files"], *info.get("aliases", {})]
        raise NoPackagedModel(f"no shipped model {name!r}; shipped: {', '.join(choices)}")
    return MODELS_DIR / name


def shipped_formats(alias: str) -> list[Path]:
    """Every shipped file of the model an alias names (its ``.tflite`` and, where one ships, its ``.onnx``);
    [] when ``alias`` is no alias."""
    info = manifest()
    if alias not in info.get("aliases", {}):
        return []
    stem = Path(info["aliases"][alias]).stem
    return [MODELS_DIR / name for name in sorted(info["files"], key=lambda n: n.endswith(".onnx"))
            if Path(name).stem == stem]


def resolve_model(model: str | Path | None) -> Path:
    """A model path: an existing file, a run folder's best artifact, a shipped model's name or alias, or
    (for None) the shipped default."""
    if model is None:
        return packaged_model()
    run = RunFolder.at(model)
    if run:
        return run.runtime_model()
    if Path(model).is_dir():
        runs = sorted(str(p) for p in Path(model).iterdir() if RunFolder.at(p))
        if runs:
            listed = ", ".join(runs[:5]) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")
            raise NotFound(f"{model} is a folder of runs, not a run: give one of them ({listed})")
        raise NotFound(f"{model} is a folder but not an edgeseg run (no model.keras, run.json or export/)")
    if Path(model).exists():
        return Path(model)
    try:
        return packaged_model(str(model))
    except NoPackagedModel:
        if Path(model).suffix in (".tflite", ".onnx", ".keras") or len(Path(model).parts) > 1:  # meant as a path
            raise NotFound(f"model {model} not found") from None
        raise


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verify() -> dict[str, bool]:
    """{file: checksum matches the manifest} for every shipped model file."""
    return {name: (MODELS_DIR / name).is_file() and sha256(MODELS_DIR / name) == entry["sha256"]
            for name, entry in manifest()["files"].items()}
