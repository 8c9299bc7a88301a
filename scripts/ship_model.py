"""Copy exported artifacts into the package (src/edgeseg/models), record their checksums and mask quality.

    python scripts/ship_model.py --default runs/edge128/export/unet_mobilenetv2_edge_int8.tflite \\
        runs/edge128/export/unet_mobilenetv2_edge_int8.onnx --keep unet_mobilenetv2_int8.tflite \\
        --alias edge=unet_mobilenetv2_edge_int8.tflite --alias tutorial=unet_mobilenetv2_int8.tflite \\
        --data ../shared/data/pets-pseudo --data ../shared/data/oxford-real --data ../shared/data/cats-feral

An artifact given as ``PATH=NAME`` is shipped as NAME (two exports of one architecture share a file name,
e.g. ``runs/edge160/export/unet_mobilenetv2_edge_int8.tflite=unet_mobilenetv2_edge160_int8.tflite``).
Each new artifact's export check must have passed (its export_report.json says so), or it is refused.
``--keep`` keeps an already shipped file with its manifest entry; shipped files not named are removed.
``--default`` names a new artifact or a kept file. New files are measured on ``--data``; kept files again on
the datasets their entry records (the runtime's defaults may have changed), so a person model and the pet
models each keep their own test splits:

    python scripts/ship_model.py runs/person/export/unet_mobilenetv2_edge_int8.tflite=unet_mobilenetv2_person_int8.tflite \
        --default unet_mobilenetv2_edge_int8.tflite --keep unet_mobilenetv2_edge_int8.tflite ... \
        --alias person=unet_mobilenetv2_person_int8.tflite ... --data ../shared/data/portraits
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import fields
from pathlib import Path

from edgeseg.io import atomic_write_text
from edgeseg.runtime.packaged import MODELS_DIR, manifest, sha256
from edgeseg.runtime.segmenter import Edges, SegmenterOptions
from edgeseg.evaluation.evaluate import mask_quality_by_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="*", help="exported files, each as PATH or PATH=SHIPPED_NAME")
    parser.add_argument("--default", required=True,
                        help="the file used when no --model is given: a new artifact (PATH[=NAME]) or a kept file")
    parser.add_argument("--keep", action="append", default=[], metavar="FILE", help="an already shipped file to keep")
    parser.add_argument("--alias", action="append", default=[], metavar="NAME=FILE",
                        help="a short name for --model, e.g. edge=unet_mobilenetv2_edge_int8.tflite")
    parser.add_argument("--data", action="append", default=[],
                        help="dataset whose test split measures each file's mask quality (repeatable)")
    args = parser.parse_args()
    previous = manifest()["files"]
    files = {name: previous[name] for name in args.keep}
    new = [*args.artifacts, *([] if args.default in files else [args.default])]  # the default may be a kept file
    shipped = dict(_source_and_name(a) for a in dict.fromkeys(new))
    for path, name in shipped.items():
        report = json.loads((path.parent / "export_report.json").read_text())
        verdict = next((a for a in report["artifacts"] if Path(a["path"]).name == path.name), None)
        if verdict is None or not verdict["passed"]:
            raise SystemExit(f"{path}: no passing export check in {path.parent / 'export_report.json'}")
        shutil.copyfile(path, MODELS_DIR / name)
        files[name] = {"sha256": sha256(path), "bytes": path.stat().st_size, "source": str(path.parent.parent),
                       "mean_iou": round(verdict["mean_iou"], 4)}
    for stale in set(previous) - set(files):
        (MODELS_DIR / stale).unlink(missing_ok=True)
    defaults = {f.name: f.default for f in fields(SegmenterOptions)}
    settings = {"threshold": defaults["threshold"], "softness": defaults["softness"],
                "edges": Edges(defaults["edges"]).value}
    new_names = set(shipped.values())
    for name, entry in files.items():  # every file, kept ones too: the runtime's defaults may have changed since
        data = args.data if name in new_names else entry.get("mask_quality", {}).get("data", [])
        if data:
            mean, by_source = mask_quality_by_source(MODELS_DIR / name, data, progress=False)
            entry["mask_quality"] = {"data": data, "settings": settings, **mean.to_dict(),
                                     "by_source": {k: q.to_dict() for k, q in by_source.items()}}
    aliases = dict(a.split("=", 1) for a in args.alias)
    unknown = [f for f in aliases.values() if f not in files]
    if unknown:
        raise SystemExit(f"aliases name files that are not shipped: {unknown}")
    info = {"default": _source_and_name(args.default)[1], "aliases": aliases, "files": files}
    atomic_write_text(MODELS_DIR / "manifest.json", json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


def _source_and_name(spec: str) -> tuple[Path, str]:
    path, _, name = spec.partition("=")
    return Path(path), name or Path(path).name


if __name__ == "__main__":
    main()
