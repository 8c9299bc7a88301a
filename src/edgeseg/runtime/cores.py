"""The cores this process may use, of which the default thread counts are made."""

from __future__ import annotations

import math
import os
from pathlib import Path

# The process's CPU quota, where a container or a service manager sets one (docker --cpus, a Kubernetes limit):
# cgroup v2's "QUOTA PERIOD" (or "max PERIOD"), cgroup v1's quota (-1: none) and period in microseconds.
CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def usable_cores() -> int:
    """The cores the process may run on (taskset, docker --cpuset-cpus), at most as many as its CPU quota pays for
    (docker --cpus 1.5: 2); at least 1. A container's view of ``os.cpu_count()`` is the host's cores."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    quota = _quota()
    return max(1, min(count, math.ceil(quota)) if quota else count)


def _quota() -> float | None:
    """The CPU quota in cores, or None without one."""
    try:
        quota, period = CGROUP_V2.read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota, period = (int(path.read_text()) for path in CGROUP_V1)
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None
