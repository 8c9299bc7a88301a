"""Training throughput of the 128 px tutorial model (frozen encoder) on this CPU.

Compares images/s with the real tf.data pipeline (decode-free in-memory cache, augmentation, shuffle,
batch, prefetch) against a pipeline replaced by one in-memory batch repeated: if the two are within 10%,
the data pipeline is not the bottleneck.

    python experiments/train_throughput.py --data ../shared/data/pets-pseudo --out experiments/results/train_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def images_per_second(model, dataset, steps: int, batch_size: int, repeats: int) -> list[float]:
    import keras

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    timer = Timer()
    timer.times = []
    model.fit(dataset, epochs=repeats + 1, steps_per_epoch=steps, callbacks=[timer], verbose=0)
    return [steps * batch_size / t for t in timer.times[1:]]  # first epoch traces the graph: warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (Oxford layout)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=15, help="steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per pipeline")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/train_throughput.json"))
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from edgeseg.io import atomic_write_text
    from edgeseg.data import load_folder
    from edgeseg.trainer import data as data_mod
    from edgeseg.trainer.models import build_model
    from edgeseg.trainer.train import TrainConfig, _compile

    size = 128
    train = load_folder(args.data, "train", data_mod.cache_size(size), limit=args.batch_size * args.steps)
    real = data_mod.make_dataset(train, size, args.batch_size, training=True).repeat()
    x, y = next(iter(real))
    in_memory = tf.data.Dataset.from_tensors((x, y)).repeat()

    results = {}
    for name, dataset in (("tf.data pipeline", real), ("in-memory batch", in_memory)):
        keras.utils.set_random_seed(0)
        model = build_model("unet_mobilenetv2", size, encoder_weights="none")
        _compile(keras, model, TrainConfig(), args.steps)
        rates = images_per_second(model, dataset, args.steps, args.batch_size, args.repeats)
        results[name] = {"images_per_s_median": round(statistics.median(rates), 2),
                         "images_per_s_runs": [round(r, 2) for r in rates]}
        print(f"{name}: {results[name]['images_per_s_median']:.1f} images/s (runs {results[name]['images_per_s_runs']})")
    ratio = results["tf.data pipeline"]["images_per_s_median"] / results["in-memory batch"]["images_per_s_median"]
    report = {
        "model": "unet_mobilenetv2", "img_size": size, "encoder": "frozen", "batch_size": args.batch_size,
        "steps_per_run": args.steps, "results": results, "pipeline_over_in_memory": round(ratio, 3),
        "pipeline_is_bottleneck": ratio < 0.9,
        "device": {"platform": platform.platform(), "processor": platform.processor(), "cores": os.cpu_count(),
                   "tensorflow": tf.__version__},
        "date": time.strftime("%Y-%m-%d"),
    }
    atomic_write_text(args.out, json.dumps(report, indent=2))
    print(f"pipeline / in-memory = {ratio:.3f} -> {args.out}")


if __name__ == "__main__":
    main()
