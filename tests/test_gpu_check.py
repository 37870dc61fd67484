"""The GPU check script runs its code paths on the CPU (``--device cpu --quick``), so that what it checks on a
GPU cannot rot unseen: every line passes here, and its table has one line per check (the training check is
covered by tests/test_train.py's two-process run and left out here for time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu(shared_data, bench_root):
    # train-ddp-val is left out here: tests/test_train.py trains two processes with validation and a resume
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick",
                           "--skip", "train-ddp-val", "--train-data", str(shared_data / "train"), "--data",
                           str(bench_root)],
                          capture_output=True, text=True, timeout=3600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    lines = [line for line in proc.stdout.splitlines() if line[:4] in ("PASS", "FAIL")]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert [line.split()[1] for line in lines] == ["devices", "rng-restore", "bf16-tiles", "pooled-bn-bf16",
                                                   "niqe-device", "metrics-device", "evaluator", "train-speed",
                                                   "train-real", "train-spsr", "speed", "projection"]
