"""The model shipped inside the package (``edgeseg/models``), described by ``manifest.json``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class NoPackagedModel(FileNotFoundError):
    pass


def manifest() -> dict:
    path = MODELS_DIR / "manifest.json"
    if not path.is_file():
        raise NoPackagedModel("this edgeseg install ships no model: pass --model PATH (a .tflite or .onnx file, "
                              "e.g. one written by 'edgeseg export')")
    return json.loads(path.read_text())


def packaged_model(name: str | None = None) -> Path:
    """Path of a shipped model file: ``name`` (a key of the manifest's files) or the default."""
    info = manifest()
    name = name or info["default"]
    if name not in info["files"]:
        raise NoPackagedModel(f"no shipped model {name!r}; shipped: {', '.join(info['files'])}")
    return MODELS_DIR / name


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verify() -> dict[str, bool]:
    """{file: checksum matches the manifest} for every shipped model file."""
    return {name: (MODELS_DIR / name).is_file() and sha256(MODELS_DIR / name) == entry["sha256"]
            for name, entry in manifest()["files"].items()}
