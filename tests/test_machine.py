"""Default worker counts follow the CPUs this process may use, not the machine's count."""

from __future__ import annotations

import os

from recarena.simulator.core import machine


def test_usable_cpus_follows_the_affinity(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert machine.usable_cpus() == 3


def test_usable_cpus_falls_back_to_the_cpu_count(monkeypatch):
    def unsupported(pid):
        raise AttributeError("no affinity here")

    monkeypatch.setattr(os, "sched_getaffinity", unsupported, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert machine.usable_cpus() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert machine.usable_cpus() == 6
