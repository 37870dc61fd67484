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


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores to leave one free")
def test_the_default_leaves_a_busy_core_alone(monkeypatch):
    monkeypatch.setattr(threads, "_FREE", None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert threads.free_cores() <= (os.cpu_count() or 1) - 1
    finally:
        hog.kill()
        hog.wait()
