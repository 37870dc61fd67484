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
