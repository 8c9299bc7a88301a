"""A first run of an untrusted ``.tflite`` in a child process.

LiteRT's native code trusts the flatbuffer it is given: some damaged files (a few flipped bytes in the
weights' quantization tables, say) abort the whole process ("double free or corruption") where no Python
code can catch it, taking a recording or a batch of photos with it. So a file that edgeseg did not ship
is first opened and run once in a child process; a crash there becomes an error naming the file. Files
that passed are remembered by checksum, so each file is probed once per machine (about 0.5 s).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
import numpy as np
from edgeseg.runtime.backends.litert import LiteRTBackend
backend = LiteRTBackend(sys.argv[1], threads=1, probe=False)
backend.run(np.zeros(backend.input.shape, backend.input.dtype))
"""


def cache_file() -> Path:
    """Where the checksums of files that ran cleanly are kept (``$XDG_CACHE_HOME/edgeseg``)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "edgeseg" / "tflite_probed.txt"


def crash_in_child(path: Path, content: bytes) -> str | None:
    """How LiteRT crashed on ``path`` in a child process (e.g. "signal SIGABRT"), or None when it did not."""
    digest = hashlib.sha256(content).hexdigest()
    if digest in _shipped() or digest in _probed():
        return None
    proc = subprocess.run([sys.executable, "-c", PROBE, os.fsencode(path)], capture_output=True, timeout=300)
    if proc.returncode < 0:
        import signal

        return f"signal {signal.Signals(-proc.returncode).name}"
    if proc.returncode == 0:
        _remember(digest)
    return None  # a Python-level error: the caller's own open reports it in full


def _shipped() -> set[str]:
    from edgeseg.runtime.packaged import NoPackagedModel, manifest

    try:
        return {entry["sha256"] for entry in manifest()["files"].values()}
    except NoPackagedModel:
        return set()


def _probed() -> set[str]:
    try:
        return set(cache_file().read_text().split())
    except OSError:
        return set()


def _remember(digest: str) -> None:
    try:
        cache_file().parent.mkdir(parents=True, exist_ok=True)
        with cache_file().open("a") as f:  # appends of one short line: whole even when runs overlap
            f.write(digest + "\n")
    except OSError:
        pass  # a read-only home: probe again next time
