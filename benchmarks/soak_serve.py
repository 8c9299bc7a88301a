"""Soak test of the live pipeline with MJPEG viewers: memory over time and the cost of viewers.

One ``run_pipeline`` serves 640x480 frames for the whole run. Blocks of ``--block`` frames alternate
between no viewers and ``--viewers`` viewers (threads of a separate, lowest-priority process, standing in
for browsers on other machines), so load from elsewhere on the machine hits both alike. Records the process's RSS every 250 frames
and the FPS of every block.

    python benchmarks/soak_serve.py --frames 20000 --viewers 20 --out benchmarks/results/soak_serve.json
    python benchmarks/soak_serve.py --effects all --frames 6000 --viewers 4 --out benchmarks/results/soak_effects.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import psutil

from edgeseg.benchmarks.device import device_info
from edgeseg.io import atomic_write_text
from edgeseg.runtime.packaged import resolve_model
from edgeseg.runtime.effects import Effect
from edgeseg.runtime.pipeline import PipelineOptions, run_pipeline
from edgeseg.runtime.segmenter import RunningMode, Segmenter, SegmenterOptions
from edgeseg.runtime.sources import Frame, Source

# Viewers run at the lowest priority: on a real device they are phones and laptops elsewhere, so their own
# reading should not count against the pipeline (here they share its two cores).
VIEWER = """
import http.client, os, sys, threading
os.nice(19)
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def view():
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/stream.mjpg")
    resp = conn.getresponse()
    while True:
        line = resp.readline()
        if not line:
            return
        if line.lower().startswith(b"content-length"):
            resp.read(int(line.split(b":")[1]) + 4)
for _ in range(n):
    threading.Thread(target=view, daemon=True).start()
sys.stdin.read()  # until the benchmark closes our stdin
"""


class SoakSource(Source):
    """Synthetic 640x480 frames; starts and stops the viewer process at block boundaries and records."""

    live = True

    def __init__(self, frames: int, block: int, viewers: int, address):
        self.frames, self.block, self.viewers, self.address = frames, block, viewers, address
        rng = np.random.default_rng(0)  # smooth, camera-like content: JPEGs of a realistic size
        self.images = [cv2.GaussianBlur(cv2.resize(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (640, 480),
                                                   interpolation=cv2.INTER_CUBIC), (0, 0), 3) for _ in range(8)]
        self.blocks: list[dict] = []
        self.rss: list[tuple[int, float]] = []
        self._viewer: subprocess.Popen | None = None
        self._process = psutil.Process()

    def _set_viewers(self, on: bool) -> None:
        if self._viewer:
            self._viewer.stdin.close()
            self._viewer.wait(10)
            self._viewer = None
        if on:
            host, port = self.address()
            self._viewer = subprocess.Popen([sys.executable, "-c", VIEWER, host, str(port), str(self.viewers)],
                                            stdin=subprocess.PIPE)
            time.sleep(1.0)  # let every viewer connect before the block is timed

    def __iter__(self):
        start = time.perf_counter()
        for i in range(self.frames):
            if i % self.block == 0:
                if self.blocks:
                    self.blocks[-1]["fps"] = round(self.block / (time.perf_counter() - start), 2)
                with_viewers = (i // self.block) % 2 == 1
                self._set_viewers(with_viewers)
                self.blocks.append({"first_frame": i, "viewers": self.viewers if with_viewers else 0})
                start = time.perf_counter()
            if i % 250 == 0:
                self.rss.append((i, round(self._process.memory_info().rss / 2**20, 1)))
            yield Frame(self.images[i % len(self.images)], i, 0.0, "soak")
        self.blocks[-1]["fps"] = round(self.block / (time.perf_counter() - start), 2)
        self._set_viewers(False)


def soak(model: str, effect: Effect, frames: int, block: int, viewers: int) -> dict:
    """One soak run of ``effect``: FPS per block with and without viewers, RSS every 250 frames."""
    servers = []

    def address():
        return servers[0].httpd.server_address[:2]

    import edgeseg.runtime.server as server_mod

    real_start = server_mod.MjpegServer.start

    def start(self):  # keep a handle on the pipeline's server, for the viewers' address
        servers.append(self)
        return real_start(self)

    server_mod.MjpegServer.start = start
    try:
        source = SoakSource(frames, block, viewers, address)
        with Segmenter(SegmenterOptions(resolve_model(model), RunningMode.VIDEO)) as segmenter:
            report = run_pipeline(source, segmenter, PipelineOptions(
                effect=effect, serve="127.0.0.1:0", max_clients=viewers + 4), announce=lambda url: None)
    finally:
        server_mod.MjpegServer.start = real_start
    fps = {n: statistics.median(b["fps"] for b in source.blocks if b["viewers"] == n) for n in {0, viewers}}
    rss = [r for _, r in source.rss]
    settled = rss[len(rss) // 10:]  # after warm-up
    return {
        "effect": effect.value, "frames": report.frames, "ended": report.ended.value,
        "median_block_fps": {str(k): v for k, v in fps.items()},
        "fps_ratio_viewers_vs_none": round(fps[viewers] / fps[0], 3),
        "frames_sent": servers[0].frames_sent, "frames_encoded": servers[0].frames_encoded,
        "rss_mb": {"first": rss[0], "after_warmup_min": min(settled), "after_warmup_max": max(settled),
                   "last": rss[-1], "growth_after_warmup": round(max(settled) - settled[0], 1)},
        "blocks": source.blocks, "rss_over_frames": source.rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="edge", help="model file or shipped name (the server is what is measured)")
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--block", type=int, default=1000)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--effects", default="grayscale-bg",
                        help=f"comma-separated effects, each soaked in turn, or 'all' ({', '.join(e.value for e in Effect)})")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plot", type=Path, help="RSS-over-time chart (PNG)")
    args = parser.parse_args()
    effects = list(Effect) if args.effects == "all" else [Effect(e) for e in args.effects.split(",")]
    runs = [soak(args.model, e, args.frames, args.block, args.viewers) for e in effects]
    result = {"command": " ".join(sys.argv), "device": device_info(None), "python": platform.python_version(),
              "model": str(args.model), "viewers": args.viewers, "runs": runs}
    atomic_write_text(args.out, json.dumps(result, indent=2))
    print(json.dumps([{k: r[k] for k in ("effect", "median_block_fps", "fps_ratio_viewers_vs_none", "rss_mb")}
                      for r in runs], indent=2))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3))
        for r in runs:
            ax.plot([f for f, _ in r["rss_over_frames"]], [m for _, m in r["rss_over_frames"]], label=r["effect"])
        ax.set_xlabel(f"frame ({args.viewers} viewers attached every other block of {args.block})")
        ax.set_ylabel("RSS (MB)")
        ax.set_ylim(0, max(m for r in runs for _, m in r["rss_over_frames"]) * 1.2)
        ax.legend(fontsize=7)
        ax.set_title(f"soak: {args.frames} frames per effect, {args.model}")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)


if __name__ == "__main__":
    main()
