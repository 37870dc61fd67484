"""The test suite itself: where the shared test data is missing, what the README's test command does."""

from __future__ import annotations

import os


def test_without_the_shared_data_tests_and_doctests_skip_with_one_reason_outside_ci(tmp_path):
    """The README's test command where the shared test data is not found: outside CI every test and doctest that
    needs it skips, with one line for all of them in the summary, and pytest exits 0; under CI they fail."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "AESOP_BENCH_DATA")}
    env["AESOP_BENCH_SHARED"] = str(tmp_path / "nowhere")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "aesop_bench/api.py",
            "tests/test_imresize.py"]
    proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-2000:]
    lines = [x for x in proc.stdout.splitlines() if x.startswith("SKIPPED")]
    assert len(lines) == 1 and "see the README's Tests section" in lines[0] and "nowhere" in lines[0], lines
    n = int(lines[0].split("[")[1].split("]")[0])
    assert n >= 3 and f"{n} skipped" in proc.stdout  # the doctests and the tests, in one line
    proc = subprocess.run(args, cwd=repo, env={**env, "CI": "1"}, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 1 and "test data missing" in proc.stdout
