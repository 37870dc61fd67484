"""CPU thread counts: explicit, from the environment, and the default that leaves other processes' cores."""

from __future__ import annotations

import json
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


def _one_image_set(tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "set"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(folder / "a.png")
    return folder


def _computed_on(run) -> set[str]:
    return {json.loads(line)["on"] for line in (run / "rows.jsonl").read_text().splitlines()}


def test_a_run_computes_with_the_threads_it_is_given_and_records_them(tmp_path):
    from aesop_bench.evaluation.config import EvalConfig, as_source
    from aesop_bench.evaluation.runner import run_evaluation
    from aesop_bench.protocols import get_protocol

    from .standin_models import RecordingBicubic

    class ThreadsSeen(RecordingBicubic):
        """Bicubic that notes torch's thread count at each call."""

        def __call__(self, lr):
            seen.append(torch.get_num_threads())
            return super().__call__(lr)

    folder, before = _one_image_set(tmp_path), torch.get_num_threads()
    try:
        for n in (1, 2):
            seen: list[int] = []
            run = tmp_path / f"run{n}"
            run_evaluation(EvalConfig(source=as_source(ThreadsSeen()), sets=[str(folder)], metrics=["psnr"], threads=n,
                                      protocol=get_protocol("basicsr"), data_root=tmp_path, out_dir=run,
                                      progress=False, download=False, log=lambda m: None))
            assert seen == [n]
            assert [on.split(", ")[-1] for on in _computed_on(run)] == [f"{n} thread{'s' if n > 1 else ''}"]
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="busy cores are measured from /proc/stat (Linux)")
def test_by_default_a_run_leaves_a_core_that_another_process_keeps_busy(tmp_path):
    """With no thread setting, a run while a child process spins on one core computes with the cores less that
    one (at least one thread), as its rows record."""
    folder = _one_image_set(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("AESOP_BENCH_THREADS", "OMP_NUM_THREADS")}
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        subprocess.run([sys.executable, "-m", "aesop_bench", "eval", "--model", "bicubic", "--sets", str(folder),
                        "--metrics", "psnr", "--quiet", "--out", str(tmp_path / "run")], env=env, check=True,
                       capture_output=True, timeout=3600)
    finally:
        hog.kill()
        hog.wait()
    (on,) = _computed_on(tmp_path / "run")
    n = int(on.split(", ")[-1].split()[0])
    assert 1 <= n <= max(1, min(threads.available_cores(), (os.cpu_count() or 1) - 1)), on


def _no_fixed_count(monkeypatch):
    monkeypatch.delenv("AESOP_BENCH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


class FakeMachine:
    """A machine of ``cores`` cores whose other processes keep ``others`` cores busy, read through the samples
    :class:`threads.LoadMeter` takes: (now, machine-wide busy CPU seconds, this process's CPU seconds); this process
    keeps one core busy. ``advance(s)`` lets ``s`` seconds pass."""

    def __init__(self, others: float = 0.0):
        self.now, self.busy, self.own, self.others, self.reads = 100.0, 5000.0, 10.0, others, 0

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.own += seconds
        self.busy += seconds * (1 + self.others)

    def sample(self):
        self.reads += 1
        return self.now, self.busy, self.own


def test_every_pool_is_set_together_and_follows_a_neighbour_that_starts_and_stops(monkeypatch):
    """Four cores, nothing busy at the start: torch, every BLAS and OpenMP library and OpenCV get 4 threads. Five
    seconds on, nothing is looked at yet; ten seconds after the start, with three cores kept busy by others since,
    every pool gets 4 - 3 = 1 thread; once the neighbour stops, 4 again. At the end each pool is as it was."""
    import cv2
    import numpy  # noqa: F401 - its OpenBLAS is one of the pools
    from threadpoolctl import threadpool_info

    _no_fixed_count(monkeypatch)
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads, "_busy_elsewhere", lambda interval=0.1: 0.0)  # the first look, at the start
    monkeypatch.setattr(threads, "_FREE", None)
    machine = FakeMachine()
    before = threads.pool_sizes()
    assert any(k.startswith("blas:") for k in before) and "opencv" in before and "torch" in before
    pools = threads.Pools(None, every=10, meter=threads.LoadMeter(machine.sample), clock=lambda: machine.now)

    def sizes():
        got = threads.pool_sizes()
        assert {lib["num_threads"] for lib in threadpool_info()} == {got["torch"]}  # every library, not the smallest
        return set(got.values())

    try:
        assert pools.start() == 4 and sizes() == {4} and cv2.getNumThreads() == 4
        machine.others = 3.0
        machine.advance(5)
        reads = machine.reads
        assert pools.revisit() == 4 and machine.reads == reads  # not yet: the machine is not read
        machine.advance(5)
        assert pools.revisit() == 1 and sizes() == {1}
        machine.others = 0.0
        machine.advance(10)
        assert pools.revisit() == 4 and sizes() == {4}
        machine.others = 1.4  # rounds to one busy core
        machine.advance(10)
        assert pools.revisit() == 3 and sizes() == {3}
    finally:
        pools.close()
    assert threads.pool_sizes() == before


def test_a_count_the_user_fixes_is_never_revisited(monkeypatch):
    machine = FakeMachine(others=3.0)
    for fixed in ("env", "explicit"):
        _no_fixed_count(monkeypatch)
        if fixed == "env":
            monkeypatch.setenv("AESOP_BENCH_THREADS", "2")
        pools = threads.Pools(2 if fixed == "explicit" else None, every=0, meter=threads.LoadMeter(machine.sample),
                              clock=lambda: machine.now)
        try:
            assert pools.start() == 2 and threads.pool_sizes()["torch"] == 2
            machine.advance(60)
            reads = machine.reads
            assert pools.revisit() == 2 and machine.reads == reads
        finally:
            pools.close()


def test_the_load_meter_counts_other_processes_only(monkeypatch):
    """Over 10 s the machine spent 30 CPU seconds, 10 of them this process's: 2 cores busy elsewhere. An interval
    under a second says nothing yet; off Linux (no machine-wide figure) the load average less this process's share
    stands in."""
    samples = iter([(0.0, 100.0, 50.0), (0.5, 101.0, 50.5), (10.0, 130.0, 60.0), (20.0, None, 65.0)])
    meter = threads.LoadMeter(lambda: next(samples))
    assert meter.busy_elsewhere() is None
    assert meter.busy_elsewhere() == pytest.approx(2.0)
    monkeypatch.setattr(threads, "_load_average", lambda: 3.0)
    assert meter.busy_elsewhere() == pytest.approx(2.5)  # 3 running, half a core of them this process


def test_a_run_revisits_the_count_between_images_and_sets_and_a_network_keeps_its_first(tmp_path, monkeypatch):
    """Three cores; another process takes two of them after the run's start (every look at the machine sees the
    ten seconds since the last). Bicubic (known to give the same outputs at any thread count) follows the count:
    its rows record 3 threads, then 1. A network of the caller's, whose outputs may depend on the count, keeps the
    3 it started with, in every call and in its rows, while its metrics follow the machine; both runs store the
    values of a run at a fixed count."""
    from aesop_bench.evaluation.config import EvalConfig, ModelRef, as_source
    from aesop_bench.evaluation.runner import run_evaluation
    from aesop_bench.protocols import get_protocol

    from .standin_models import RecordingBicubic

    _no_fixed_count(monkeypatch)
    monkeypatch.setattr(threads, "available_cores", lambda: 3)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 3)
    monkeypatch.setattr(threads, "_busy_elsewhere", lambda interval=0.1: 0.0)
    monkeypatch.setattr(threads, "_FREE", None)
    monkeypatch.setattr(threads, "REVISIT_S", 0.0)
    machine = FakeMachine(others=2.0)

    def sample():
        machine.advance(10)  # ten seconds between two looks
        return machine.sample()

    monkeypatch.setattr(threads, "_sample", sample)
    seen: list[int] = []
    metric_threads: list[int] = []

    class ThreadsSeen(RecordingBicubic):
        def __call__(self, lr):
            seen.append(torch.get_num_threads())
            return super().__call__(lr)

    from aesop_bench.metrics import metric as metric_mod

    score = metric_mod.Metric.score

    def noting(self, *a):
        metric_threads.append(torch.get_num_threads())
        return score(self, *a)

    monkeypatch.setattr(metric_mod.Metric, "score", noting)
    folder = tmp_path / "set"
    folder.mkdir()
    import numpy as np
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")
    before = torch.get_num_threads()

    def run(source, out, n=None):
        return run_evaluation(EvalConfig(source=source, sets=[str(folder)], metrics=["psnr"], threads=n,
                                         protocol=get_protocol("basicsr"), data_root=tmp_path, out_dir=out,
                                         progress=False, download=False, log=lambda m: None))

    bicubic = run(ModelRef("bicubic"), tmp_path / "bicubic")
    on = [json.loads(line)["on"].split(", ")[-1] for line in (tmp_path / "bicubic" / "rows.jsonl").read_text()
          .splitlines()]
    assert on == ["3 threads", "1 thread", "1 thread"]
    assert metric_threads == [3, 1, 1] and torch.get_num_threads() == before
    metric_threads.clear()
    caller = run(as_source(ThreadsSeen()), tmp_path / "caller")
    assert seen == [3, 3, 3] and metric_threads == [3, 1, 1]
    assert {on.split(", ")[-1] for on in _computed_on(tmp_path / "caller")} == {"3 threads"}
    fixed = run(ModelRef("bicubic"), tmp_path / "fixed", n=1)
    values = [{s: e["metrics"] for s, e in summary["sets"].items()} for summary in (bicubic, caller, fixed)]
    assert values[0] == values[1] == values[2] and len(next(iter(values[0].values()))) == 1
    assert torch.get_num_threads() == before


def test_a_library_loaded_during_the_run_gets_the_count_at_the_next_revisit(monkeypatch):
    """IQA-PyTorch brings OpenCV (and its OpenBLAS) when its metrics are built, after the pools were set: the next
    revisit sets every pool to the run's count, before the machine is looked at again."""
    _no_fixed_count(monkeypatch)
    monkeypatch.setattr(threads, "_busy_elsewhere", lambda interval=0.1: 0.0)
    monkeypatch.setattr(threads, "_FREE", None)
    machine = FakeMachine()
    pools = threads.Pools(None, every=10, meter=threads.LoadMeter(machine.sample), clock=lambda: machine.now)
    calls: list[int] = []
    try:
        n = pools.start()
        monkeypatch.setattr(threads, "set_pools", calls.append)
        assert pools.revisit() == n and calls == []  # nothing new: nothing set
        loaded = threads._loaded_pools()
        monkeypatch.setattr(threads, "_loaded_pools", lambda: (loaded[0] + ("/lib/libnew_openblas.so",), True))
        reads = machine.reads
        assert pools.revisit() == n and calls == [n] and machine.reads == reads
    finally:
        pools.close()  # sets each pool back itself (not through set_pools)
