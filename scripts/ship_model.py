"""Copy exported artifacts into the package (src/edgeseg/models) and record their checksums.

    python scripts/ship_model.py --default runs/unet_mobilenetv2_pets128/export/unet_mobilenetv2_int8.tflite \\
        runs/unet_mobilenetv2_pets128/export/unet_mobilenetv2_int8.onnx ...

Each artifact's export check must have passed (its export_report.json says so), or it is refused.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from edgeseg.io import atomic_write_text
from edgeseg.runtime.packaged import MODELS_DIR, sha256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--default", type=Path, required=True, help="the artifact used when no --model is given")
    parser.add_argument("--alias", action="append", default=[], metavar="NAME=FILE",
                        help="a short name for --model, e.g. edge=unet_mobilenetv2_edge_int8.tflite")
    args = parser.parse_args()
    files = {}
    for path in dict.fromkeys([args.default, *args.artifacts]):
        report = json.loads((path.parent / "export_report.json").read_text())
        verdict = next((a for a in report["artifacts"] if Path(a["path"]).name == path.name), None)
        if verdict is None or not verdict["passed"]:
            raise SystemExit(f"{path}: no passing export check in {path.parent / 'export_report.json'}")
        shutil.copyfile(path, MODELS_DIR / path.name)
        files[path.name] = {"sha256": sha256(path), "bytes": path.stat().st_size,
                            "mean_iou": round(verdict["mean_iou"], 4), "foreground_iou": round(verdict["foreground_iou"], 4)}
    aliases = dict(a.split("=", 1) for a in args.alias)
    unknown = [f for f in aliases.values() if f not in files]
    if unknown:
        raise SystemExit(f"aliases name files that are not shipped: {unknown}")
    manifest = {"default": args.default.name, "aliases": aliases, "files": files}
    atomic_write_text(MODELS_DIR / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
