"""Give the shipped models mask weights in their metadata, re-measure them and update manifest.json.

    python scripts/set_mask_weights.py --weights 1,0,0.5 --data ../shared/data/pets-pseudo

Only the metadata changes; the weights of the network stay as exported (and checked). The manifest
gets each file's new checksum and its mask quality through the runtime with default settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from edgeseg.contract import ArtifactMetadata
from edgeseg.io import atomic_write_bytes, atomic_write_text
from edgeseg.runtime.backends import open_backend
from edgeseg.runtime.packaged import MODELS_DIR, manifest, sha256
from edgeseg.trainer.evaluate import mask_quality


def retag(path, weights: tuple[float, ...]) -> None:
    with open_backend(path, threads=1) as backend:
        meta: ArtifactMetadata = backend.metadata
    meta = dataclasses.replace(meta, mask_weights=weights)
    if path.suffix == ".tflite":
        from edgeseg.export.tflite import add_metadata

        atomic_write_bytes(path, add_metadata(path.read_bytes(), meta))
    else:
        import onnx

        from edgeseg.export.onnx import set_metadata

        proto = onnx.load(str(path))
        set_metadata(proto, meta)
        atomic_write_bytes(path, proto.SerializeToString())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="one weight per class, e.g. 1,0,0.5 (pet, background, border)")
    parser.add_argument("--data", required=True, help="dataset whose test split measures the masks")
    args = parser.parse_args()
    weights = tuple(float(w) for w in args.weights.split(","))
    info = manifest()
    for name, entry in info["files"].items():
        path = MODELS_DIR / name
        retag(path, weights)
        quality = mask_quality(path, args.data, "test")
        entry.update(sha256=sha256(path), bytes=path.stat().st_size, mask_weights=list(weights),
                     mask_quality={"data": args.data, **quality.to_dict()})
        print(name, json.dumps(entry["mask_quality"]))
    atomic_write_text(MODELS_DIR / "manifest.json", json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()
