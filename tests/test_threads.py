"""CPU thread counts: explicit, from the environment, and the default that leaves other processes' cores."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from aesop_bench import threads
from aesop_bench.errors import AesopBenchError


def test_explicit_and_environment(monkeypatch):
    assert threads.choose(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # as a user or torchrun (1 per process) sets it
    assert threads.choose() == 2
    monkeypatch.setenv("AESOP_BENCH_THREADS", "1")
    assert threads.choose() == 1 and threads.choose(2) == 2
    monkeypatch.setenv("AESOP_BENCH_THREADS", "many")
    with pytest.raises(AesopBenchError, match="AESOP_BENCH_THREADS='many'"):
        threads.choose()
    with pytest.raises(AesopBenchError, match="--threads 0"):
        threads.choose(0)
    before = torch.get_num_threads()
    try:
        assert threads.apply(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_process_spinning_on_a_core_is_measured_busy():
    """/proc/stat over 0.3 s while a child process spins: at least 0.8 of a core busy besides this process."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert threads._busy_elsewhere(0.3) >= 0.8
    finally:
        hog.kill()
        hog.wait()


@pytest.mark.parametrize("busy,free", [(0.0, "all"), (0.4, "all"), (1.6, "all-2"), (1e6, 1)])
def test_free_cores_are_the_cores_less_the_busy_ones_rounded_at_least_one(monkeypatch, busy, free):
    monkeypatch.setattr(threads, "_FREE", None)
    monkeypatch.setattr(threads, "_busy_elsewhere", lambda interval=0.1: busy)
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert threads.free_cores() == {"all": 8, "all-2": 6}.get(free, free)
