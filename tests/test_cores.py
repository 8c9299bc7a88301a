"""The cores a process may use, of which default thread counts are made."""

import os

import pytest

from edgeseg.runtime import cores
from edgeseg.runtime.backends import default_threads


@pytest.fixture
def host_of_64(monkeypatch, tmp_path):
    """A 64-core host whose cgroup files the test writes."""
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setattr(cores, "CGROUP_V2", tmp_path / "cpu.max")
    monkeypatch.setattr(cores, "CGROUP_V1", (tmp_path / "cpu.cfs_quota_us", tmp_path / "cpu.cfs_period_us"))
    return tmp_path


def test_a_container_limited_to_two_cpus_gets_two_threads_not_the_hosts_64(host_of_64):
    # docker --cpus=1.5 on a 64-core host: 64 interpreter threads took turns on 1.5 CPUs of time
    assert default_threads() == 64
    (host_of_64 / "cpu.max").write_text("150000 100000\n")
    assert cores.usable_cores() == default_threads() == 2
    (host_of_64 / "cpu.max").write_text("max 100000\n")
    assert cores.usable_cores() == 64


def test_cgroup_v1_quotas_and_cpu_affinity_count_too(host_of_64, monkeypatch):
    (host_of_64 / "cpu.cfs_quota_us").write_text("400000\n")
    (host_of_64 / "cpu.cfs_period_us").write_text("100000\n")
    assert cores.usable_cores() == 4
    (host_of_64 / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert cores.usable_cores() == 64
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5, 7}, raising=False)  # taskset, --cpuset-cpus
    assert cores.usable_cores() == 3
